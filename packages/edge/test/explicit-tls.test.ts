/**
 * The explicit proxy with TLS inside CONNECT tunnels, against real loopback servers. Every block is
 * proven by what the upstream server saw: zero accepted connections and zero bytes.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  startTlsServer,
  type TestPki,
} from '../../../test/support/index.js';
import {
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  tlsOver,
  untilClosed,
  waitFor,
} from './helpers/edge-kit.js';
import {
  alpnExt,
  buildClientHello,
  ext,
  frame,
  modernHello,
  sniExt,
  supportedVersionsExt,
} from './sniff/helpers/hello-builder.js';

const POLICY = `
version: 1
allow:
  - name: api
    hosts: [api.test]
    schemes: [https, tls]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: other
    hosts: [other.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: strict
    hosts: [strict.test]
    schemes: [tls]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
    tls: { minVersion: TLSv1.3 }
  - name: no-private
    hosts: [internal.test]
    schemes: [https, tls]
    ports: [${TEST_PORTS}]
  - name: literal
    addresses: [127.0.0.2/32]
    schemes: [tls]
    ports: [${TEST_PORTS}]
deny:
  - name: blocked
    hosts: [blocked.test]
`;

const NAMES = {
  'api.test': ['127.0.0.1'],
  'other.test': ['127.0.0.1'],
  'strict.test': ['127.0.0.1'],
  'internal.test': ['127.0.0.1'],
  'blocked.test': ['127.0.0.1'],
};

let pki: TestPki;
let server: RecordingServer;
let t: TestEdge;
let literalServer: RecordingServer;

beforeAll(async () => {
  pki = await createTestPki();
  server = await startTlsServer({
    pki,
    names: ['api.test', 'other.test', 'strict.test', 'internal.test', 'blocked.test'],
  });
  literalServer = await startTlsServer({ pki, host: '127.0.0.2', names: ['127.0.0.2'] });
  t = await startTestEdge(
    { policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }], limits: { helloTimeout: '1s' } },
    NAMES,
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await server?.close();
  await literalServer?.close();
});
beforeEach(() => {
  server.reset();
  t.capture.lines.length = 0;
});

describe('explicit proxy: TLS through CONNECT', () => {
  it('relays an allowed flow byte for byte and logs one decision and one close event with exact byte counts', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    const secure = await tlsOver(tunnel.socket, { servername: 'api.test', ca: pki.caCertPem });
    const payload = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    const back = await echo(secure, payload);
    expect(back.equals(payload)).toBe(true);
    secure.end();
    await untilClosed(tunnel.socket);
    const { decision, completion } = await t.capture.completed({ 'egress.rule': 'api' });
    expect(decision).toMatchObject({
      'egress.decision': 'allowed',
      'egress.reason': 'allowed',
      'egress.rule': 'api',
      'egress.source': 'edge',
      'egress.hook': 'edge.explicit',
      'url.scheme': 'https',
      'server.address': 'api.test',
      'server.port': server.port,
      'network.peer.address': '127.0.0.1',
      'client.address': '127.0.0.1',
      'tls.client.server_name': 'api.test',
    });
    expect(completion).toMatchObject({
      'egress.outcome': 'ok',
      'tls.protocol.version': 'TLSv1.3',
      'egress.bytes.sent': tunnel.socket.bytesWritten - tunnel.requestBytes,
      'egress.bytes.received': tunnel.socket.bytesRead - tunnel.responseBytes,
    });
    expect(completion['egress.close_reason']).toMatch(/client_closed|upstream_closed/);
    expect(t.capture.decisions()).toHaveLength(1);
    expect(t.capture.completions()).toHaveLength(1);
    expect(server.servernames).toEqual(['api.test']);
  });

  it('refuses a CONNECT/SNI mismatch before dialling (sni_mismatch, zero connections)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    await expect(tlsOver(tunnel.socket, { servername: 'other.test', ca: pki.caCertPem })).rejects.toThrow(
      /alert|socket|ECONNRESET/i,
    );
    const { decision, completion } = await t.capture.completed({ 'egress.reason': 'sni_mismatch' });
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'tls.client.server_name': 'other.test' });
    expect(completion).toMatchObject({ 'egress.outcome': 'denied', 'egress.bytes.sent': 0 });
    expect(server.connections).toBe(0);
    expect(server.bytesReceived).toBe(0);
  });

  it('refuses a hello without SNI (sni_missing)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    tunnel.socket.write(frame(modernHello(undefined)));
    await untilClosed(tunnel.socket);
    await t.capture.completed({ 'egress.reason': 'sni_missing' });
    expect(server.connections).toBe(0);
  });

  it('refuses Encrypted Client Hello (ech_present), even with a matching outer SNI', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    tunnel.socket.write(frame(modernHello('api.test', [ext(0xfe0d, Buffer.alloc(64, 7))])));
    const reply = await untilClosed(tunnel.socket);
    // A fatal access_denied alert, then close.
    expect([...reply.subarray(0, 1)]).toEqual([0x15]);
    expect(reply.at(-1)).toBe(49);
    await t.capture.completed({ 'egress.reason': 'ech_present' });
    expect(server.connections).toBe(0);
  });

  it('reassembles a hello split over many records and TCP segments, then relays it unchanged', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const hello = frame(modernHello('api.test'), [7, 30, 5]);
    for (let i = 0; i < hello.length; i += 50) {
      tunnel.socket.write(hello.subarray(i, i + 50));
      await new Promise((r) => setTimeout(r, 5));
    }
    // The server answers our hand-made hello with a ServerHello (or an alert): either way it got the bytes.
    await waitFor(() => server.bytesReceived >= hello.length || undefined, 5000, 'the hello to arrive');
    expect(server.bytesReceived).toBe(hello.length);
    tunnel.socket.destroy();
    await t.capture.completed({ 'egress.reason': 'allowed' });
  });

  it('refuses garbage on a TLS-only destination (protocol_not_allowed)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    tunnel.socket.write(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0x10, 0x20]));
    await untilClosed(tunnel.socket);
    await t.capture.completed({ 'egress.reason': 'protocol_not_allowed' });
    expect(server.connections).toBe(0);
  });

  it('refuses a hello trickled slower than the hello time limit (hello_timeout)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const hello = frame(modernHello('api.test'));
    let closed = false;
    tunnel.socket.once('close', () => {
      closed = true;
    });
    const started = Date.now();
    const done = untilClosed(tunnel.socket, 5000);
    for (let i = 0; i < hello.length && !closed && i < 40; i++) {
      tunnel.socket.write(hello.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 100));
    }
    await done;
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(800);
    expect(elapsed).toBeLessThan(3000);
    await t.capture.completed({ 'egress.reason': 'hello_timeout' });
    expect(server.connections).toBe(0);
  });

  it('refuses a hello over 16 KiB (hello_too_large)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const big = buildClientHello({
      extensions: [
        sniExt('api.test'),
        supportedVersionsExt(0x0304, 0x0303),
        ext(0x0015, Buffer.alloc(20_000)),
      ],
    });
    tunnel.socket.write(frame(big));
    await untilClosed(tunnel.socket);
    await t.capture.completed({ 'egress.reason': 'hello_too_large' });
    expect(server.connections).toBe(0);
  });

  it('refuses a client whose highest version is below the rule floor (tls_version), before dialling', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `strict.test:${server.port}`);
    const tls12 = buildClientHello({
      extensions: [sniExt('strict.test'), alpnExt('h2'), supportedVersionsExt(0x0303)],
    });
    tunnel.socket.write(frame(tls12));
    const reply = await untilClosed(tunnel.socket);
    expect(reply.at(-1)).toBe(70);
    await t.capture.completed({ 'egress.reason': 'tls_version', 'egress.rule': 'strict' });
    expect(server.connections).toBe(0);
  });

  it('answers 403 to a CONNECT the policy denies outright, without dialling (explicit_deny)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `blocked.test:${server.port}`);
    expect(tunnel.status).toBe(403);
    expect(tunnel.head).toMatch(/x-egress-reason: explicit_deny/);
    await t.capture.completed({
      'egress.decision': 'denied',
      'egress.reason': 'explicit_deny',
      'egress.rule': 'blocked',
    });
    expect(server.connections).toBe(0);
  });

  it('answers 403 to a host no rule lists, and never resolves it', async () => {
    const before = t.resolver.queries.length;
    const tunnel = await connectTunnel(t.port('explicit'), `exfil-data-here.evil.test:${server.port}`);
    expect(tunnel.status).toBe(403);
    expect(tunnel.head).toMatch(/x-egress-reason: host_not_allowed/);
    expect(t.resolver.queries.length).toBe(before);
    expect(server.connections).toBe(0);
  });

  it('denies a name resolving to loopback without privateAddresses: allow (private_address, zero connections)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `internal.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    await expect(
      tlsOver(tunnel.socket, { servername: 'internal.test', ca: pki.caCertPem }),
    ).rejects.toThrow();
    const { decision } = await t.capture.completed({ 'egress.reason': 'private_address' });
    expect(decision).toMatchObject({
      'egress.decision': 'denied',
      'network.peer.address': '127.0.0.1',
    });
    expect(server.connections).toBe(0);
    expect(server.bytesReceived).toBe(0);
  });

  it('never dials an address the client chose: a CONNECT to an IP literal needs an addresses rule', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `127.0.0.1:${server.port}`);
    expect(tunnel.status).toBe(403);
    expect(tunnel.head).toMatch(/x-egress-reason: address_not_allowed/);
    const odd = await connectTunnel(t.port('explicit'), `2130706433:${server.port}`);
    expect(odd.status).toBe(403);
    expect(server.connections).toBe(0);
  });

  it('dials a CONNECT IP literal only where an addresses rule allows it, and then only without a name in the SNI', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `127.0.0.2:${literalServer.port}`);
    expect(tunnel.status).toBe(200);
    // Node sends no SNI when connecting to an address.
    const secure = await tlsOver(tunnel.socket, { host: '127.0.0.2', ca: pki.caCertPem });
    expect((await echo(secure, Buffer.from('by address'))).toString()).toBe('by address');
    secure.destroy();
    const { decision } = await t.capture.completed({ 'egress.rule': 'literal' });
    expect(decision).toMatchObject({ 'server.address': '127.0.0.2', 'network.peer.address': '127.0.0.2' });
    t.capture.lines.length = 0;
    literalServer.reset();
    const named = await connectTunnel(t.port('explicit'), `127.0.0.2:${literalServer.port}`);
    await expect(tlsOver(named.socket, { servername: 'api.test', ca: pki.caCertPem })).rejects.toThrow();
    await t.capture.completed({ 'egress.reason': 'sni_mismatch' });
    expect(literalServer.connections).toBe(0);
  });
});
