/**
 * Threat class 11, blocking too late: a guard that lets `connect()` start and destroys the socket
 * afterwards has already sent a SYN, and the destination has already accepted (the kernel completes the
 * handshake before the application calls accept). The proof here is the servers' accept count: every
 * denied connect, for every client and every kind of denial, must leave it at zero, even in a burst, and
 * even after waiting for anything a backlog could still hand over. A tripwire beneath the guard shows the
 * guard never even called Node's connect for a denied destination it could decide up front.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import axios from 'axios';
import got from 'got';
import { request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  expectEgress,
  installTripwire,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  startTcpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
  type Tripwire,
} from './kit.js';

const NAMES = ['api.example.test', 'evil.example.test', 'internal.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let tcp: RecordingServer;
let tlsServer: RecordingServer;
let plain: RecordingServer;
let secure: RecordingServer;
let sink: EventSink;
let tripwire: Tripwire;

function installGuard() {
  sink = eventSink();
  tripwire = installTripwire();
  install({
    policy: policyOf({
      allow: [
        // Listed on one port only: any other port is port_not_allowed.
        loopbackRule('api', ['api.example.test'], { schemes: ['https', 'http', 'tcp', 'tls'], ports: [1] }),
        // Listed, but resolves to loopback without privateAddresses: allow: refused at dial time.
        {
          name: 'internal',
          hosts: ['internal.example.test'],
          schemes: ['https', 'http', 'tcp', 'tls'],
          ports: EPHEMERAL,
        },
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

/** Each kind of denial, as the host to aim at and the reason expected. Dial-time ones reach a look-up. */
const DENIALS: Array<{ host: string; reason: string; dialTime?: boolean }> = [
  { host: 'evil.example.test', reason: 'host_not_allowed' },
  { host: '127.0.0.1', reason: 'address_not_allowed' },
  { host: 'api.example.test', reason: 'port_not_allowed' },
  { host: 'internal.example.test', reason: 'private_address', dialTime: true },
];

const hostForUrl = (host: string) => host;

function settleRequest(start: () => http.ClientRequest): Promise<unknown> {
  return new Promise((resolve) => {
    const req = start();
    req.on('error', resolve);
    req.on('response', (res) => {
      res.resume();
      resolve(new Error(`got a response ${res.statusCode}`));
    });
  });
}

function socketFailure(socket: net.Socket, event: string): Promise<unknown> {
  return new Promise((resolve) => {
    socket.once('error', resolve);
    socket.once(event, () => resolve(new Error(`${event} fired`)));
  }).finally(() => socket.destroy());
}

/** Every client: each makes one attempt at host on the right server and resolves with what it failed with. */
const CLIENTS: Record<string, (host: string) => Promise<unknown>> = {
  'net.connect': (host) => socketFailure(net.connect({ host, port: tcp.port }), 'connect'),
  'tls.connect': (host) =>
    socketFailure(
      tls.connect({ host, port: tlsServer.port, ca: pki.caCertPem, servername: 'api.example.test' }),
      'secureConnect',
    ),
  'http.request': (host) => settleRequest(() => http.get({ host, port: plain.port })),
  'https.request': (host) => settleRequest(() => https.get({ host, port: secure.port, ca: pki.caCertPem })),
  fetch: (host) =>
    fetch(`https://${hostForUrl(host)}:${secure.port}/`).then(
      () => new Error('fetched'),
      (e) => e,
    ),
  'undici.request': (host) =>
    undiciRequest(`http://${host}:${plain.port}/`).then(
      () => new Error('requested'),
      (e) => e,
    ),
  'http2.connect': (host) => {
    const session = http2.connect(`https://${host}:${secure.port}`, { ca: pki.caCertPem });
    return new Promise((resolve) => {
      session.once('error', resolve);
      session.once('connect', () => resolve(new Error('connected')));
    }).finally(() => session.destroy());
  },
  axios: (host) =>
    axios.get(`http://${host}:${plain.port}/`, { adapter: 'http', proxy: false }).then(
      () => new Error('ok'),
      (e) => e,
    ),
  got: (host) =>
    got.get(`http://${host}:${plain.port}/`, { retry: { limit: 0 } }).then(
      () => new Error('ok'),
      (e) => e,
    ),
};

const servers = () => [tcp, tlsServer, plain, secure];

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  tcp = await startTcpServer();
  tlsServer = await startTlsServer({ pki, names: NAMES });
  plain = await startHttpServer();
  secure = await startHttpsServer({ pki, names: NAMES, http2: true });
});

afterEach(async () => {
  await uninstall();
  tripwire.restore();
  for (const s of servers()) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all(servers().map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 11: blocking too late — a denied connect is never accepted', () => {
  for (const [name, attempt] of Object.entries(CLIENTS)) {
    it(`${name}: every kind of denial leaves every server at zero accepted connections`, async () => {
      installGuard();
      for (const denial of DENIALS) {
        const error = await attempt(denial.host);
        expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: denial.reason });
      }
      // Anything a backlog still held would be accepted by now.
      await settle(150);
      for (const server of servers()) {
        expect(server.connections).toBe(0);
        expect(server.bytesReceived).toBe(0);
      }
      // Denials decided up front never reached Node's connect at all; dial-time ones reached it only to
      // fail in the look-up, before any address was dialled (as do the placeholder sockets of denied http
      // requests and http2 sessions, which the tripwire leaves out).
      const reached = tripwire.connects.map((c) => c.host);
      expect(
        reached.filter((h) => h !== 'internal.example.test' && h !== 'egress-guard-denied.invalid'),
      ).toEqual([]);
      expect(tripwire.refused).toEqual([]);
    });
  }

  it('a burst of 100 denied connects from mixed clients: still zero accepts', async () => {
    installGuard();
    const attempts: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) {
      const denial = DENIALS[i % DENIALS.length]!;
      attempts.push(CLIENTS[i % 2 ? 'net.connect' : 'http.request']!(denial.host));
    }
    const errors = await Promise.all(attempts);
    for (const error of errors) expectEgress(error, { code: 'EGRESS_ERR_DENIED' });
    await settle(200);
    for (const server of servers()) expect(server.connections).toBe(0);
  });

  it('control: the same servers do count an allowed connection (the counter works)', async () => {
    sink = eventSink();
    tripwire = installTripwire();
    install({
      policy: policyOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['tcp'] })] }),
      lookup: lookupVia(dns),
      destination: sink,
    });
    const socket = net.connect({ host: 'api.example.test', port: tcp.port });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.destroy();
    await settle();
    expect(tcp.connections).toBe(1);
  });
});
