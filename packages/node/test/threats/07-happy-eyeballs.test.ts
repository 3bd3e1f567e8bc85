/**
 * Threat class 7, happy eyeballs: a name with A and AAAA answers (127.0.0.1 and ::1), and a client that
 * races them (`autoSelectFamily`). A guard that checks only the first address lets the client dial the
 * other one. The rule's name is listed with privateAddresses: deny, and an `addresses` rule covers only
 * one of the two: every address is checked, a mixed answer is refused whole, and no server sees a
 * connection, including when the covered address is down and the client would fall back to the other.
 */
import http from 'node:http';
import net from 'node:net';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
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
  startHttpServer,
  startTcpServer,
  type TestDnsServer,
} from './kit.js';

const DUAL = 'dual.example.test';
const V6_ONLY_UP = 'fallback.example.test';

let dns: TestDnsServer;
/** [on 127.0.0.1, on ::1], one port. */
let web: [RecordingServer, RecordingServer];
let tcp: [RecordingServer, RecordingServer];
/** Listens on ::1 only: a client racing 127.0.0.1 first is refused there and falls back to ::1. */
let fallback: RecordingServer;
let sink: EventSink;

function installGuard(covered: string[]) {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        { name: 'dual', hosts: [DUAL, V6_ONLY_UP], schemes: ['http', 'tcp'], ports: EPHEMERAL },
        ...(covered.length
          ? [{ name: 'covered', addresses: covered, schemes: ['http', 'tcp'], ports: EPHEMERAL }]
          : []),
      ],
    }),
    lookup: lookupVia(dns),
    destination: sink,
  });
}

const httpGet = (url: string) =>
  new Promise<number>((resolve, reject) => {
    http
      .get(url, { autoSelectFamily: true, agent: false } as http.RequestOptions, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });

const everyServer = () => [...web, ...tcp, fallback];

beforeAll(async () => {
  const both = [
    { type: 'A' as const, data: '127.0.0.1' },
    { type: 'AAAA' as const, data: '::1' },
  ];
  dns = await startDnsServer({ [DUAL]: both, [V6_ONLY_UP]: both });
  web = await samePort((host) => startHttpServer({ host }), ['127.0.0.1', '::1']);
  tcp = await samePort((host) => startTcpServer({ host }), ['127.0.0.1', '::1']);
  fallback = await startTcpServer({ host: '::1' });
});

afterEach(async () => {
  await uninstall();
  for (const s of everyServer()) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all(everyServer().map((s) => s.close()));
  await dns.close();
});

describe('threat 7: happy eyeballs, every address checked', () => {
  it('control: with both addresses covered, each client connects (to one of them)', async () => {
    installGuard(['127.0.0.1/32', '::1/128']);
    expect((await fetch(`http://${DUAL}:${web[0].port}/`)).status).toBe(200);
    expect(await httpGet(`http://${DUAL}:${web[0].port}/`)).toBe(200);
    const socket = net.connect({ host: DUAL, port: tcp[0].port, autoSelectFamily: true });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.destroy();
    expect(web[0].connections + web[1].connections).toBe(2);
  });

  for (const covered of [['127.0.0.1/32'], ['::1/128']]) {
    describe(`only ${covered[0]} covered: the mixed answer is refused whole`, () => {
      it('fetch', async () => {
        installGuard(covered);
        expectEgress(await failureOf(fetch(`http://${DUAL}:${web[0].port}/`)), { reason: 'private_address' });
      });

      it('http.get with autoSelectFamily', async () => {
        installGuard(covered);
        expectEgress(await failureOf(httpGet(`http://${DUAL}:${web[0].port}/`)), {
          reason: 'private_address',
        });
      });

      it("undici.request through a caller's Agent with autoSelectFamily", async () => {
        installGuard(covered);
        const agent = new Agent({ connect: { autoSelectFamily: true } });
        try {
          const error = await failureOf(
            undiciRequest(`http://${DUAL}:${web[0].port}/`, { dispatcher: agent }),
          );
          expectEgress(error, { reason: 'private_address' });
        } finally {
          await agent.close();
        }
      });

      it('net.connect with autoSelectFamily', async () => {
        installGuard(covered);
        const socket = net.connect({ host: DUAL, port: tcp[0].port, autoSelectFamily: true });
        expectEgress(await errorEvent(socket, 'connect'), { reason: 'private_address' });
      });

      afterEach(async () => {
        await settle();
        for (const server of everyServer()) expect(server.connections).toBe(0);
        const denied = sink.decisions().filter((e) => e['egress.reason'] === 'private_address');
        expect(denied.length).toBeGreaterThan(0);
        // The refused address is the one the addresses rule does not cover.
        expect(denied[0]!['network.peer.address']).toBe(covered[0] === '127.0.0.1/32' ? '::1' : '127.0.0.1');
      });
    });
  }

  it('the covered address is down: the client would fall back to the other; it is refused before dialling either', async () => {
    installGuard(['127.0.0.1/32']);
    const socket = net.connect({ host: V6_ONLY_UP, port: fallback.port, autoSelectFamily: true });
    expectEgress(await errorEvent(socket, 'connect'), { reason: 'private_address' });
    expectEgress(await failureOf(httpGet(`http://${V6_ONLY_UP}:${fallback.port}/`)), {
      reason: 'private_address',
    });
    await settle();
    expect(fallback.connections).toBe(0);
  });

  it('control for the fallback: unguarded, the same connect fails over from 127.0.0.1 to ::1', async () => {
    const socket = net.connect({
      host: V6_ONLY_UP,
      port: fallback.port,
      autoSelectFamily: true,
      lookup: lookupVia(dns),
    });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    expect(socket.remoteAddress).toBe('::1');
    socket.destroy();
    expect(fallback.connections).toBe(1);
  });
});
