/**
 * Threat class 5, unusual IPv4 spellings: `127.1`, `0x7f.1`, `017700000001`, `2130706433` and `0` all
 * dial this host (`inet_aton` and the WHATWG URL parser agree on them). A checker that reads them as
 * names, or as other addresses, decides something other than what is dialled.
 *
 * The policy here allows every IPv4 address (`0.0.0.0/0`) and denies 127.0.0.0/8 and 0.0.0.0/32: a
 * spelling parsed any other way than the dialler parses it would be allowed, and the server would see the
 * connection. Every client must be refused with explicit_deny (rule "local"), and the servers must see
 * nothing. Names are resolved with the real `dns.lookup` here (getaddrinfo parses these spellings itself,
 * without a query), so a raw client dials exactly what Node would.
 */
import type { IncomingMessage } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import axios from 'axios';
import got from 'got';
import nodeFetch from 'node-fetch';
import { request as undiciRequest } from 'undici';
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
  installTripwire,
  policyOf,
  type RecordingServer,
  settle,
  startHttpServer,
  startHttpsServer,
  startTcpServer,
  startTlsServer,
  type TestPki,
  type Tripwire,
} from './kit.js';

const SPELLINGS: Array<[spelling: string, canonical: string]> = [
  ['127.1', '127.0.0.1'],
  ['0x7f.1', '127.0.0.1'],
  ['017700000001', '127.0.0.1'],
  ['2130706433', '127.0.0.1'],
  ['0', '0.0.0.0'],
  ['0177.0.0.1', '127.0.0.1'],
  ['0x7f000001', '127.0.0.1'],
  ['127.0.1', '127.0.0.1'],
];

let pki: TestPki;
let web: RecordingServer;
let plain: RecordingServer;
let tcp: RecordingServer;
let tlsServer: RecordingServer;
let sink: EventSink;
let tripwire: Tripwire;

const anyIpv4 = {
  name: 'any-ipv4',
  addresses: ['0.0.0.0/0'],
  schemes: ['https', 'http', 'tcp', 'tls'],
  ports: EPHEMERAL,
};

function installGuard(withDeny = true) {
  sink = eventSink();
  tripwire = installTripwire();
  install({
    policy: policyOf({
      allow: [anyIpv4],
      deny: withDeny ? [{ name: 'local', addresses: ['127.0.0.0/8', '0.0.0.0/32'] }] : [],
    }),
    ca: pki.caCertPem,
    destination: sink,
  });
}

const body = (res: IncomingMessage) =>
  new Promise<number>((resolve) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode ?? 0));
  });

const get = (mod: typeof http | typeof https, target: string | https.RequestOptions) =>
  new Promise<number>((resolve, reject) => {
    const req =
      typeof target === 'string'
        ? mod.get(target, { ca: pki.caCertPem }, (res) => resolve(body(res)))
        : mod.get({ ca: pki.caCertPem, ...target }, (res) => resolve(body(res)));
    req.on('error', reject);
  });

const connect = (socket: net.Socket, event = 'connect') =>
  errorEvent(socket, event).finally(() => socket.destroy());

/** Every client, each aimed at the spelling; each returns what it failed with. */
const clients: Record<string, (host: string) => Promise<unknown>> = {
  'fetch (URL)': (h) => failureOf(fetch(`http://${h}:${plain.port}/`)),
  'http.get (URL string)': (h) => failureOf(get(http, `http://${h}:${plain.port}/`)),
  'http.get ({ host })': (h) => failureOf(get(http, { host: h, port: plain.port })),
  'https.get ({ hostname })': (h) => failureOf(get(https, { hostname: h, port: web.port })),
  'undici.request': (h) => failureOf(undiciRequest(`http://${h}:${plain.port}/`)),
  axios: (h) => failureOf(axios.get(`http://${h}:${plain.port}/`, { adapter: 'http', proxy: false })),
  got: (h) => failureOf(got.get(`http://${h}:${plain.port}/`, { retry: { limit: 0 } })),
  'node-fetch': (h) => failureOf(nodeFetch(`http://${h}:${plain.port}/`)),
  'net.connect': (h) => connect(net.connect({ host: h, port: tcp.port })),
  'tls.connect': (h) =>
    connect(tls.connect({ host: h, port: tlsServer.port, ca: pki.caCertPem }), 'secureConnect'),
};

beforeAll(async () => {
  pki = await createTestPki();
  web = await startHttpsServer({ pki, names: ['localhost', '127.0.0.1'] });
  plain = await startHttpServer();
  tcp = await startTcpServer();
  tlsServer = await startTlsServer({ pki, names: ['localhost', '127.0.0.1'] });
});

afterEach(async () => {
  await uninstall();
  tripwire.restore();
  expect(tripwire.refused).toEqual([]);
  for (const s of [web, plain, tcp, tlsServer]) s.reset();
});

afterAll(async () => {
  await Promise.all([web, plain, tcp, tlsServer].map((s) => s.close()));
  await pki.cleanup();
});

describe('threat 5: unusual IPv4 spellings are decided as the address they dial', () => {
  for (const [spelling, canonical] of SPELLINGS) {
    it(`${spelling} (= ${canonical}): every client refused by the deny rule, no server sees a connection`, async () => {
      installGuard();
      for (const [name, call] of Object.entries(clients)) {
        const error = await call(spelling);
        // node-fetch keeps only the code and the message of the request's error.
        if (name === 'node-fetch') {
          expect(error, name).toMatchObject({ code: 'EGRESS_ERR_DENIED' });
          expect((error as Error).message, name).toContain('[explicit_deny]');
        } else {
          expectEgress(error, {
            code: 'EGRESS_ERR_DENIED',
            reason: 'explicit_deny',
            rule: 'local',
            host: canonical,
          });
        }
      }
      await settle();
      for (const server of [web, plain, tcp, tlsServer]) expect(server.connections).toBe(0);
      expect(tripwire.connects).toEqual([]);
    });
  }

  it('control: without the deny rule the same spellings really reach this host (so the denials above matter)', async () => {
    installGuard(false);
    for (const spelling of ['127.1', '0x7f.1', '017700000001', '2130706433', '0']) {
      const socket = net.connect({ host: spelling, port: tcp.port });
      await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.destroy();
      expect(await get(http, { host: spelling, port: plain.port })).toBe(200);
    }
    expect(tcp.connections).toBe(5);
    expect(plain.connections).toBe(5);
    const hosts = new Set(sink.decisions().map((e) => e['server.address']));
    expect([...hosts].sort()).toEqual(['0.0.0.0', '127.0.0.1']);
  });
});
