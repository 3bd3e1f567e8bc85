/**
 * Threat class 2, IP-literal URLs that never reach a `lookup` hook: a guard that checks addresses only in
 * its look-up never sees `https://127.0.0.1/`. Here a name rule allows a loopback name (privateAddresses:
 * allow), and no `addresses` rule covers 127.0.0.1 or ::1: every literal must be refused by every client,
 * although the guard's look-up is never called (asserted), and the server must see nothing. With an
 * `addresses` rule the same literal is allowed, still without any look-up.
 */
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import axios from 'axios';
import got from 'got';
import { request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  countingLookup,
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
  startHttpsServer,
  startTcpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
} from './kit.js';

let pki: TestPki;
let dns: TestDnsServer;
let web: RecordingServer;
let web6: RecordingServer;
let tcp: RecordingServer;
let tlsServer: RecordingServer;
let sink: EventSink;
let lookup: ReturnType<typeof countingLookup>;

const NAMES = ['api.example.test', 'localhost', '127.0.0.1', '::1'];

function installGuard(extra: Array<Record<string, unknown>> = []) {
  sink = eventSink();
  lookup = countingLookup(lookupVia(dns));
  install({
    policy: policyOf({
      allow: [loopbackRule('api', ['api.example.test'], { schemes: ['https', 'tcp', 'tls'] }), ...extra],
    }),
    lookup,
    ca: pki.caCertPem,
    destination: sink,
  });
}

const addressRule = {
  name: 'loopback-literal',
  addresses: ['127.0.0.1/32', '::1/128'],
  schemes: ['https', 'tcp', 'tls'],
  ports: EPHEMERAL,
};

function httpsGet(target: string | https.RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    };
    const req =
      typeof target === 'string'
        ? https.get(target, { ca: pki.caCertPem }, done)
        : https.get({ ca: pki.caCertPem, ...target }, done);
    req.on('error', reject);
  });
}

/** Nothing reached the server, and nothing was looked up (neither the guard's lookup nor DNS). */
async function expectUntouched(server: RecordingServer): Promise<void> {
  await settle();
  expect(server.connections).toBe(0);
  expect(server.bytesReceived).toBe(0);
  expect(lookup.calls).toEqual([]);
  expect(dns.queries).toEqual([]);
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({ 'api.example.test': [{ type: 'A', data: '127.0.0.1' }] });
  web = await startHttpsServer({ pki, names: NAMES });
  web6 = await startHttpsServer({ pki, names: NAMES, host: '::1' });
  tcp = await startTcpServer();
  tlsServer = await startTlsServer({ pki, names: NAMES });
});

afterEach(async () => {
  await uninstall();
  for (const s of [web, web6, tcp, tlsServer]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([web, web6, tcp, tlsServer].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 2: IP-literal URLs never reach a lookup hook', () => {
  it('control: the listed name reaches the same server (it is up, and looked up)', async () => {
    installGuard();
    const res = await fetch(`https://api.example.test:${web.port}/`);
    expect(res.status).toBe(200);
    await res.text();
    expect(lookup.calls).toEqual(['api.example.test']);
  });

  it('fetch https://127.0.0.1: address_not_allowed, no look-up, zero connections', async () => {
    installGuard();
    const error = await failureOf(fetch(`https://127.0.0.1:${web.port}/`));
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed', host: '127.0.0.1' });
    await expectUntouched(web);
  });

  it('fetch https://[::1]: address_not_allowed, zero connections', async () => {
    installGuard();
    const error = await failureOf(fetch(`https://[::1]:${web6.port}/`));
    expectEgress(error, { reason: 'address_not_allowed', host: '::1' });
    await expectUntouched(web6);
  });

  it('https.request with a URL string and with { host } options: address_not_allowed', async () => {
    installGuard();
    expectEgress(await failureOf(httpsGet(`https://127.0.0.1:${web.port}/`)), {
      reason: 'address_not_allowed',
    });
    expectEgress(await failureOf(httpsGet({ host: '127.0.0.1', port: web.port, path: '/' })), {
      reason: 'address_not_allowed',
    });
    expectEgress(await failureOf(httpsGet({ hostname: '::1', port: web6.port })), {
      reason: 'address_not_allowed',
    });
    await expectUntouched(web);
    await expectUntouched(web6);
  });

  it('undici.request, axios and got: address_not_allowed', async () => {
    installGuard();
    const target = `https://127.0.0.1:${web.port}/`;
    expectEgress(await failureOf(undiciRequest(target)), { reason: 'address_not_allowed' });
    expectEgress(await failureOf(axios.get(target, { adapter: 'http', proxy: false })), {
      reason: 'address_not_allowed',
    });
    expectEgress(await failureOf(got.get(target, { retry: { limit: 0 } })), {
      reason: 'address_not_allowed',
    });
    await expectUntouched(web);
  });

  it('raw net.connect and tls.connect to a literal: address_not_allowed, zero accepts', async () => {
    installGuard();
    expectEgress(await errorEvent(net.connect({ host: '127.0.0.1', port: tcp.port }), 'connect'), {
      reason: 'address_not_allowed',
    });
    expectEgress(await errorEvent(net.connect(tcp.port, '127.0.0.1'), 'connect'), {
      reason: 'address_not_allowed',
    });
    expectEgress(
      await errorEvent(
        tls.connect({ host: '127.0.0.1', port: tlsServer.port, ca: pki.caCertPem }),
        'secureConnect',
      ),
      { reason: 'address_not_allowed' },
    );
    await expectUntouched(tcp);
    await expectUntouched(tlsServer);
  });

  it('with an addresses rule the literal is allowed, and still never looked up', async () => {
    installGuard([addressRule]);
    const res = await fetch(`https://127.0.0.1:${web.port}/`);
    expect(res.status).toBe(200);
    await res.text();
    // servername: Node 22.23 fails to match `::1` against the certificate's IP SAN (0:0:0:0:0:0:0:1).
    expect(await httpsGet({ host: '::1', port: web6.port, servername: 'localhost' })).toBe(200);
    const socket = net.connect({ host: '127.0.0.1', port: tcp.port });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.destroy();
    expect(web.connections).toBe(1);
    expect(web6.connections).toBe(1);
    expect(lookup.calls).toEqual([]);
    expect(sink.decisions().map((e) => e['egress.rule'])).toEqual([
      'loopback-literal',
      'loopback-literal',
      'loopback-literal',
    ]);
  });

  it('a hosts entry spelled like an address is refused by the policy loader: only addresses rules match literals', async () => {
    expect(() =>
      installGuard([loopbackRule('literal-in-hosts', ['127.0.0.1'], { schemes: ['https'] })]),
    ).toThrow(
      expect.objectContaining({
        code: 'EGRESS_ERR_POLICY',
        message: expect.stringMatching(/addresses: \[127\.0\.0\.1\/32\]/),
      }),
    );
    installGuard([loopbackRule('name-only', ['localhost'], { schemes: ['https'] })]);
    const error = await failureOf(fetch(`https://127.0.0.1:${web.port}/`));
    expectEgress(error, { reason: 'address_not_allowed' });
    await expectUntouched(web);
  });
});
