/**
 * Threat class 6, IPv4 inside IPv6: `[::ffff:127.0.0.1]` and `[::ffff:7f00:1]` (mapped: an IPv6 socket
 * that talks IPv4 to 127.0.0.1), NAT64 `[64:ff9b::7f00:1]`, 6to4 `[2002:7f00:1::]`, Teredo
 * `[2001:0:4136:e378:8000:63bf:80ff:fffe]` (client 127.0.0.1, stored inverted), and the unspecified
 * addresses `0.0.0.0` and `[::]`, which reach this host.
 *
 * Mapped and unspecified addresses reach the loopback servers here, which must see nothing. NAT64, 6to4
 * and Teredo addresses would leave this host: a tripwire beneath the guard refuses them without a
 * syscall, and records that the guard let them through (it must not: `connects` stays empty).
 */
import type { IncomingMessage } from 'node:http';
import http from 'node:http';
import net from 'node:net';
import axios from 'axios';
import got from 'got';
import { request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  EPHEMERAL,
  type EventSink,
  errorEvent,
  eventSink,
  expectEgress,
  failureOf,
  installTripwire,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startHttpServer,
  startTcpServer,
  type TestDnsServer,
  type Tripwire,
} from './kit.js';

/** [URL host, bare address, canonical form the guard names, reaches this host]. */
const LITERALS: Array<[host: string, bare: string, canonical: string, local: boolean]> = [
  ['[::ffff:127.0.0.1]', '::ffff:127.0.0.1', '127.0.0.1', true],
  ['[::ffff:7f00:1]', '::ffff:7f00:1', '127.0.0.1', true],
  ['[64:ff9b::7f00:1]', '64:ff9b::7f00:1', '64:ff9b::7f00:1', false],
  ['[2002:7f00:1::]', '2002:7f00:1::', '2002:7f00:1::', false],
  [
    '[2001:0:4136:e378:8000:63bf:80ff:fffe]',
    '2001:0:4136:e378:8000:63bf:80ff:fffe',
    '2001:0:4136:e378:8000:63bf:80ff:fffe',
    false,
  ],
  ['0.0.0.0', '0.0.0.0', '0.0.0.0', true],
  ['[::]', '::', '::', true],
];

/** Names whose only answer embeds 127.0.0.1 (or is unspecified), and the range the guard must name. */
const EMBEDDED_NAMES: Array<[name: string, aaaa: string, range: string]> = [
  // A mapped answer is unmapped before it is classified: it is named as the IPv4 address it reaches.
  ['mapped.example.test', '::ffff:127.0.0.1', 'loopback'],
  ['nat64.example.test', '64:ff9b::7f00:1', 'nat64 (127.0.0.1)'],
  ['sixtofour.example.test', '2002:7f00:1::1', '6to4 (127.0.0.1)'],
  ['teredo.example.test', '2001:0:4136:e378:8000:63bf:80ff:fffe', 'client 127.0.0.1'],
  ['unspecified.example.test', '::', 'unspecified'],
];

let dns: TestDnsServer;
let plain: RecordingServer;
let plain6: RecordingServer;
let tcp: RecordingServer;
let tcp6: RecordingServer;
let sink: EventSink;
let tripwire: Tripwire;

function installGuard(policy: Record<string, unknown>) {
  sink = eventSink();
  tripwire = installTripwire();
  install({ policy: policyOf(policy), lookup: lookupVia(dns), destination: sink });
}

const defaultPolicy = () => ({
  allow: [
    loopbackRule('control', ['control.example.test'], { schemes: ['http', 'tcp'] }),
    {
      name: 'embedded-names',
      hosts: EMBEDDED_NAMES.map(([name]) => name),
      schemes: ['http', 'tcp'],
      ports: EPHEMERAL,
    },
  ],
});

const httpGet = (target: string | http.RequestOptions) =>
  new Promise<number>((resolve, reject) => {
    const done = (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    };
    const req = typeof target === 'string' ? http.get(target, done) : http.get(target, done);
    req.on('error', reject);
  });

/** The servers a literal would reach: IPv6 forms of :: go to the ::1 servers, the rest to 127.0.0.1's. */
const portsFor = (bare: string) =>
  bare === '::' ? { web: plain6.port, raw: tcp6.port } : { web: plain.port, raw: tcp.port };

const clients: Record<string, (host: string, bare: string) => Promise<unknown>> = {
  fetch: (host, bare) => failureOf(fetch(`http://${host}:${portsFor(bare).web}/`)),
  'http.get (URL string)': (host, bare) => failureOf(httpGet(`http://${host}:${portsFor(bare).web}/`)),
  'http.get ({ host })': (_host, bare) => failureOf(httpGet({ host: bare, port: portsFor(bare).web })),
  'undici.request': (host, bare) => failureOf(undiciRequest(`http://${host}:${portsFor(bare).web}/`)),
  axios: (host, bare) =>
    failureOf(axios.get(`http://${host}:${portsFor(bare).web}/`, { adapter: 'http', proxy: false })),
  got: (host, bare) => failureOf(got.get(`http://${host}:${portsFor(bare).web}/`, { retry: { limit: 0 } })),
  'net.connect': (_host, bare) => {
    const socket = net.connect({ host: bare, port: portsFor(bare).raw });
    return errorEvent(socket, 'connect').finally(() => socket.destroy());
  },
};

async function expectNothingReached(): Promise<void> {
  await settle();
  expect(tripwire.connects).toEqual([]);
  for (const server of [plain, plain6, tcp, tcp6]) expect(server.connections).toBe(0);
}

beforeAll(async () => {
  dns = await startDnsServer({
    'control.example.test': [{ type: 'A', data: '127.0.0.1' }],
    ...Object.fromEntries(
      EMBEDDED_NAMES.map(([name, aaaa]) => [name, [{ type: 'AAAA' as const, data: aaaa }]]),
    ),
  });
  plain = await startHttpServer();
  plain6 = await startHttpServer({ host: '::1' });
  tcp = await startTcpServer();
  tcp6 = await startTcpServer({ host: '::1' });
});

afterEach(async () => {
  await uninstall();
  tripwire.restore();
  expect(tripwire.refused).toEqual([]);
  for (const s of [plain, plain6, tcp, tcp6]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([plain, plain6, tcp, tcp6].map((s) => s.close()));
  await dns.close();
});

describe('threat 6: IPv4 inside IPv6, and the unspecified addresses', () => {
  it('control: the mapped and unspecified forms really reach the loopback servers when allowed', async () => {
    installGuard({
      allow: [{ name: 'all', addresses: ['0.0.0.0/0', '::/0'], schemes: ['http'], ports: EPHEMERAL }],
    });
    expect(await httpGet(`http://[::ffff:127.0.0.1]:${plain.port}/`)).toBe(200);
    expect(await httpGet(`http://0.0.0.0:${plain.port}/`)).toBe(200);
    expect(await httpGet(`http://[::]:${plain6.port}/`)).toBe(200);
    expect(plain.connections).toBe(2);
    expect(plain6.connections).toBe(1);
  });

  for (const [host, bare, canonical] of LITERALS) {
    it(`literal ${host}: no rule lists it, so every client is refused (address_not_allowed)`, async () => {
      installGuard(defaultPolicy());
      for (const [name, call] of Object.entries(clients)) {
        const error = await call(host, bare);
        const egress = expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed' });
        expect(egress.host, name).toBe(canonical);
      }
      await expectNothingReached();
    });
  }

  it('a deny rule for 127.0.0.0/8 also covers its IPv4-mapped spellings (deny wins over an allow-all)', async () => {
    installGuard({
      allow: [{ name: 'all', addresses: ['0.0.0.0/0', '::/0'], schemes: ['http', 'tcp'], ports: EPHEMERAL }],
      deny: [{ name: 'loopback', addresses: ['127.0.0.0/8'] }],
    });
    for (const host of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
      const bare = host.slice(1, -1);
      for (const call of Object.values(clients)) {
        expectEgress(await call(host, bare), {
          reason: 'explicit_deny',
          rule: 'loopback',
          host: '127.0.0.1',
        });
      }
    }
    await expectNothingReached();
  });

  it('a deny rule for 127.0.0.0/8 also covers 127.0.0.1 embedded in NAT64, 6to4 and Teredo literals', async () => {
    // Through a NAT64 gateway, 64:ff9b::7f00:1 reaches 127.0.0.1's network the way ::ffff:7f00:1 does: an
    // allow-all for IPv6 must not open what an IPv4 deny rule closes (deny always wins).
    installGuard({
      allow: [{ name: 'all', addresses: ['0.0.0.0/0', '::/0'], schemes: ['http', 'tcp'], ports: EPHEMERAL }],
      deny: [{ name: 'loopback', addresses: ['127.0.0.0/8'] }],
    });
    for (const [host, bare, , local] of LITERALS) {
      if (local) continue;
      expectEgress(await clients.fetch!(host, bare), { reason: 'explicit_deny', rule: 'loopback' });
      expectEgress(await clients['net.connect']!(host, bare), { reason: 'explicit_deny', rule: 'loopback' });
    }
    await expectNothingReached();
  });

  for (const [name, aaaa, range] of EMBEDDED_NAMES) {
    it(`a listed name answered ${aaaa}: refused at dial time as ${range}`, async () => {
      installGuard(defaultPolicy());
      const url = `http://${name}:${aaaa === '::' ? plain6.port : plain.port}/`;
      for (const error of [
        await failureOf(fetch(url)),
        await failureOf(httpGet(url)),
        await failureOf(got.get(url, { retry: { limit: 0 } })),
      ]) {
        const egress = expectEgress(error, { reason: 'private_address', rule: 'embedded-names' });
        expect(egress.message).toContain(range);
      }
      const socket = net.connect({ host: name, port: aaaa === '::' ? tcp6.port : tcp.port });
      expectEgress(await errorEvent(socket, 'connect'), { reason: 'private_address' });
      await expectNothingReachedButLookups();
    });
  }
});

/** As expectNothingReached, for names: the guard let the connect through to its look-up, which refused. */
async function expectNothingReachedButLookups(): Promise<void> {
  await settle();
  for (const server of [plain, plain6, tcp, tcp6]) expect(server.connections).toBe(0);
  expect(tripwire.refused).toEqual([]);
}
