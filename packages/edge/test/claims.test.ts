/**
 * Claims against facts: the resolver cache that keeps recent answers for their TTL, and the transparent
 * listener's check that the SNI or Host resolves to the original destination. The original destination
 * is injected here (the listener's `originalDestination` option); the namespace tests with real
 * iptables REDIRECT live in transparent*.test.ts.
 */
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  startDnsServer,
  startHttpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
} from '../../../test/support/index.js';
import { ResolverCache } from '../src/index.js';
import {
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  staticResolver,
  TEST_PORTS,
  type TestEdge,
  tlsOver,
  untilClosed,
} from './helpers/edge-kit.js';

describe('ResolverCache', () => {
  it('keeps every recent answer for its TTL, so round-robin names do not flap', async () => {
    let now = 1_000_000;
    let turn = 0;
    const answers = [['192.0.2.1'], ['192.0.2.2'], ['192.0.2.3']];
    const queries: string[] = [];
    const cache = new ResolverCache({
      now: () => now,
      minRetentionMs: 1000,
      resolver: {
        resolve4: async (name) => {
          queries.push(name);
          return answers[turn++ % answers.length]!.map((address) => ({ address, ttl: 30 }));
        },
        resolve6: async () => [],
      },
    });
    expect(await cache.resolve('rr.test')).toEqual(['192.0.2.1']);
    expect(await cache.resolve('rr.test')).toEqual(['192.0.2.2']);
    // Both earlier answers still count, without a query.
    const before = queries.length;
    expect(await cache.resolvesTo('rr.test', '192.0.2.1')).toBe(true);
    expect(await cache.resolvesTo('rr.test', '192.0.2.2')).toBe(true);
    expect(queries.length).toBe(before);
    // An address never seen triggers one fresh query (which answers .3), and is then accepted.
    expect(await cache.resolvesTo('rr.test', '192.0.2.3')).toBe(true);
    expect(await cache.resolvesTo('rr.test', '198.51.100.7')).toBe(false);
    // After the TTL the old answers are gone.
    now += 31_000;
    turn = 2;
    expect(await cache.resolvesTo('rr.test', '192.0.2.1')).toBe(false);
  });

  it('keeps TTL-0 answers for the minimum retention, and compares IPv4-mapped addresses as IPv4', async () => {
    let now = 0;
    const cache = new ResolverCache({
      now: () => now,
      minRetentionMs: 5000,
      resolver: { resolve4: async () => [{ address: '203.0.113.9', ttl: 0 }], resolve6: async () => [] },
    });
    await cache.resolve('zero.test');
    now = 4000;
    expect(await cache.resolvesTo('zero.test', '::ffff:203.0.113.9')).toBe(true);
  });

  it('bounds the number of names it keeps', async () => {
    const cache = new ResolverCache({
      maxNames: 3,
      resolver: { resolve4: async () => [{ address: '192.0.2.1', ttl: 60 }], resolve6: async () => [] },
    });
    for (let i = 0; i < 10; i++) await cache.resolve(`n${i}.test`);
    expect(cache.size).toBe(3);
  });

  it('treats resolver errors and hung look-ups as no answer', async () => {
    const cache = new ResolverCache({
      timeoutMs: 50,
      resolver: {
        resolve4: () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' })),
        resolve6: () => new Promise(() => {}),
      },
    });
    expect(await cache.resolve('missing.test')).toEqual([]);
  });

  it('resolves through a real DNS server with dns.promises.Resolver', async () => {
    const dns = await startDnsServer({ 'real.test': [{ type: 'A', data: '127.0.0.1', ttl: 60 }] });
    try {
      const cache = new ResolverCache({ servers: [`${dns.address}:${dns.port}`] });
      expect(await cache.resolve('real.test')).toEqual(['127.0.0.1']);
      expect(await cache.resolvesTo('real.test', '127.0.0.1')).toBe(true);
    } finally {
      await dns.close();
    }
  });
});

const POLICY = `
version: 1
allow:
  - name: api
    hosts: [api.test, elsewhere.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: web
    hosts: [web.test, elsewhere.test]
    schemes: [http]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`;

describe('transparent listener: the claim must resolve to the original destination', () => {
  let pki: TestPki;
  let tlsServer: RecordingServer;
  let web: RecordingServer;
  let t: TestEdge;
  let original: { address: string; port: number } | Error;

  beforeAll(async () => {
    pki = await createTestPki();
    tlsServer = await startTlsServer({ pki, names: ['api.test', 'elsewhere.test'] });
    web = await startHttpServer();
    t = await startTestEdge(
      {
        policy: policyOf(POLICY),
        listeners: [
          {
            kind: 'transparent',
            port: 0,
            originalDestination: () => {
              if (original instanceof Error) throw original;
              return original;
            },
          },
        ],
      },
      // elsewhere.test is allowed, but lives at another address than the one the client dialled.
      { 'api.test': ['127.0.0.1'], 'web.test': ['127.0.0.1'], 'elsewhere.test': ['127.0.0.2'] },
    );
  });
  afterAll(async () => {
    // Every event written validates against the audit event schema.
    expect(t?.capture.invalid ?? []).toEqual([]);
    await t?.close();
    await tlsServer?.close();
    await web?.close();
  });
  beforeEach(() => {
    tlsServer.reset();
    web.reset();
    t.capture.lines.length = 0;
  });

  const connect = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(t.port('transparent'), '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });

  it('relays TLS whose SNI resolves to the address the client dialled, dialling that address', async () => {
    original = { address: '127.0.0.1', port: tlsServer.port };
    const secure = await tlsOver(await connect(), { servername: 'api.test', ca: pki.caCertPem });
    expect((await echo(secure, Buffer.from('ping'))).toString()).toBe('ping');
    secure.destroy();
    const { decision } = await t.capture.completed({ 'egress.hook': 'edge.transparent' });
    expect(decision).toMatchObject({
      'egress.decision': 'allowed',
      'network.peer.address': '127.0.0.1',
      'server.address': 'api.test',
    });
    expect(tlsServer.servernames).toEqual(['api.test']);
  });

  it('refuses an allowed SNI that does not resolve to the dialled address (dns_mismatch, zero connections)', async () => {
    original = { address: '127.0.0.1', port: tlsServer.port };
    await expect(
      tlsOver(await connect(), { servername: 'elsewhere.test', ca: pki.caCertPem }),
    ).rejects.toThrow();
    const { decision } = await t.capture.completed({ 'egress.reason': 'dns_mismatch' });
    expect(decision).toMatchObject({
      'egress.decision': 'denied',
      'tls.client.server_name': 'elsewhere.test',
    });
    expect(tlsServer.connections).toBe(0);
  });

  it('checks the Host header of plaintext HTTP the same way', async () => {
    original = { address: '127.0.0.1', port: web.port };
    const ask = (host: string) =>
      new Promise<string>((resolve) => {
        const s = net.connect(t.port('transparent'), '127.0.0.1', () =>
          s.write(`GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
        );
        untilClosed(s).then(
          (b) => resolve(b.toString('latin1')),
          () => resolve(''),
        );
      });
    expect(await ask(`web.test:${web.port}`)).toMatch(/^HTTP\/1.1 200/);
    expect(await ask('elsewhere.test')).toMatch(/^HTTP\/1.1 403 .*x-egress-reason: dns_mismatch/s);
    expect(web.requests.map((r) => r.headers.host)).toEqual([`web.test:${web.port}`]);
  });

  it('refuses a connection that was not redirected, or whose original destination is the listener itself', async () => {
    original = new Error('ENOENT: no original destination');
    const a = await connect();
    a.write('x');
    await untilClosed(a);
    await t.capture.completed({ 'egress.reason': 'invalid_destination' });
    t.capture.lines.length = 0;
    original = { address: '127.0.0.1', port: t.port('transparent') };
    const b = await connect();
    await untilClosed(b);
    const { decision } = await t.capture.completed({ 'egress.reason': 'invalid_destination' });
    expect(String(decision['egress.message'])).toMatch(/listener itself/);
  });
});

describe('the edge resolves names only after the policy allows them', () => {
  let dns: TestDnsServer;
  let server: RecordingServer;
  let t: TestEdge;
  let pki: TestPki;

  beforeAll(async () => {
    pki = await createTestPki();
    dns = await startDnsServer({ 'api.test': [{ type: 'A', data: '127.0.0.1' }] });
    server = await startTlsServer({ pki, names: ['api.test'] });
    t = await startTestEdge({
      policy: policyOf(POLICY),
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { servers: [`${dns.address}:${dns.port}`] },
    });
  });
  afterAll(async () => {
    // Every event written validates against the audit event schema.
    expect(t?.capture.invalid ?? []).toEqual([]);
    await t?.close();
    await server?.close();
    await dns?.close();
  });

  it('dials through its own resolver, and never sends a name no rule allows to DNS', async () => {
    const ok = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const secure = await tlsOver(ok.socket, { servername: 'api.test', ca: pki.caCertPem });
    secure.destroy();
    expect(dns.queries.some((q) => q.name === 'api.test')).toBe(true);
    const denied = await connectTunnel(t.port('explicit'), `c2VjcmV0.exfil.test:${server.port}`);
    expect(denied.status).toBe(403);
    expect(dns.queries.some((q) => q.name.includes('exfil'))).toBe(false);
  });

  it('uses a static resolver helper for the other suites', () => {
    expect(staticResolver({ 'a.test': ['127.0.0.1'] })).toHaveProperty('resolve4');
  });
});
