/**
 * Global fetch (and WebSocket) under install(): every request and every redirect hop is decided, denials
 * reach no server (zero accepted connections), and a caller's own dispatcher does not take a request out
 * of the guard.
 */
import { once } from 'node:events';
import { Agent, WebSocket as UndiciWebSocket } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  NODE_MAJOR,
  okHandler,
  policyOf,
  type RecordingServer,
  redirect,
  rejection,
  routes,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

const NAMES = [
  'api.example.test',
  'evil.example.test',
  'paste.example.test',
  'ws.example.test',
  'private.example.test',
];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let paste: RecordingServer;
let plain: RecordingServer;
let sink: EventSink;

const url = (host: string, server: RecordingServer, path = '/') =>
  `${server.url.split(':')[0]}://${host}:${server.port}${path}`;

const basePolicy = () =>
  policyOf({
    allow: [
      loopbackRule('api', ['api.example.test', 'paste.example.test'], {
        schemes: ['https'],
        methods: ['GET', 'POST'],
        paths: ['/v1/**'],
      }),
      loopbackRule('websockets', ['ws.example.test'], { schemes: ['wss'] }),
      { name: 'private-not-allowed', hosts: ['private.example.test'], ports: EPHEMERAL },
    ],
    deny: [{ name: 'paste-sites', hosts: ['paste.example.test'] }],
  });

function installWith(policy = basePolicy()) {
  sink = eventSink();
  return install({ policy, lookup: lookupVia(dns), ca: pki.caCertPem, destination: sink });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  const names = [...NAMES, 'localhost', '127.0.0.1'];
  api = await startHttpsServer({
    pki,
    names,
    handler: routes(
      {
        '/v1/to-evil': (_req, res) =>
          redirect(`https://evil.example.test:${evil.port}/v1/stolen`)(_req, res, ''),
        '/v1/to-http': (_req, res) =>
          redirect(`http://api.example.test:${plain.port}/v1/plain`)(_req, res, ''),
        '/v1/protocol-relative': (_req, res) =>
          redirect(`//evil.example.test:${evil.port}/v1/stolen`)(_req, res, ''),
        '/v1/hop': redirect('/v1/landed'),
        '/v1/echo': (req, res, body) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ method: req.method, body }));
        },
      },
      okHandler,
    ),
  });
  evil = await startHttpsServer({ pki, names });
  paste = await startHttpsServer({ pki, names });
  plain = await startHttpServer();
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil, paste, plain]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([api, evil, paste, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

/** fetch rejects with undici's TypeError; the guard's error is its cause. */
async function fetchError(input: string, init?: RequestInit): Promise<EgressError & Record<string, any>> {
  const error = await rejection(fetch(input, init));
  expect(error).toBeInstanceOf(TypeError);
  expect(error.message).toBe('fetch failed');
  expect(error.cause).toBeInstanceOf(EgressError);
  return error.cause as EgressError & Record<string, any>;
}

describe('global fetch: allowed', () => {
  it('GET reaches the server, with one decision and one completion event', async () => {
    installWith();
    const res = await fetch(url('api.example.test', api, '/v1/items?token=secret'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: '/v1/items?token=secret' });
    expect(api.connections).toBe(1);
    const [decision] = sink.decisions();
    expect(decision).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'api',
      'egress.hook': 'fetch',
      'url.scheme': 'https',
      'server.address': 'api.example.test',
      'http.request.method': 'GET',
      'url.path': '/v1/items',
    });
    expect(decision!['url.full']).toBe(`https://api.example.test:${api.port}/v1/items?REDACTED`);
    expect(sink.completions()).toHaveLength(1);
    expect(sink.completions()[0]).toMatchObject({ 'egress.outcome': 'ok', 'http.response.status_code': 200 });
  });

  it('POST sends its body', async () => {
    installWith();
    const res = await fetch(url('api.example.test', api, '/v1/echo'), {
      method: 'POST',
      body: 'hello=world',
    });
    expect(await res.json()).toEqual({ method: 'POST', body: 'hello=world' });
    expect(api.requests[0]?.body).toBe('hello=world');
  });

  it('follows a same-host redirect, deciding each hop', async () => {
    installWith();
    const res = await fetch(url('api.example.test', api, '/v1/hop'));
    expect(res.status).toBe(200);
    expect(res.url).toBe(url('api.example.test', api, '/v1/landed'));
    expect(sink.decisions().map((e) => e['url.path'])).toEqual(['/v1/hop', '/v1/landed']);
    expect(sink.decisions().every((e) => e['egress.decision'] === 'allowed')).toBe(true);
  });
});

describe('global fetch: denied before any connection', () => {
  it('a host no rule lists: TypeError("fetch failed") caused by an EgressError that says how to allow it', async () => {
    installWith();
    const cause = await fetchError(url('evil.example.test', evil, '/v1/x'));
    expect(cause).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      rule: undefined,
      host: 'evil.example.test',
      port: evil.port,
    });
    expect(cause.message).toContain('add a rule with hosts: [evil.example.test]');
    expect(cause.policyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(evil.connections).toBe(0);
    // The name was never even looked up.
    expect(dns.queries.filter((q) => q.name === 'evil.example.test')).toEqual([]);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
    });
  });

  it('a method the rule does not list', async () => {
    installWith();
    const cause = await fetchError(url('api.example.test', api, '/v1/items'), { method: 'DELETE' });
    expect(cause).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'method_not_allowed', rule: 'api' });
    expect(cause.message).toContain('add DELETE to its methods');
    expect(api.connections).toBe(0);
  });

  it('a path the rule does not list', async () => {
    installWith();
    const cause = await fetchError(url('api.example.test', api, '/admin/users'));
    expect(cause).toMatchObject({ reason: 'path_not_allowed', rule: 'api' });
    expect(api.connections).toBe(0);
  });

  it('a port the rule does not list', async () => {
    installWith(policyOf({ allow: [loopbackRule('api', ['api.example.test'], { ports: [443] })] }));
    const cause = await fetchError(url('api.example.test', api, '/v1/items'));
    expect(cause).toMatchObject({ reason: 'port_not_allowed', rule: 'api', port: api.port });
    expect(cause.message).toContain(`add ${api.port} to its ports`);
    expect(api.connections).toBe(0);
  });

  it('an explicit deny wins over an allow rule', async () => {
    installWith();
    const cause = await fetchError(url('paste.example.test', paste, '/v1/x'));
    expect(cause).toMatchObject({ reason: 'explicit_deny', rule: 'paste-sites' });
    expect(paste.connections).toBe(0);
  });

  it('a listed name that resolves to loopback, without privateAddresses: allow', async () => {
    installWith();
    const cause = await fetchError(url('private.example.test', api, '/'));
    expect(cause).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'private_address',
      rule: 'private-not-allowed',
    });
    expect(cause.message).toContain('privateAddresses: allow');
    expect(api.connections).toBe(0);
    const dial = sink.decisions().find((e) => e['egress.reason'] === 'private_address');
    expect(dial).toMatchObject({ 'network.peer.address': '127.0.0.1' });
  });

  it('an IP literal URL is matched by addresses rules only', async () => {
    installWith();
    const cause = await fetchError(`https://127.0.0.1:${api.port}/v1/x`);
    expect(cause).toMatchObject({ reason: 'address_not_allowed', host: '127.0.0.1' });
    expect(api.connections).toBe(0);
  });

  it('a request aborted by the caller is not confused with a denial', async () => {
    installWith();
    const error = await rejection(
      fetch(url('api.example.test', api, '/v1/x'), { signal: AbortSignal.abort() }),
    );
    expect(error.name).toBe('AbortError');
  });
});

describe('global fetch: redirects are decided on every hop', () => {
  it('an allowed host redirecting to a denied host: the second server sees no connection', async () => {
    installWith();
    const cause = await fetchError(url('api.example.test', api, '/v1/to-evil'));
    expect(cause).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(api.connections).toBe(1);
    expect(evil.connections).toBe(0);
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['allowed', 'denied']);
  });

  it('https → http downgrade, where the rule allows https only', async () => {
    installWith();
    const cause = await fetchError(url('api.example.test', api, '/v1/to-http'));
    expect(cause).toMatchObject({
      reason: 'scheme_not_allowed',
      rule: 'api',
      host: 'api.example.test',
      port: plain.port,
    });
    expect(plain.connections).toBe(0);
  });

  it('a protocol-relative Location is resolved against the hop and decided', async () => {
    installWith();
    const cause = await fetchError(url('api.example.test', api, '/v1/protocol-relative'));
    expect(cause).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(evil.connections).toBe(0);
  });

  it('redirect: "manual" hands the 302 back without deciding the target', async () => {
    installWith();
    const res = await fetch(url('api.example.test', api, '/v1/to-evil'), { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(evil.connections).toBe(0);
    expect(sink.decisions()).toHaveLength(1);
  });
});

describe('global fetch: a caller-supplied dispatcher is still decided', () => {
  it('denied through a new undici Agent, with zero connections', async () => {
    installWith();
    const agent = new Agent({ connect: { ca: pki.caCertPem, lookup: lookupVia(dns) } });
    try {
      const cause = await fetchError(url('evil.example.test', evil, '/v1/x'), {
        dispatcher: agent,
      } as unknown as RequestInit);
      expect(cause).toMatchObject({ reason: 'host_not_allowed' });
      expect(evil.connections).toBe(0);
      expect(sink.decisions()[0]).toMatchObject({ 'egress.hook': 'fetch.caller-dispatcher' });
    } finally {
      await agent.close();
    }
  });

  it('allowed through a new undici Agent, and its dialled address is still checked', async () => {
    installWith();
    const agent = new Agent({ connect: { ca: pki.caCertPem, lookup: lookupVia(dns) } });
    try {
      const res = await fetch(url('api.example.test', api, '/v1/x'), {
        dispatcher: agent,
      } as unknown as RequestInit);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      expect(api.connections).toBe(1);
      // The caller's agent dialled a name listed without privateAddresses: allow → refused at dial time.
      const cause = await fetchError(url('private.example.test', api, '/'), {
        dispatcher: agent,
      } as unknown as RequestInit);
      expect(cause).toMatchObject({ reason: 'private_address' });
      expect(api.connections).toBe(1);
    } finally {
      await agent.close();
    }
  });
});

describe('WebSocket', () => {
  let wssServer: RecordingServer;
  let wss: WebSocketServer;

  beforeAll(async () => {
    wssServer = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
    wss = new WebSocketServer({ server: wssServer.server as never });
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
  });
  afterEach(() => wssServer.reset());
  afterAll(async () => {
    wss.close();
    await wssServer.close();
  });

  const clients: Array<[string, () => typeof UndiciWebSocket]> = [
    ['undici (npm) WebSocket', () => UndiciWebSocket],
  ];
  if (NODE_MAJOR >= 22)
    clients.push([
      'global WebSocket',
      () => (globalThis as unknown as { WebSocket: typeof UndiciWebSocket }).WebSocket,
    ]);

  for (const [label, Client] of clients) {
    it(`${label}: wss allowed by a rule with schemes [wss]`, async () => {
      installWith();
      const WS = Client();
      const ws = new WS(`wss://ws.example.test:${wssServer.port}/chat`);
      await once(ws as never, 'open');
      ws.send('hi');
      const [message] = (await once(ws as never, 'message')) as [MessageEvent];
      expect(message.data).toBe('echo:hi');
      ws.close();
      expect(wssServer.connections).toBe(1);
      expect(sink.decisions()[0]).toMatchObject({
        'egress.decision': 'allowed',
        'url.scheme': 'wss',
        'egress.rule': 'websockets',
      });
    });

    it(`${label}: wss to a host whose rule lists only https is denied, zero connections`, async () => {
      installWith();
      const WS = Client();
      const ws = new WS(`wss://api.example.test:${wssServer.port}/chat`);
      // 'error' rather than 'close': Node 22's bundled WebSocket (undici 6) never fires close after a
      // failed connection, guarded or not, and stays CONNECTING.
      await once(ws as never, 'error');
      expect(wssServer.connections).toBe(0);
      expect(sink.decisions()[0]).toMatchObject({
        'egress.decision': 'denied',
        'egress.reason': 'scheme_not_allowed',
        'url.scheme': 'wss',
      });
    });

    it(`${label}: ws (plaintext) to a wss-only rule is denied`, async () => {
      installWith();
      const WS = Client();
      const ws = new WS(`ws://ws.example.test:${plain.port}/chat`);
      // 'error' rather than 'close': Node 22's bundled WebSocket (undici 6) never fires close after a
      // failed connection, guarded or not, and stays CONNECTING.
      await once(ws as never, 'error');
      expect(plain.connections).toBe(0);
      expect(sink.decisions()[0]).toMatchObject({
        'egress.decision': 'denied',
        'egress.reason': 'scheme_not_allowed',
        'url.scheme': 'ws',
      });
    });
  }
});
