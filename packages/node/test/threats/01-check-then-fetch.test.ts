/**
 * Threat class 1, check-then-fetch (DNS rebinding, TTL 0): a name is resolved once to decide and again
 * to connect, and the second answer differs. The guard never decides on an earlier answer: it decides the
 * name, then checks the address each connection actually dials, at the moment it dials it.
 *
 * Set-up: `rebind.example.test` is listed (privateAddresses: deny), and an `addresses` rule covers
 * 127.0.0.2/32 only. The test DNS server answers 127.0.0.2 to the first A query and 127.0.0.1 to every
 * later one (TTL 0). A server listens on each address, on the same port: which one saw a connection is
 * the proof of which address was dialled.
 */
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  errorEvent,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  policyOf,
  type RecordingServer,
  samePort,
  settle,
  startDnsServer,
  startHttpsServer,
  startTcpServer,
  type TestDnsServer,
  type TestPki,
} from './kit.js';

const NAME = 'rebind.example.test';

let pki: TestPki;
let dns: TestDnsServer;
/** [server on 127.0.0.2 (covered by the addresses rule), server on 127.0.0.1 (must see nothing)]. */
let web: [RecordingServer, RecordingServer];
let tcp: [RecordingServer, RecordingServer];
let sink: EventSink;

const policy = () =>
  policyOf({
    allow: [
      { name: 'rebind', hosts: [NAME], schemes: ['https', 'tcp'], ports: EPHEMERAL },
      { name: 'second-loopback', addresses: ['127.0.0.2/32'], schemes: ['https', 'tcp'], ports: EPHEMERAL },
    ],
  });

function installGuard() {
  sink = eventSink();
  install({ policy: policy(), lookup: lookupVia(dns), ca: pki.caCertPem, destination: sink });
}

/** First A query: 127.0.0.2; every later one: 127.0.0.1. TTL 0. */
const rebinding = (n: number) => [{ type: 'A' as const, data: n === 1 ? '127.0.0.2' : '127.0.0.1', ttl: 0 }];
const aQueries = () => dns.queries.filter((q) => q.name === NAME && q.type === 'A').length;
const url = (path = '/') => `https://${NAME}:${web[0].port}${path}`;

function httpsGet(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(url(path), { ca: pki.caCertPem, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({ [NAME]: rebinding });
  const closing = (_req: unknown, res: import('node:http').ServerResponse) => {
    // No keep-alive: every request needs a new connection, and so a new look-up.
    res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' });
    res.end('ok');
  };
  web = await samePort(
    (host) => startHttpsServer({ pki, host, names: [NAME], handler: closing }),
    ['127.0.0.2', '127.0.0.1'],
  );
  tcp = await samePort((host) => startTcpServer({ host }), ['127.0.0.2', '127.0.0.1']);
});

afterEach(async () => {
  await uninstall();
  for (const s of [...web, ...tcp]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([...web, ...tcp].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 1: check-then-fetch / DNS rebinding (TTL 0)', () => {
  it("the application's own check sees 127.0.0.2, fetch's look-up gets 127.0.0.1: refused at dial time", async () => {
    installGuard();
    // The application "validates" the name with the same resolver: the first answer passes its check.
    const checked = await new Promise((resolve, reject) =>
      lookupVia(dns)(NAME, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))),
    );
    expect(checked).toEqual([{ address: '127.0.0.2', family: 4 }]);
    const error = await failureOf(fetch(url('/after-check')));
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'private_address', host: NAME });
    expect(aQueries()).toBe(2);
    await settle();
    expect(web[1].connections).toBe(0);
    expect(web[1].bytesReceived).toBe(0);
    expect(web[0].connections).toBe(0);
    const denial = sink.decisions().find((e) => e['egress.decision'] === 'denied');
    expect(denial).toMatchObject({ 'network.peer.address': '127.0.0.1', 'egress.reason': 'private_address' });
  });

  it('fetch: the first connection dials 127.0.0.2 (allowed); the rebound second one is refused', async () => {
    installGuard();
    const first = await fetch(url('/first'));
    expect(first.status).toBe(200);
    await first.text();
    expect(web[0].connections).toBe(1);
    const error = await failureOf(fetch(url('/second')));
    expectEgress(error, { reason: 'private_address' });
    expect(aQueries()).toBe(2);
    await settle();
    expect(web[1].connections).toBe(0);
    expect(web[0].requests.map((r) => r.url)).toEqual(['/first']);
  });

  it('https.request: the same, decided on the address each connection dials', async () => {
    installGuard();
    expect(await httpsGet('/first')).toBe(200);
    expect(web[0].connections).toBe(1);
    const error = await failureOf(httpsGet('/second'));
    expectEgress(error, { reason: 'private_address' });
    expect(aQueries()).toBe(2);
    await settle();
    expect(web[1].connections).toBe(0);
  });

  it('raw net.connect: the same at the socket layer', async () => {
    installGuard();
    const first = net.connect({ host: NAME, port: tcp[0].port });
    await once(first, 'connect');
    expect(first.remoteAddress).toBe('127.0.0.2');
    first.destroy();
    const second = net.connect({ host: NAME, port: tcp[0].port });
    expectEgress(await errorEvent(second, 'connect'), { reason: 'private_address' });
    await settle();
    expect(tcp[0].connections).toBe(1);
    expect(tcp[1].connections).toBe(0);
  });
});
