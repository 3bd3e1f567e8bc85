/**
 * Threat class 3, names that resolve to internal addresses (wildcard-DNS services such as
 * `127.0.0.1.nip.io`): the name is listed, its answer is special-purpose. A name rule without
 * `privateAddresses: allow` must refuse every such address at dial time, for every client, and the server
 * (reachable at that address) must see nothing. Here `*.nip.example.test` is a wildcard zone on the test
 * DNS server, as nip.io is on the Internet.
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
  errorEvent,
  eventSink,
  expectEgress,
  failureOf,
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
} from './kit.js';

const WILDCARD = '127.0.0.1.nip.example.test';
const ZERO = '0.0.0.0.nip.example.test';
const V6 = 'ip6-loopback.nip.example.test';
const NAMES = [WILDCARD, ZERO, V6, 'control.example.test', 'localhost'];

let pki: TestPki;
let dns: TestDnsServer;
let web: RecordingServer;
let web6: RecordingServer;
let plain: RecordingServer;
let tcp: RecordingServer;
let tlsServer: RecordingServer;
let sink: EventSink;

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        // The wildcard zone is listed; its answers are not (privateAddresses defaults to deny).
        {
          name: 'nip',
          hosts: ['**.nip.example.test'],
          schemes: ['https', 'http', 'tcp', 'tls'],
          ports: EPHEMERAL,
        },
        loopbackRule('control', ['control.example.test'], { schemes: ['https'] }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

/** Refused at dial time as private_address, naming the special range; the server saw nothing. */
async function expectRefused(error: unknown, server: RecordingServer, range = 'loopback'): Promise<void> {
  const egress = expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'private_address', rule: 'nip' });
  expect(egress.message).toContain(range);
  await settle();
  expect(server.connections).toBe(0);
  expect(server.bytesReceived).toBe(0);
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    '*.nip.example.test': [{ type: 'A', data: '127.0.0.1' }],
    [ZERO]: [{ type: 'A', data: '0.0.0.0' }],
    [V6]: [{ type: 'AAAA', data: '::1' }],
    'control.example.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  web = await startHttpsServer({ pki, names: NAMES });
  web6 = await startHttpsServer({ pki, names: NAMES, host: '::1' });
  plain = await startHttpServer();
  tcp = await startTcpServer();
  tlsServer = await startTlsServer({ pki, names: NAMES });
});

afterEach(async () => {
  await uninstall();
  for (const s of [web, web6, plain, tcp, tlsServer]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([web, web6, plain, tcp, tlsServer].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 3: names that resolve to internal addresses (wildcard DNS)', () => {
  it('control: a name whose rule allows private addresses reaches the same server', async () => {
    installGuard();
    const res = await fetch(`https://control.example.test:${web.port}/`);
    expect(res.status).toBe(200);
    await res.text();
  });

  it(`fetch https://${WILDCARD}: the name is listed, its loopback answer is refused`, async () => {
    installGuard();
    await expectRefused(await failureOf(fetch(`https://${WILDCARD}:${web.port}/`)), web);
    expect(dns.queries.some((q) => q.name === WILDCARD)).toBe(true);
    expect(sink.decisions().at(-1)).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'private_address',
      'network.peer.address': '127.0.0.1',
      'server.address': WILDCARD,
    });
  });

  it('https.request and http.request', async () => {
    installGuard();
    const get = (mod: typeof https | typeof http, url: string) =>
      new Promise((resolve, reject) => {
        mod.get(url, { ca: pki.caCertPem }, (res) => resolve(res.resume())).on('error', reject);
      });
    await expectRefused(await failureOf(get(https, `https://${WILDCARD}:${web.port}/`)), web);
    await expectRefused(await failureOf(get(http, `http://${WILDCARD}:${plain.port}/`)), plain);
  });

  it('undici.request, axios and got', async () => {
    installGuard();
    const url = `https://${WILDCARD}:${web.port}/`;
    await expectRefused(await failureOf(undiciRequest(url)), web);
    await expectRefused(await failureOf(axios.get(url, { adapter: 'http', proxy: false })), web);
    await expectRefused(await failureOf(got.get(url, { retry: { limit: 0 } })), web);
  });

  it('http2.connect: the session is refused before it connects', async () => {
    installGuard();
    const session = http2.connect(`https://${WILDCARD}:${web.port}`, { ca: pki.caCertPem });
    await expectRefused(await errorEvent(session, 'connect'), web);
    session.destroy();
  });

  it('raw net.connect and tls.connect', async () => {
    installGuard();
    await expectRefused(await errorEvent(net.connect({ host: WILDCARD, port: tcp.port }), 'connect'), tcp);
    await expectRefused(
      await errorEvent(
        tls.connect({ host: WILDCARD, port: tlsServer.port, ca: pki.caCertPem }),
        'secureConnect',
      ),
      tlsServer,
    );
  });

  it('a name answered 0.0.0.0 (which reaches this host) is refused as unspecified', async () => {
    installGuard();
    await expectRefused(await failureOf(fetch(`https://${ZERO}:${web.port}/`)), web, 'unspecified');
    const socket = net.connect({ host: ZERO, port: tcp.port });
    await expectRefused(await errorEvent(socket, 'connect'), tcp, 'unspecified');
  });

  it('a name answered only with AAAA ::1 is refused as loopback', async () => {
    installGuard();
    await expectRefused(await failureOf(fetch(`https://${V6}:${web6.port}/`)), web6);
  });

  it('nothing is left half-open: a refused socket never emitted connect', async () => {
    installGuard();
    const socket = net.connect({ host: WILDCARD, port: tcp.port });
    let connected = false;
    socket.on('error', () => {});
    socket.on('connect', () => {
      connected = true;
    });
    await new Promise((resolve) => socket.once('close', resolve));
    expect(connected).toBe(false);
    expect(tcp.connections).toBe(0);
  });
});
