/**
 * node-fetch v3, unchanged, under install(): it builds each request with the (patched) https/http
 * `request`, follows redirects itself (one native request per hop, each decided). node-fetch wraps a
 * request error in a FetchError that copies only `code` and `syscall` (no `cause`): the guard's code and
 * the `[reason]` in the message are what reach the caller; the EgressError itself is what the underlying
 * request emitted.
 */
import https from 'node:https';
import fetch, { FetchError } from 'node-fetch';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  failureOf,
  lookupVia,
  loopbackRule,
  okHandler,
  policyOf,
  type RecordingServer,
  redirect,
  routes,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from '../threats/kit.js';

const NAMES = ['api.example.test', 'evil.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let plain: RecordingServer;
let sink: EventSink;
let httpsAgent: https.Agent;
/** node-fetch keeps the agent across redirects: pick one per protocol, as its docs advise. */
const agent = (url: URL) => (url.protocol === 'https:' ? httpsAgent : undefined);

const apiUrl = (path: string) => `https://api.example.test:${api.port}${path}`;

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('api', ['api.example.test'], {
          schemes: ['https'],
          methods: ['GET', 'POST'],
          paths: ['/v1/**'],
        }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

/** node-fetch's FetchError for a guarded failure: system type, the guard's code, the reason in the message. */
function expectGuardFailure(error: unknown, code: string, reason: string): void {
  expect(error).toBeInstanceOf(FetchError);
  expect(error).toMatchObject({ type: 'system', code });
  expect((error as Error).message).toContain(`[${reason}]`);
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  api = await startHttpsServer({
    pki,
    names: [...NAMES, 'localhost'],
    handler: routes(
      {
        '/v1/hop': redirect('/v1/landed'),
        '/v1/to-evil': (req, res, body) =>
          redirect(`https://evil.example.test:${evil.port}/v1/stolen`)(req, res, body),
        '/v1/to-http': (req, res, body) =>
          redirect(`http://api.example.test:${plain.port}/v1/plain`)(req, res, body),
      },
      okHandler,
    ),
  });
  evil = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
  plain = await startHttpServer();
  httpsAgent = new https.Agent({ ca: pki.caCertPem });
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil, plain]) s.reset();
  dns.reset();
});

afterAll(async () => {
  httpsAgent.destroy();
  await Promise.all([api, evil, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('node-fetch v3: allowed calls work unchanged', () => {
  it('GET reaches the server, decided by the https request patch', async () => {
    installGuard();
    const res = await fetch(apiUrl('/v1/items'), { agent });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: '/v1/items' });
    expect(api.connections).toBe(1);
    expect(sink.decisions()).toEqual([
      expect.objectContaining({
        'egress.hook': 'https',
        'egress.decision': 'allowed',
        'http.request.method': 'GET',
      }),
    ]);
  });

  it('POST with a body', async () => {
    installGuard();
    const res = await fetch(apiUrl('/v1/post'), { agent, method: 'POST', body: 'payload' });
    expect(res.status).toBe(200);
    expect(api.requests[0]).toMatchObject({ method: 'POST', body: 'payload' });
  });

  it('a redirect within the rule: each hop decided', async () => {
    installGuard();
    const res = await fetch(apiUrl('/v1/hop'), { agent });
    expect(await res.json()).toEqual({ ok: true, path: '/v1/landed' });
    expect(sink.decisions().map((e) => e['url.path'])).toEqual(['/v1/hop', '/v1/landed']);
  });
});

describe('node-fetch v3: denied calls never reach a server', () => {
  it('a host no rule lists: FetchError with EGRESS_ERR_DENIED [host_not_allowed]; zero connections', async () => {
    installGuard();
    const error = await failureOf(fetch(`https://evil.example.test:${evil.port}/v1/x`, { agent }));
    expectGuardFailure(error, 'EGRESS_ERR_DENIED', 'host_not_allowed');
    expect(evil.connections).toBe(0);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
    });
  });

  it('a method the rule does not list: method_not_allowed, zero connections', async () => {
    installGuard();
    const error = await failureOf(fetch(apiUrl('/v1/x'), { agent, method: 'PUT', body: 'x' }));
    expectGuardFailure(error, 'EGRESS_ERR_DENIED', 'method_not_allowed');
    expect(api.connections).toBe(0);
  });

  it('a redirect to a host no rule lists: denied at the second hop, before connecting', async () => {
    installGuard();
    const error = await failureOf(fetch(apiUrl('/v1/to-evil'), { agent }));
    expectGuardFailure(error, 'EGRESS_ERR_DENIED', 'host_not_allowed');
    expect(api.requests).toHaveLength(1);
    expect(evil.connections).toBe(0);
  });

  it('a redirect from https to http: scheme_not_allowed, the plain server sees nothing', async () => {
    installGuard();
    const error = await failureOf(fetch(apiUrl('/v1/to-http'), { agent }));
    expectGuardFailure(error, 'EGRESS_ERR_DENIED', 'scheme_not_allowed');
    expect(plain.connections).toBe(0);
  });
});
