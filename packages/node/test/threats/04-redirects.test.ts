/**
 * Threat class 4, redirects: an allowed server answers with a `Location` that points at an internal
 * address, at another protocol (https to http), or protocol-relative (`//host/`). Every hop is a new
 * request that must be decided again, whoever follows it: fetch (undici's redirect handler), axios
 * (follow-redirects), got and node-fetch (their own). The first hop is served; the target of the redirect
 * must see nothing.
 */
import https from 'node:https';
import axios from 'axios';
import got from 'got';
import nodeFetch from 'node-fetch';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  loopbackRule,
  okHandler,
  policyOf,
  type RecordingServer,
  redirect,
  routes,
  settle,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './kit.js';

const NIP = '127.0.0.1.nip.example.test';
const NAMES = ['api.example.test', 'evil.example.test', NIP, 'localhost', '127.0.0.1'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let plain: RecordingServer;
let sink: EventSink;
let agent: https.Agent;

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { schemes: ['https'] }),
        { name: 'nip', hosts: ['**.nip.example.test'], schemes: ['https', 'http'], ports: EPHEMERAL },
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

interface Case {
  title: string;
  /** The Location header the allowed server sends. */
  location: () => string;
  /** The server the redirect points at. */
  target: () => RecordingServer;
  reason: string;
}

const CASES: Case[] = [
  {
    title: 'to an internal IP literal, across protocols (https → http://127.0.0.1)',
    location: () => `http://127.0.0.1:${plain.port}/internal`,
    target: () => plain,
    reason: 'address_not_allowed',
  },
  {
    title: 'to the same host over plain http (https → http)',
    location: () => `http://api.example.test:${plain.port}/downgraded`,
    target: () => plain,
    reason: 'scheme_not_allowed',
  },
  {
    title: 'protocol-relative Location (//evil.example.test)',
    location: () => `//evil.example.test:${evil.port}/stolen`,
    target: () => evil,
    reason: 'host_not_allowed',
  },
  {
    title: 'to a listed name that resolves to loopback (wildcard DNS)',
    location: () => `https://${NIP}:${evil.port}/internal`,
    target: () => evil,
    reason: 'private_address',
  },
  {
    title: 'to the allowed server itself by its IP literal',
    location: () => `https://127.0.0.1:${api.port}/by-address`,
    target: () => api,
    reason: 'address_not_allowed',
  },
];

let current: Case | undefined;

const clients: Record<string, (url: string) => Promise<unknown>> = {
  fetch: async (url) => (await fetch(url)).text(),
  axios: (url) => axios.get(url, { adapter: 'http', httpsAgent: agent, proxy: false }),
  got: (url) => got.get(url, { https: { certificateAuthority: pki.caCertPem }, retry: { limit: 0 } }).text(),
  'node-fetch': async (url) =>
    (await nodeFetch(url, { agent: (u: URL) => (u.protocol === 'https:' ? agent : undefined) })).text(),
};

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(
    Object.fromEntries(
      ['api.example.test', 'evil.example.test', NIP].map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]]),
    ),
  );
  api = await startHttpsServer({
    pki,
    names: NAMES,
    handler: routes(
      {
        '/redirect': (req, res, body) => redirect(current!.location())(req, res, body),
        '/redirect-307': (req, res, body) => redirect(current!.location(), 307)(req, res, body),
      },
      okHandler,
    ),
  });
  evil = await startHttpsServer({ pki, names: NAMES });
  plain = await startHttpServer();
  agent = new https.Agent({ ca: pki.caCertPem });
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil, plain]) s.reset();
  dns.reset();
  current = undefined;
});

afterAll(async () => {
  agent.destroy();
  await Promise.all([api, evil, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 4: redirects to internal addresses, across protocols, protocol-relative', () => {
  for (const [client, call] of Object.entries(clients)) {
    describe(client, () => {
      for (const c of CASES) {
        it(`${c.title}: ${c.reason}, the target sees nothing`, async () => {
          installGuard();
          current = c;
          const error = await failureOf(call(`https://api.example.test:${api.port}/redirect`));
          if (client === 'node-fetch') {
            // node-fetch drops the cause: its FetchError carries the guard's code and the reason in its message.
            expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED' });
            expect(error.message).toContain(`[${c.reason}]`);
          } else {
            expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: c.reason });
          }
          await settle();
          expect(api.requests.map((r) => r.url)).toEqual(['/redirect']);
          const target = c.target();
          // The allowed server is itself the target of the last case: at most one connection (the first hop,
          // unless a pooled keep-alive socket served it), and no request but the first.
          if (target === api) expect(api.connections).toBeLessThanOrEqual(1);
          else expect(target.connections).toBe(0);
          const hops = sink.decisions().filter((e) => e['egress.decision'] === 'denied');
          expect(hops.length).toBeGreaterThanOrEqual(1);
          expect(hops[0]!['egress.reason']).toBe(c.reason);
        });
      }
    });
  }

  it('a 307 that would replay a POST body to an unlisted host: denied, the body never leaves', async () => {
    installGuard();
    current = CASES[2]!;
    const error = await failureOf(
      fetch(`https://api.example.test:${api.port}/redirect-307`, { method: 'POST', body: 'secret=1' }),
    );
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(evil.connections).toBe(0);
    expect(evil.bytesReceived).toBe(0);
  });
});
