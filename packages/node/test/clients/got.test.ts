/**
 * got, unchanged, under install(): its requests go through the https/http request patch; its own redirect
 * handling makes one native request per hop, each decided; its retries never turn a denial into a
 * connection (a denial is not retried by default, and when a caller forces retries each attempt is decided
 * and denied again). The guard's error is the RequestError's `cause`.
 */
import got, { type Got, RequestError } from 'got';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
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
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from '../threats/kit.js';

const NAMES = ['api.example.test', 'evil.example.test', 'internal.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let plain: RecordingServer;
let sink: EventSink;
let client: Got;

const apiUrl = (path: string) => `https://api.example.test:${api.port}${path}`;
const noDelay = { backoffLimit: 0, noise: 0 };

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { schemes: ['https'], paths: ['/v1/**'] }),
        // Listed, but without privateAddresses: allow: it resolves to 127.0.0.1, so it is refused at dial time.
        { name: 'internal', hosts: ['internal.example.test'], schemes: ['https'], ports: ['1024-65535'] },
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

let flaky = 0;

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
        '/v1/flaky': (_req, res) => {
          flaky++;
          res.writeHead(flaky === 1 ? 503 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ attempt: flaky }));
        },
      },
      okHandler,
    ),
  });
  evil = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
  plain = await startHttpServer();
  client = got.extend({ https: { certificateAuthority: pki.caCertPem }, retry: { limit: 0 } });
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil, plain]) s.reset();
  dns.reset();
  flaky = 0;
});

afterAll(async () => {
  await Promise.all([api, evil, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('got: allowed calls work unchanged', () => {
  it('GET reaches the server, decided once by the https request patch', async () => {
    installGuard();
    const body = await client.get(apiUrl('/v1/items')).json();
    expect(body).toEqual({ ok: true, path: '/v1/items' });
    expect(api.connections).toBe(1);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.hook': 'https',
      'egress.decision': 'allowed',
      'egress.rule': 'api',
    });
  });

  it('POST with a JSON body', async () => {
    installGuard();
    const res = await client.post(apiUrl('/v1/post'), { json: { a: 1 } });
    expect(res.statusCode).toBe(200);
    expect(api.requests[0]).toMatchObject({ method: 'POST', body: '{"a":1}' });
  });

  it("got's own redirect handling: each hop is a new request, decided", async () => {
    installGuard();
    const body = await client.get(apiUrl('/v1/hop')).json();
    expect(body).toEqual({ ok: true, path: '/v1/landed' });
    expect(sink.decisions().map((e) => e['url.path'])).toEqual(['/v1/hop', '/v1/landed']);
  });

  it('a retry after a 503 from an allowed server is decided again (one decision per attempt)', async () => {
    installGuard();
    const body = await client.get(apiUrl('/v1/flaky'), { retry: { limit: 2, ...noDelay } }).json();
    expect(body).toEqual({ attempt: 2 });
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['allowed', 'allowed']);
  });
});

describe('got: denied calls never reach a server', () => {
  it('a host no rule lists: RequestError whose cause is EgressError host_not_allowed; zero connections', async () => {
    installGuard();
    const error = await failureOf(client.get(`https://evil.example.test:${evil.port}/v1/x`));
    expect(error).toBeInstanceOf(RequestError);
    expect(error.code).toBe('EGRESS_ERR_DENIED');
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(evil.connections).toBe(0);
  });

  it('a redirect to a host no rule lists: denied at the second hop', async () => {
    installGuard();
    const error = await failureOf(client.get(apiUrl('/v1/to-evil')));
    expectEgress(error, { reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(api.requests).toHaveLength(1);
    expect(evil.connections).toBe(0);
  });

  it('a redirect from https to http: scheme_not_allowed, the plain server sees nothing', async () => {
    installGuard();
    const error = await failureOf(client.get(apiUrl('/v1/to-http')));
    expectEgress(error, { reason: 'scheme_not_allowed' });
    expect(plain.connections).toBe(0);
  });
});

describe('got retries: a denial is never retried into a connection', () => {
  it("with got's default retry policy (GET retried twice): a denial is not retried at all", async () => {
    installGuard();
    const error = await failureOf(
      got.get(`https://evil.example.test:${evil.port}/v1/x`, { retry: { limit: 2, ...noDelay } }),
    );
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(sink.decisions()).toHaveLength(1);
    expect(evil.connections).toBe(0);
  });

  it('a caller forcing retries on the denial code: every attempt is decided and denied, still zero connections', async () => {
    installGuard();
    const error = await failureOf(
      got.get(`https://evil.example.test:${evil.port}/v1/x`, {
        retry: { limit: 3, errorCodes: ['EGRESS_ERR_DENIED'], ...noDelay },
      }),
    );
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual([
      'denied',
      'denied',
      'denied',
      'denied',
    ]);
    expect(evil.connections).toBe(0);
  });

  it('a dial-time denial (listed name resolving to a private address), retried: never dialled', async () => {
    installGuard();
    const error = await failureOf(
      client.get(`https://internal.example.test:${api.port}/v1/x`, {
        retry: { limit: 2, errorCodes: ['EGRESS_ERR_DENIED', 'ECONNREFUSED'], ...noDelay },
      }),
    );
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'private_address' });
    expect(api.connections).toBe(0);
    const dial = sink.decisions().filter((e) => e['egress.reason'] === 'private_address');
    expect(dial).toHaveLength(3);
  });
});
