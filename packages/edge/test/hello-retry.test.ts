/**
 * HelloRetryRequest: a TLS 1.3 server asks for another key share and the client sends a second
 * ClientHello. The edge relays it, and checks the second hello like the first: it must name the same
 * server (no switching the SNI after the check) and carry no ECH.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../../test/support/index.js';
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
  buildClientHello,
  ext,
  frame,
  keyShareExt,
  modernHello,
  sigAlgsExt,
  sniExt,
  supportedGroupsExt,
  supportedVersionsExt,
} from './sniff/helpers/hello-builder.js';

let pki: TestPki;
let server: tls.Server;
let port = 0;
let handshakes = 0;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  const { certPem, keyPem } = await pki.issue(['api.test', 'evil.test']);
  // Only P-256: a client that sends an X25519 key share gets a HelloRetryRequest.
  server = tls.createServer(
    { cert: certPem, key: keyPem, ecdhCurve: 'P-256', minVersion: 'TLSv1.3' },
    (s) => {
      handshakes++;
      s.on('error', () => {});
      s.pipe(s);
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as import('node:net').AddressInfo).port;
  t = await startTestEdge(
    {
      policy: policyOf(`
version: 1
allow:
  - name: api
    hosts: [api.test, evil.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`),
      listeners: [{ kind: 'explicit', port: 0 }],
    },
    { 'api.test': ['127.0.0.1'], 'evil.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  handshakes = 0;
  t.capture.lines.length = 0;
});

describe('HelloRetryRequest', () => {
  it('relays a handshake that goes through a HelloRetryRequest', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${port}`);
    const secure = await tlsOver(tunnel.socket, {
      servername: 'api.test',
      ca: pki.caCertPem,
      ecdhCurve: 'X25519:P-256',
    });
    expect((await echo(secure, Buffer.from('after retry'))).toString()).toBe('after retry');
    secure.destroy();
    const { completion } = await t.capture.completed({ 'egress.rule': 'api' });
    expect(completion['tls.protocol.version']).toBe('TLSv1.3');
    expect(handshakes).toBe(1);
  });

  it('closes the flow when the second ClientHello names another server (sni_mismatch)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${port}`);
    const received: Buffer[] = [];
    tunnel.socket.on('data', (c: Buffer) => received.push(c));
    tunnel.socket.resume();
    tunnel.socket.write(frame(modernHello('api.test')));
    // Wait for the HelloRetryRequest (a ServerHello record) to come back through the edge.
    await waitFor(() => Buffer.concat(received).length > 5 || undefined, 5000, 'the HelloRetryRequest');
    expect(Buffer.concat(received)[0]).toBe(0x16);
    const second = buildClientHello({
      extensions: [
        sniExt('evil.test'),
        supportedGroupsExt(0x1d, 0x17),
        sigAlgsExt(),
        supportedVersionsExt(0x0304),
        keyShareExt(0x17, 65),
      ],
    });
    tunnel.socket.write(
      Buffer.concat([Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]), frame(second, [], 0x0303)]),
    );
    await untilClosed(tunnel.socket);
    const { decision, completion } = await t.capture.completed({ 'egress.rule': 'api' });
    expect(completion).toMatchObject({ 'egress.outcome': 'denied', 'egress.close_reason': 'sni_mismatch' });
    // The refusal is the flow's one decision: a query for denied decisions finds it.
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'sni_mismatch' });
    expect(String(decision['egress.message'])).toContain('evil.test');
    expect(t.capture.decisions()).toHaveLength(1);
    expect(handshakes).toBe(0);
  });

  it('closes the flow when the second ClientHello carries ECH, and the decision says so (ech_present)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${port}`);
    const received: Buffer[] = [];
    tunnel.socket.on('data', (c: Buffer) => received.push(c));
    tunnel.socket.resume();
    tunnel.socket.write(frame(modernHello('api.test')));
    await waitFor(() => Buffer.concat(received).length > 5 || undefined, 5000, 'the HelloRetryRequest');
    const second = buildClientHello({
      extensions: [
        sniExt('api.test'),
        supportedGroupsExt(0x1d, 0x17),
        sigAlgsExt(),
        supportedVersionsExt(0x0304),
        keyShareExt(0x17, 65),
        ext(0xfe0d, Buffer.alloc(16, 1)),
      ],
    });
    tunnel.socket.write(
      Buffer.concat([Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]), frame(second, [], 0x0303)]),
    );
    await untilClosed(tunnel.socket);
    const { decision, completion } = await t.capture.completed({ 'egress.rule': 'api' });
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'ech_present' });
    expect(completion).toMatchObject({ 'egress.outcome': 'denied', 'egress.close_reason': 'ech_present' });
    expect(t.capture.decisions()).toHaveLength(1);
    expect(handshakes).toBe(0);
  });
});
