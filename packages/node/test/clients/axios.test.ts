/**
 * axios, unchanged, under install(): its http adapter goes through the https/http request patch, and its
 * redirects (followed by follow-redirects, one native request per hop) are each decided. Denials reach no
 * server; the guard's error is the AxiosError's `cause`.
 */
import https from 'node:https';
import axios, { AxiosError, type AxiosInstance } from 'axios';
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

const NAMES = ['api.example.test', 'evil.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let plain: RecordingServer;
let sink: EventSink;
let client: AxiosInstance;
let agent: https.Agent;

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

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  api = await startHttpsServer({
    pki,
    names: [...NAMES, 'localhost'],
    handler: routes(
      {
        '/v1/echo': (req, res, body) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ method: req.method, body: JSON.parse(body || 'null') }));
        },
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
  agent = new https.Agent({ ca: pki.caCertPem });
  client = axios.create({ adapter: 'http', httpsAgent: agent, proxy: false });
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil, plain]) s.reset();
  dns.reset();
});

afterAll(async () => {
  agent.destroy();
  await Promise.all([api, evil, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('axios (http adapter): allowed calls work unchanged', () => {
  it('GET reaches the server and is decided once, by the https request patch', async () => {
    installGuard();
    const res = await client.get(apiUrl('/v1/items?q=1'));
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ ok: true, path: '/v1/items?q=1' });
    expect(api.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/items?q=1']);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'api',
      'egress.hook': 'https',
      'http.request.method': 'GET',
      'url.path': '/v1/items',
    });
  });

  it('POST with a JSON body', async () => {
    installGuard();
    const res = await client.post(apiUrl('/v1/echo'), { hello: 'world' });
    expect(res.data).toEqual({ method: 'POST', body: { hello: 'world' } });
  });

  it('a redirect within the rule: both hops decided and allowed', async () => {
    installGuard();
    const res = await client.get(apiUrl('/v1/hop'));
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ ok: true, path: '/v1/landed' });
    expect(sink.decisions().map((e) => [e['url.path'], e['egress.decision']])).toEqual([
      ['/v1/hop', 'allowed'],
      ['/v1/landed', 'allowed'],
    ]);
  });

  it("axios's fetch adapter goes through the guarded global fetch", async () => {
    installGuard();
    const res = await axios.get(apiUrl('/v1/via-fetch'), { adapter: 'fetch' });
    expect(res.data).toEqual({ ok: true, path: '/v1/via-fetch' });
    expect(sink.decisions()[0]).toMatchObject({ 'egress.hook': 'fetch', 'egress.decision': 'allowed' });
  });
});

describe('axios (http adapter): denied calls never reach a server', () => {
  it('a host no rule lists: AxiosError whose cause is EgressError host_not_allowed; zero connections', async () => {
    installGuard();
    const error = await failureOf(client.get(`https://evil.example.test:${evil.port}/v1/x`));
    expect(error).toBeInstanceOf(AxiosError);
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(evil.connections).toBe(0);
    expect(evil.bytesReceived).toBe(0);
  });

  it('a method the rule does not list: method_not_allowed, zero connections', async () => {
    installGuard();
    const error = await failureOf(client.delete(apiUrl('/v1/items/1')));
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'method_not_allowed', rule: 'api' });
    expect(api.connections).toBe(0);
  });

  it('a path the rule does not list: path_not_allowed, zero connections', async () => {
    installGuard();
    const error = await failureOf(client.get(apiUrl('/admin')));
    expectEgress(error, { reason: 'path_not_allowed' });
    expect(api.connections).toBe(0);
  });
});

describe('axios redirects (follow-redirects): each hop is decided', () => {
  it('a redirect to a host no rule lists: the first hop is served, the second denied before connecting', async () => {
    installGuard();
    const error = await failureOf(client.get(apiUrl('/v1/to-evil')));
    expectEgress(error, { reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(api.requests.map((r) => r.url)).toEqual(['/v1/to-evil']);
    expect(evil.connections).toBe(0);
    expect(sink.decisions().map((e) => [e['server.address'], e['egress.decision']])).toEqual([
      ['api.example.test', 'allowed'],
      ['evil.example.test', 'denied'],
    ]);
  });

  it('a redirect from https to http on the same host: scheme_not_allowed, the plain server sees nothing', async () => {
    installGuard();
    const error = await failureOf(client.get(apiUrl('/v1/to-http')));
    expectEgress(error, { reason: 'scheme_not_allowed', host: 'api.example.test' });
    expect(plain.connections).toBe(0);
  });

  it('with maxRedirects: 0 axios uses the native module directly: still decided', async () => {
    installGuard();
    const error = await failureOf(
      client.get(`https://evil.example.test:${evil.port}/v1/x`, { maxRedirects: 0 }),
    );
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(evil.connections).toBe(0);
  });
});
