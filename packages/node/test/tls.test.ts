/**
 * The TLS floor and the certificate-verification rule, for fetch and for raw tls.connect: a server below
 * the rule's minVersion is refused with EGRESS_ERR_TLS (reason tls_version), a caller turning
 * verification off is refused (tls_verify_disabled) unless the rule says tls.verify: false, in which
 * case each use is logged.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  settle,
  startDnsServer,
  startHttpsServer,
  startLegacyTlsServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

const NAMES = [
  'modern.example.test',
  'tls12.example.test',
  'legacy.example.test',
  'raw.example.test',
  'insecure.example.test',
];

let pki: TestPki;
let dns: TestDnsServer;
let tls12: RecordingServer;
let legacy: RecordingServer;
let raw12: RecordingServer;
let modern: RecordingServer;
let sink: EventSink;

const url = (host: string, server: RecordingServer, path = '/') => `https://${host}:${server.port}${path}`;

function installWith(allow: Array<Record<string, unknown>>) {
  sink = eventSink();
  return install({
    policy: policyOf({ allow }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

function failure(socket: tls.TLSSocket): Promise<Error & Record<string, any>> {
  return new Promise((resolve, reject) => {
    socket.once('error', resolve);
    socket.once('secureConnect', () =>
      reject(new Error('handshake succeeded, but should have been refused')),
    );
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(
    Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A' as const, data: '127.0.0.1' }]])),
  );
  const names = [...NAMES, 'localhost'];
  tls12 = await startHttpsServer({ pki, names, maxVersion: 'TLSv1.2' });
  legacy = await startLegacyTlsServer({ pki, names });
  raw12 = await startTlsServer({ pki, names, maxVersion: 'TLSv1.2' });
  modern = await startHttpsServer({ pki, names });
});

afterEach(async () => {
  await uninstall();
  for (const s of [tls12, legacy, raw12, modern]) s.reset();
});

afterAll(async () => {
  await Promise.all([tls12, legacy, raw12, modern].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('TLS floor', () => {
  it("fetch: a rule's minVersion TLSv1.3 refuses a TLS 1.2 server with EGRESS_ERR_TLS / tls_version", async () => {
    installWith([loopbackRule('strict', ['tls12.example.test'], { tls: { minVersion: 'TLSv1.3' } })]);
    const error = await rejection(fetch(url('tls12.example.test', tls12)));
    expect(error.message).toBe('fetch failed');
    expect(error.cause as unknown).toBeInstanceOf(EgressError);
    expect(error.cause).toMatchObject({
      code: 'EGRESS_ERR_TLS',
      reason: 'tls_version',
      rule: 'strict',
      host: 'tls12.example.test',
    });
    expect(error.cause.message).toContain('TLSv1.3');
    expect(tls12.tlsVersions).toEqual([]);
    expect(tls12.requests).toEqual([]);
  });

  it('fetch: the same server is fine on the default floor (TLSv1.2)', async () => {
    installWith([loopbackRule('default-floor', ['tls12.example.test'])]);
    const res = await fetch(url('tls12.example.test', tls12));
    expect(res.status).toBe(200);
    await res.text();
    expect(tls12.tlsVersions).toEqual(['TLSv1.2']);
  });

  it('fetch: a TLS 1.1-only server is refused on the default floor', async () => {
    installWith([loopbackRule('legacy', ['legacy.example.test'])]);
    const error = await rejection(fetch(url('legacy.example.test', legacy)));
    expect(error.cause).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version', rule: 'legacy' });
    expect(legacy.tlsVersions).toEqual([]);
    expect(legacy.requests).toEqual([]);
  });

  it("raw tls.connect: the caller's own minVersion TLSv1 is raised to the floor; the TLS 1.1 server is refused", async () => {
    installWith([loopbackRule('legacy', ['legacy.example.test'], { schemes: ['tls'] })]);
    const socket = tls.connect({
      host: 'legacy.example.test',
      port: legacy.port,
      ca: pki.caCertPem,
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    const error = await failure(socket);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version', rule: 'legacy' });
    expect(error.cause).toBeDefined();
    expect(legacy.tlsVersions).toEqual([]);
  });

  it('raw tls.connect: a rule floor TLSv1.3 against a TLS 1.2 server', async () => {
    installWith([
      loopbackRule('strict-raw', ['raw.example.test'], { schemes: ['tls'], tls: { minVersion: 'TLSv1.3' } }),
    ]);
    const error = await failure(
      tls.connect({ host: 'raw.example.test', port: raw12.port, ca: pki.caCertPem }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version', rule: 'strict-raw' });
    expect(raw12.tlsVersions).toEqual([]);
  });

  it('raw tls.connect: a caller capping TLS below the floor is refused before connecting', async () => {
    installWith([
      loopbackRule('strict-raw', ['raw.example.test'], { schemes: ['tls'], tls: { minVersion: 'TLSv1.3' } }),
    ]);
    const error = await failure(
      tls.connect({ host: 'raw.example.test', port: raw12.port, ca: pki.caCertPem, maxVersion: 'TLSv1.2' }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version' });
    expect(error.message).toContain('capped TLS at TLSv1.2');
    await settle();
    expect(raw12.connections).toBe(0);
    expect(sink.decisions().at(-1)).toMatchObject({
      'egress.reason': 'tls_version',
      'egress.hook': 'tls.floor',
    });
  });

  it("raw tls.connect: the floor's finding and the completion share the connection's id", async () => {
    // Before: the tls.floor decision got a fresh id, linked to nothing.
    installWith([
      loopbackRule('strict-raw', ['raw.example.test'], { schemes: ['tls'], tls: { minVersion: 'TLSv1.3' } }),
    ]);
    await failure(
      tls.connect({ host: 'raw.example.test', port: raw12.port, ca: pki.caCertPem, maxVersion: 'TLSv1.2' }),
    );
    await settle();
    const [connection, floor] = sink.decisions();
    expect(connection).toMatchObject({ 'egress.hook': 'tls', 'egress.decision': 'allowed' });
    expect(floor).toMatchObject({ 'egress.hook': 'tls.floor', 'egress.reason': 'tls_version' });
    expect(floor!['egress.id']).toBe(connection!['egress.id']);
    expect(sink.completions()).toEqual([
      expect.objectContaining({
        'egress.id': connection!['egress.id'],
        'egress.outcome': 'tls',
        'error.type': 'tls_version',
      }),
    ]);
  });

  it('the negotiated version is at or above the floor when allowed', async () => {
    installWith([loopbackRule('modern', ['modern.example.test'], { tls: { minVersion: 'TLSv1.3' } })]);
    const res = await fetch(url('modern.example.test', modern));
    expect(res.status).toBe(200);
    await res.text();
    expect(modern.tlsVersions).toEqual(['TLSv1.3']);
  });
});

describe('certificate verification', () => {
  it('raw tls.connect with rejectUnauthorized: false is refused (tls_verify_disabled), zero connections', async () => {
    installWith([loopbackRule('raw', ['raw.example.test'], { schemes: ['tls'] })]);
    const error = await failure(
      tls.connect({ host: 'raw.example.test', port: raw12.port, rejectUnauthorized: false }),
    );
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled', rule: 'raw' });
    expect(error.message).toContain('tls: { verify: false }');
    await settle();
    expect(raw12.connections).toBe(0);
    expect(sink.decisions().at(-1)).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'tls_verify_disabled',
    });
  });

  it('NODE_TLS_REJECT_UNAUTHORIZED=0 counts as turning verification off', async () => {
    installWith([loopbackRule('raw', ['raw.example.test'], { schemes: ['tls'] })]);
    const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const error = await failure(tls.connect({ host: 'raw.example.test', port: raw12.port }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled' });
    } finally {
      if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
    }
    await settle();
    expect(raw12.connections).toBe(0);
  });

  it("fetch through a caller's Agent with rejectUnauthorized: false is refused", async () => {
    installWith([loopbackRule('insecure', ['insecure.example.test'])]);
    const agent = new Agent({ connect: { rejectUnauthorized: false, lookup: lookupVia(dns) } });
    try {
      const error = await rejection(
        fetch(url('insecure.example.test', modern), { dispatcher: agent } as unknown as RequestInit),
      );
      expect(error.cause).toMatchObject({
        code: 'EGRESS_ERR_TLS',
        reason: 'tls_verify_disabled',
        rule: 'insecure',
      });
      await settle();
      expect(modern.connections).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('allowed where the rule says tls.verify: false, and every use is logged', async () => {
    installWith([
      loopbackRule('insecure', ['insecure.example.test'], { schemes: ['tls'], tls: { verify: false } }),
    ]);
    for (let i = 0; i < 2; i++) {
      // No CA: the certificate cannot be verified, and need not be.
      const socket = tls.connect({
        host: 'insecure.example.test',
        port: raw12.port,
        rejectUnauthorized: false,
      });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(false);
      socket.destroy();
    }
    expect(raw12.tlsVersions).toHaveLength(2);
    const uses = sink.decisions().filter((e) => e['egress.hook'] === 'tls.verify-disabled');
    expect(uses).toHaveLength(2);
    expect(uses.every((e) => e['egress.decision'] === 'allowed' && e['egress.rule'] === 'insecure')).toBe(
      true,
    );
    // Each use is recorded under the id of the connection it belongs to.
    const connections = sink.decisions().filter((e) => e['egress.hook'] === 'tls');
    expect(uses.map((e) => e['egress.id'])).toEqual(connections.map((e) => e['egress.id']));
    expect(new Set(uses.map((e) => e['egress.id'])).size).toBe(2);
  });

  it("fetch through a caller's Agent with rejectUnauthorized: false, where the rule allows it", async () => {
    installWith([loopbackRule('insecure', ['insecure.example.test'], { tls: { verify: false } })]);
    const agent = new Agent({ connect: { rejectUnauthorized: false, lookup: lookupVia(dns) } });
    try {
      const res = await fetch(url('insecure.example.test', modern), {
        dispatcher: agent,
      } as unknown as RequestInit);
      expect(res.status).toBe(200);
      await res.text();
      expect(sink.decisions().filter((e) => e['egress.hook'] === 'tls.verify-disabled')).toHaveLength(1);
    } finally {
      await agent.close();
    }
  });

  it('an untrusted certificate is still refused by verification (the guard never turns it off)', async () => {
    installWith([loopbackRule('raw', ['raw.example.test'], { schemes: ['tls'] })]);
    const error = await failure(tls.connect({ host: 'raw.example.test', port: raw12.port }));
    expect(error).not.toBeInstanceOf(EgressError);
    expect((error as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED|UNABLE_TO|CERT/);
  });
});
