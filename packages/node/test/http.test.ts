/**
 * http/https under install(): every request (every argument form, global and callers' agents, the ESM named
 * exports) is decided before anything is created; denials reach no server (zero accepted connections);
 * allowed requests are held to the rule's TLS floor, verification rule, timeouts and breaker.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https, { get as esmHttpsGet, request as esmHttpsRequest } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { urlToHttpOptions } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { EgressError, install, installedGuard, uninstall } from '../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  type HttpHandler,
  lookupVia,
  loopbackRule,
  okHandler,
  policyOf,
  type RecordingServer,
  routes,
  settle,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  startLegacyTlsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

const NAMES = [
  'api.example.test',
  'evil.example.test',
  'blocked.example.test',
  'private.example.test',
  'localhost',
];

let pki: TestPki;
let dns: TestDnsServer;
let plain: RecordingServer;
let secure: RecordingServer;
let legacy: RecordingServer;
let sink: EventSink;
/** What the slow handlers wait for before answering; released in afterEach so no server socket lingers. */
let release: Array<() => void> = [];

const later = (ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    release.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });

const handlers: Record<string, HttpHandler> = {
  '/v1/echo': (req, res, body) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, body }));
  },
  '/v1/slow-headers': async (_req, res) => {
    await later(2_000);
    res.end('late');
  },
  '/v1/stalled-body': async (_req, res) => {
    res.writeHead(200);
    res.write('first');
    await later(2_000);
    res.end('rest');
  },
  '/v1/trickle': async (_req, res) => {
    res.writeHead(200);
    for (let i = 0; i < 10; i++) {
      res.write('x');
      await later(60);
    }
    res.end();
  },
  '/v1/fail': (_req, res) => {
    res.writeHead(503);
    res.end('down');
  },
};

const basePolicy = (extra: Record<string, unknown> = {}) =>
  policyOf({
    allow: [
      loopbackRule('api', ['api.example.test', 'localhost', 'blocked.example.test'], {
        schemes: ['http', 'https'],
        methods: ['GET', 'POST'],
        paths: ['/v1/**'],
      }),
      {
        name: 'private-not-allowed',
        hosts: ['private.example.test'],
        schemes: ['http', 'https'],
        ports: EPHEMERAL,
      },
    ],
    deny: [{ name: 'blocked', hosts: ['blocked.example.test'] }],
    ...extra,
  });

function installWith(policy = basePolicy()) {
  sink = eventSink();
  return install({ policy, lookup: lookupVia(dns), destination: sink });
}

interface Reply {
  status: number;
  body: string;
  req: http.ClientRequest;
}

/** Runs a request to its end: resolves with the response, rejects with the request's or response's error. */
function send(req: http.ClientRequest, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), req }),
      );
    });
    if (!req.writableEnded) req.end(body);
  });
}

/** The error a request fails with, after its 'close' (so every event it emits has been emitted). */
async function failure(req: http.ClientRequest): Promise<EgressError & Record<string, any>> {
  const error = await new Promise<Error>((resolve, reject) => {
    req.on('error', resolve);
    req.on('response', (res) => {
      res.resume();
      reject(new Error(`expected an error, got HTTP ${res.statusCode}`));
    });
    if (!req.writableEnded) req.end();
  });
  if (!req.destroyed || !(req as http.ClientRequest & { _closed?: boolean })._closed)
    await once(req, 'close');
  return error as EgressError & Record<string, any>;
}

const at = (host: string, server: RecordingServer, path = '/v1/items') =>
  `${server.url.split(':')[0]}://${host}:${server.port}${path}`;

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  const names = [...NAMES, 'localhost', '127.0.0.1'];
  plain = await startHttpServer({ handler: routes(handlers, okHandler) });
  secure = await startHttpsServer({ pki, names, handler: routes(handlers, okHandler) });
  legacy = await startLegacyTlsServer({ pki, names });
});

afterEach(async () => {
  await uninstall();
  for (const r of release) r();
  release = [];
  http.globalAgent.destroy();
  https.globalAgent.destroy();
  for (const s of [plain, secure, legacy]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([plain, secure, legacy].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('allowed requests', () => {
  it('http GET through the global agent: one decision, one completion, query redacted', async () => {
    installWith();
    const reply = await send(http.request(at('api.example.test', plain, '/v1/items?token=secret')));
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ ok: true, path: '/v1/items?token=secret' });
    expect(plain.connections).toBe(1);
    await settle(10);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'api',
      'egress.hook': 'http',
      'url.scheme': 'http',
      'url.full': `http://api.example.test:${plain.port}/v1/items?REDACTED`,
      'url.path': '/v1/items',
      'server.address': 'api.example.test',
      'server.port': plain.port,
      'http.request.method': 'GET',
    });
    expect(sink.completions()).toHaveLength(1);
    expect(sink.completions()[0]).toMatchObject({
      'egress.id': sink.decisions()[0]!['egress.id'],
      'egress.hook': 'http',
      'egress.outcome': 'ok',
      'http.response.status_code': 200,
      'egress.bytes.received': Buffer.byteLength(reply.body),
    });
  });

  it('https POST with a body through the global agent, at the rule floor (TLS 1.2+)', async () => {
    installWith();
    const req = https.request(at('api.example.test', secure, '/v1/echo'), {
      method: 'POST',
      ca: pki.caCertPem,
    });
    const reply = await send(req, 'hello=world');
    expect(JSON.parse(reply.body)).toEqual({ method: 'POST', body: 'hello=world' });
    expect(secure.tlsVersions).toEqual(['TLSv1.3']);
    await settle(10);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.hook': 'https',
      'url.scheme': 'https',
      'http.request.method': 'POST',
    });
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'ok',
      'tls.protocol.version': 'TLSv1.3',
    });
  });

  it('every argument form: (url, cb), (URL, options, cb), (options, cb), http.get, https.get', async () => {
    installWith();
    const url = at('api.example.test', plain, '/v1/a');
    const viaString = await new Promise<number>((resolve, reject) =>
      http.get(url, (res) => resolve(res.resume().statusCode ?? 0)).on('error', reject),
    );
    const viaUrl = await send(http.request(new URL(url), { method: 'POST' }));
    const viaOptions = await send(
      http.request({ hostname: 'api.example.test', port: plain.port, path: '/v1/b?x=1', method: 'get' }),
    );
    const viaHostOnly = await send(http.request({ host: 'localhost', port: plain.port, path: '/v1/c' }));
    const viaHttpsGet = await new Promise<number>((resolve, reject) =>
      https
        .get(at('api.example.test', secure, '/v1/d'), { ca: pki.caCertPem }, (res) =>
          resolve(res.resume().statusCode ?? 0),
        )
        .on('error', reject),
    );
    expect([viaString, viaUrl.status, viaOptions.status, viaHostOnly.status, viaHttpsGet]).toEqual([
      200, 200, 200, 200, 200,
    ]);
    await settle(10);
    expect(
      sink.decisions().map((e) => [e['http.request.method'], e['url.path'], e['server.address']]),
    ).toEqual([
      ['GET', '/v1/a', 'api.example.test'],
      ['POST', '/v1/a', 'api.example.test'],
      ['GET', '/v1/b', 'api.example.test'],
      ['GET', '/v1/c', 'localhost'],
      ['GET', '/v1/d', 'api.example.test'],
    ]);
  });

  it('a caller keep-alive agent: the socket is reused, each request is decided', async () => {
    installWith();
    const agent = new https.Agent({ keepAlive: true, ca: pki.caCertPem });
    try {
      const first = await send(https.request(at('api.example.test', secure, '/v1/one'), { agent }));
      const second = await send(https.request(at('api.example.test', secure, '/v1/two'), { agent }));
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(second.req.reusedSocket).toBe(true);
      expect(secure.connections).toBe(1);
      await settle(10);
      expect(sink.decisions().map((e) => e['url.path'])).toEqual(['/v1/one', '/v1/two']);
      expect(sink.completions()).toHaveLength(2);
      // A third request on the same pooled socket, for a path the rule does not list, is still refused.
      const error = await failure(https.request(at('api.example.test', secure, '/admin'), { agent }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'path_not_allowed' });
      expect(secure.requests.map((r) => r.url)).toEqual(['/v1/one', '/v1/two']);
    } finally {
      agent.destroy();
    }
  });

  it('the global agents keep sockets alive across decided requests', async () => {
    installWith();
    await send(http.request(at('localhost', plain, '/v1/one')));
    const second = await send(http.request(at('localhost', plain, '/v1/two')));
    expect(second.req.reusedSocket).toBe(true);
    expect(plain.connections).toBe(1);
    expect(sink.decisions()).toHaveLength(2);
  });

  it('ESM named imports of node:https see the patched functions (syncBuiltinESMExports)', async () => {
    const before = esmHttpsRequest;
    installWith();
    expect(esmHttpsRequest).toBe(https.request);
    const ns = await import('node:https');
    expect(ns.request).toBe(https.request);
    expect(ns.request).not.toBe(before);
    const error = await failure(ns.request(at('evil.example.test', secure)));
    expect(error.reason).toBe('host_not_allowed');
    expect(typeof esmHttpsGet).toBe('function');
    expect(secure.connections).toBe(0);
  });

  it('a redirect followed by hand is a second request, decided again', async () => {
    installWith();
    const first = await send(http.request(at('api.example.test', plain, '/v1/start')));
    expect(first.status).toBe(200);
    // The "next hop" goes to a host no rule lists: denied before it connects.
    const hop = await failure(http.request(`http://evil.example.test:${plain.port}/v1/next`));
    expect(hop.reason).toBe('host_not_allowed');
    expect(plain.connections).toBe(1);
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['allowed', 'denied']);
  });

  it('WebSocket upgrades are decided as ws', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const port = (wss.address() as net.AddressInfo).port;
    try {
      installWith(policyOf({ allow: [loopbackRule('sockets', ['api.example.test'], { schemes: ['ws'] })] }));
      wss.on('connection', (socket) => socket.send('hi'));
      const ws = new WebSocket(`ws://api.example.test:${port}/feed`);
      const [message] = await once(ws, 'message');
      expect(String(message)).toBe('hi');
      ws.close();
      await once(ws, 'close');
      expect(sink.decisions()[0]).toMatchObject({
        'url.scheme': 'ws',
        'egress.decision': 'allowed',
        'egress.rule': 'sockets',
      });
      expect(sink.completions()[0]).toMatchObject({
        'egress.outcome': 'ok',
        'http.response.status_code': 101,
      });
      // Plain http to the same rule is not allowed: the rule lists ws only.
      const error = await failure(http.request(`http://api.example.test:${port}/feed`));
      expect(error.reason).toBe('scheme_not_allowed');
    } finally {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  it('IPC (socketPath) is not egress: passed through undecided', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'egress-guard-ipc-'));
    const path = join(dir, 'server.sock');
    const server = http.createServer((_req, res) => res.end('ipc'));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      installWith();
      const reply = await send(http.request({ socketPath: path, path: '/anything', method: 'DELETE' }));
      expect(reply.body).toBe('ipc');
      expect(sink.decisions()).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('denied before any connection', () => {
  it('a host no rule lists: a real ClientRequest that errors (then closes) and never connects', async () => {
    installWith();
    const req = http.request(at('evil.example.test', plain));
    expect(req).toBeInstanceOf(http.ClientRequest);
    // As a request whose connection Node could not make: alive at first (a body can still be written or
    // piped into it), then 'error' and 'close'; its socket is a placeholder that fails in its look-up.
    expect(req.destroyed).toBe(false);
    const events: string[] = [];
    for (const name of ['socket', 'error', 'close']) req.on(name, () => events.push(name));
    const error = await failure(req);
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
      port: plain.port,
    });
    expect(error.message).toContain('add a rule with hosts: [evil.example.test]');
    await settle(20);
    expect(events).toEqual(['socket', 'error', 'close']);
    expect(plain.connections).toBe(0);
    // Never even looked up.
    expect(dns.queries.filter((q) => q.name === 'evil.example.test')).toEqual([]);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
    });
    expect(sink.completions()).toHaveLength(1);
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'denied',
      'error.type': 'host_not_allowed',
    });
  });

  it.each([
    [
      'method',
      () => http.request(at('api.example.test', plain), { method: 'DELETE' }),
      'method_not_allowed',
      'api',
    ],
    ['path', () => http.request(at('api.example.test', plain, '/admin/users')), 'path_not_allowed', 'api'],
    ['explicit deny', () => http.request(at('blocked.example.test', plain)), 'explicit_deny', 'blocked'],
    [
      'https path',
      () => https.request(at('api.example.test', secure, '/admin'), { ca: pki.caCertPem }),
      'path_not_allowed',
      'api',
    ],
    ['http.get', () => http.get(at('api.example.test', plain, '/v2/x')), 'path_not_allowed', 'api'],
  ])('%s', async (_name, make, reason, rule) => {
    installWith();
    const error = await failure(make());
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason, rule });
    expect(plain.connections + secure.connections).toBe(0);
  });

  it('an object shaped like a URL is read as Node reads it (its pathname is the path sent)', async () => {
    installWith(
      policyOf({ allow: [loopbackRule('root', ['api.example.test'], { schemes: ['http'], paths: ['/'] })] }),
    );
    const like = {
      href: at('api.example.test', plain, '/admin/users'),
      protocol: 'http:',
      hostname: 'api.example.test',
      port: String(plain.port),
      pathname: '/admin/users',
      search: '',
    };
    const error = await failure(http.request(like as unknown as URL));
    expect(error).toMatchObject({ reason: 'path_not_allowed' });
    expect(plain.connections).toBe(0);
  });

  it('a port the rule does not list', async () => {
    installWith(
      policyOf({ allow: [{ name: 'api', hosts: ['api.example.test'], schemes: ['http'], ports: [80] }] }),
    );
    const error = await failure(http.request(at('api.example.test', plain)));
    expect(error).toMatchObject({ reason: 'port_not_allowed', rule: 'api' });
    expect(plain.connections).toBe(0);
  });

  it("the default port comes from the agent: https without a port is 443, a caller agent's defaultPort is used", async () => {
    installWith();
    const error = await failure(https.request({ hostname: 'evil.example.test', path: '/' }));
    expect(error).toMatchObject({ reason: 'host_not_allowed', port: 443 });
    const agent = new http.Agent();
    (agent as http.Agent & { defaultPort: number }).defaultPort = plain.port;
    const reply = await send(http.request({ hostname: 'api.example.test', path: '/v1/x', agent }));
    expect(reply.status).toBe(200);
    expect(sink.decisions()[1]).toMatchObject({ 'server.port': plain.port, 'egress.decision': 'allowed' });
    agent.destroy();
  });

  it.each([
    ['127.1', (port: number) => `http://127.1:${port}/v1/x`],
    ['0x7f.1', (port: number) => `http://0x7f.1:${port}/v1/x`],
    ['2130706433', (port: number) => `http://2130706433:${port}/v1/x`],
    ['[::ffff:127.0.0.1]', (port: number) => `http://[::ffff:127.0.0.1]:${port}/v1/x`],
  ])('the IP literal %s is matched by addresses rules only', async (_spelling, make) => {
    installWith();
    const error = await failure(http.request(make(plain.port)));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed' });
    expect(plain.connections).toBe(0);
  });

  it('IPv6 literals, bracketed in URLs and bare in options, are matched by addresses rules', async () => {
    const v6 = await startHttpServer({ host: '::1' });
    try {
      installWith();
      const denied = await failure(http.request(`http://[::1]:${v6.port}/v1/x`));
      expect(denied).toMatchObject({ reason: 'address_not_allowed', host: '::1' });
      expect(v6.connections).toBe(0);
      await uninstall();
      installWith(
        policyOf({ allow: [{ name: 'v6', addresses: ['::1/128'], schemes: ['http'], ports: EPHEMERAL }] }),
      );
      expect((await send(http.request(`http://[::1]:${v6.port}/v1/x`, { agent: false }))).status).toBe(200);
      expect(
        (await send(http.request({ host: '::1', port: v6.port, path: '/v1/y', agent: false }))).status,
      ).toBe(200);
      expect(sink.decisions()[0]).toMatchObject({
        'egress.decision': 'allowed',
        'url.full': `http://[::1]:${v6.port}/v1/x`,
      });
      expect(v6.connections).toBe(2);
    } finally {
      await v6.close();
    }
  });

  it('an IP literal in options.hostname, in any spelling, is matched by addresses rules only', async () => {
    installWith();
    const error = await failure(http.request({ hostname: '127.1', port: plain.port, path: '/v1/x' }));
    expect(error).toMatchObject({ reason: 'address_not_allowed' });
    expect(plain.connections).toBe(0);
  });

  it('an addresses rule lets the IP literal through, in each spelling', async () => {
    installWith(
      policyOf({
        allow: [{ name: 'loopback', addresses: ['127.0.0.0/8'], schemes: ['http'], ports: EPHEMERAL }],
      }),
    );
    for (const host of ['127.1', '0x7f.1', '[::ffff:127.0.0.1]']) {
      const reply = await send(http.request(`http://${host}:${plain.port}/v1/x`, { agent: false }));
      expect(reply.status).toBe(200);
    }
    expect(plain.connections).toBe(3);
  });

  it('a name that resolves to 127.0.0.1, for a rule without privateAddresses: allow', async () => {
    installWith();
    const error = await failure(http.request(at('private.example.test', plain)));
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'private_address',
      rule: 'private-not-allowed',
    });
    expect(plain.connections).toBe(0);
    // Decided once as a request, then denied again at dial time with the address, under the same id.
    const [request, dial] = sink.decisions();
    expect(request).toMatchObject({ 'egress.decision': 'allowed', 'egress.hook': 'http' });
    expect(dial).toMatchObject({
      'egress.decision': 'denied',
      'egress.hook': 'http.dial',
      'egress.id': request!['egress.id'],
      'network.peer.address': '127.0.0.1',
    });
    expect(sink.completions()).toHaveLength(1);
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'denied',
      'error.type': 'EGRESS_ERR_DENIED',
    });
  });

  it("a caller agent's own host and port (which override the request's) are what is decided", async () => {
    installWith();
    // The request names an allowed host; the agent dials another one. Node merges agent options last.
    const agent = new http.Agent({ host: 'evil.example.test', port: plain.port } as http.AgentOptions);
    const error = await failure(http.request(at('api.example.test', plain), { agent }));
    expect(error).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(plain.connections).toBe(0);
    const direct = await failure(
      new http.ClientRequest({ host: 'api.example.test', port: plain.port, path: '/v1/x', agent }),
    );
    expect(direct).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(plain.connections).toBe(0);
    agent.destroy();
  });

  it('a caller lookup cannot take a request around the address check', async () => {
    installWith();
    const lookup = (_h: string, _o: unknown, cb: (e: null, a: string, f: number) => void) =>
      cb(null, '127.0.0.1', 4);
    const error = await failure(http.request(at('private.example.test', plain), { lookup: lookup as never }));
    expect(error.reason).toBe('private_address');
    expect(plain.connections).toBe(0);
  });
});

describe('TLS', () => {
  it('a server that speaks only TLS 1.1 is refused with EGRESS_ERR_TLS', async () => {
    installWith();
    const req = https.request(at('api.example.test', legacy), {
      ca: pki.caCertPem,
      minVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    const error = await failure(req);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version', rule: 'api' });
    expect(error.message).toContain('TLSv1.2');
    expect(legacy.tlsVersions).toEqual([]);
    await settle(10);
    expect(sink.completions()[0]).toMatchObject({ 'egress.outcome': 'tls' });
  });

  it('a caller that caps TLS below the floor is refused before connecting', async () => {
    installWith();
    const error = await failure(
      https.request(at('api.example.test', secure), { ca: pki.caCertPem, maxVersion: 'TLSv1.1' }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version' });
    expect(secure.connections).toBe(0);
  });

  it('rejectUnauthorized: false is refused (tls_verify_disabled) unless the rule says tls.verify: false', async () => {
    installWith();
    const error = await failure(https.request(at('api.example.test', secure), { rejectUnauthorized: false }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled', rule: 'api' });
    expect(error.message).toContain('tls: { verify: false }');
    expect(secure.connections).toBe(0);
  });

  it('rejectUnauthorized: false is allowed, and logged, where the rule says tls.verify: false', async () => {
    installWith(policyOf({ allow: [loopbackRule('lab', ['api.example.test'], { tls: { verify: false } })] }));
    const reply = await send(https.request(at('api.example.test', secure), { rejectUnauthorized: false }));
    expect(reply.status).toBe(200);
    expect(sink.decisions().map((e) => e['egress.hook'])).toEqual(['https', 'tls.verify-disabled']);
  });
});

describe('timeouts', () => {
  const timed = (timeouts: Record<string, string>) =>
    policyOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'], timeouts })] });

  it('response: the headers take longer than timeouts.response', async () => {
    installWith(timed({ response: '150ms' }));
    const started = Date.now();
    const error = await failure(http.request(at('api.example.test', plain, '/v1/slow-headers')));
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_TIMEOUT',
      timeout: 'response',
      limitMs: 150,
      rule: 'api',
    });
    expect(error.message).toContain('raise timeouts.response in rule "api"');
    expect(Date.now() - started).toBeLessThan(1_500);
    await settle(10);
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'timeout',
      'error.type': 'EGRESS_ERR_TIMEOUT',
    });
  });

  it('idle: the body stalls for longer than timeouts.idle', async () => {
    installWith(timed({ idle: '150ms' }));
    const req = http.request(at('api.example.test', plain, '/v1/stalled-body'));
    const [res] = (await Promise.all([once(req, 'response'), req.end()])) as [
      [http.IncomingMessage],
      unknown,
    ];
    const body: string[] = [];
    res[0].on('data', (c: Buffer) => body.push(String(c)));
    const [error] = (await once(res[0], 'error')) as [EgressError & Record<string, any>];
    expect(body).toEqual(['first']);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'idle', limitMs: 150 });
    await settle(10);
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'timeout',
      'http.response.status_code': 200,
    });
  });

  it('connect: a connection (look-up included) that takes longer than timeouts.connect', async () => {
    installWith(timed({ connect: '150ms' }));
    const hanging = () => {}; // a resolver that never answers
    const error = await failure(http.request(at('api.example.test', plain), { lookup: hanging as never }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'connect', limitMs: 150 });
    expect(plain.connections).toBe(0);
  });

  it('total: a body that keeps trickling in for longer than timeouts.total', async () => {
    installWith(timed({ total: '250ms', idle: '5s' }));
    const error = await rejectionOf(send(http.request(at('api.example.test', plain, '/v1/trickle'))));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'total', limitMs: 250 });
  });
});

async function rejectionOf(promise: Promise<unknown>): Promise<EgressError & Record<string, any>> {
  try {
    await promise;
  } catch (error) {
    return error as EgressError & Record<string, any>;
  }
  throw new Error('expected a rejection');
}

describe('circuit breaker', () => {
  it('opens after 5xx, fails fast without connecting, and lets a probe through after resetTimeout', async () => {
    installWith(
      policyOf({
        allow: [
          loopbackRule('api', ['api.example.test'], {
            schemes: ['http'],
            breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '200ms' },
          }),
        ],
      }),
    );
    const get = (path: string) => http.request(at('api.example.test', plain, path), { agent: false });
    expect((await send(get('/v1/fail'))).status).toBe(503);
    expect((await send(get('/v1/fail'))).status).toBe(503);
    expect(plain.connections).toBe(2);
    await settle(10); // opossum counts the failure a few microtasks after the response ends

    const error = await failure(get('/v1/ok'));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_CIRCUIT_OPEN', rule: 'api' });
    expect(plain.connections).toBe(2);
    expect(sink.named('egress.breaker.state').map((e) => e['egress.breaker.state'])).toEqual(['open']);

    await settle(260);
    expect((await send(get('/v1/ok'))).status).toBe(200);
    expect(plain.connections).toBe(3);
    expect(sink.named('egress.breaker.state').map((e) => e['egress.breaker.state'])).toEqual([
      'open',
      'half_open',
      'closed',
    ]);
    const outcomes = sink.completions().map((e) => e['egress.outcome']);
    expect(outcomes).toEqual(['error', 'error', 'circuit_open', 'ok']);
  });

  it('network errors count as failures', async () => {
    installWith(
      policyOf({
        allow: [
          loopbackRule('api', ['api.example.test'], {
            schemes: ['http'],
            breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '10s' },
          }),
        ],
      }),
    );
    const dead = await startHttpServer();
    const port = dead.port;
    await dead.close();
    const url = `http://api.example.test:${port}/v1/x`;
    expect((await failure(http.request(url))).code).toBe('ECONNREFUSED');
    expect((await failure(http.request(url))).code).toBe('ECONNREFUSED');
    await settle(10);
    expect((await failure(http.request(url))).code).toBe('EGRESS_ERR_CIRCUIT_OPEN');
  });
});

describe('report mode', () => {
  it('a would-deny is let through and logged as reported', async () => {
    installWith(basePolicy({ mode: 'report' }));
    const reply = await send(http.request(at('evil.example.test', plain, '/anything')));
    expect(reply.status).toBe(200);
    expect(plain.connections).toBe(1);
    await settle(10);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
      'egress.mode': 'report',
    });
    expect(sink.completions()[0]).toMatchObject({ 'egress.outcome': 'ok' });
  });
});

describe('events', () => {
  it('exactly one decision and one completion per request, allowed or not', async () => {
    installWith();
    const n = 6;
    for (let i = 0; i < n; i++) {
      const path = i % 2 === 0 ? `/v1/item-${i}` : `/admin/${i}`;
      const req = http.request(at('api.example.test', plain, path));
      if (i % 2 === 0) await send(req);
      else await failure(req);
    }
    await settle(10);
    expect(sink.decisions()).toHaveLength(n);
    expect(sink.completions()).toHaveLength(n);
    expect(new Set(sink.completions().map((e) => e['egress.id']))).toEqual(
      new Set(sink.decisions().map((e) => e['egress.id'])),
    );
  });

  it('no header values, and no query string, reach the events', async () => {
    installWith();
    await send(
      http.request(at('api.example.test', plain, '/v1/items?api_key=query-secret'), {
        headers: { authorization: 'Bearer header-secret', cookie: 'session=cookie-secret' },
      }),
    );
    await failure(
      http.request(at('evil.example.test', plain, '/x?api_key=query-secret'), {
        headers: { authorization: 'Bearer header-secret' },
      }),
    );
    await settle(10);
    const text = JSON.stringify(sink.events);
    expect(text).not.toContain('header-secret');
    expect(text).not.toContain('cookie-secret');
    expect(text).not.toContain('query-secret');
    expect(plain.requests[0]?.headers.authorization).toBe('Bearer header-secret');
  });
});

describe('requests the patched functions never saw', () => {
  it('new http.ClientRequest() on an agent is decided at the agent, with method and path', async () => {
    installWith();
    const req = new http.ClientRequest(at('api.example.test', plain, '/admin/secret'));
    const error = await failure(req);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'path_not_allowed' });
    expect(plain.connections).toBe(0);
    expect(sink.decisions()[0]).toMatchObject({ 'egress.hook': 'http.agent', 'url.path': '/admin/secret' });

    const ok = await send(new http.ClientRequest(at('api.example.test', plain, '/v1/fine')));
    expect(ok.status).toBe(200);
  });

  it('a pooled keep-alive socket is not reused by an undecided ClientRequest', async () => {
    installWith();
    const agent = new http.Agent({ keepAlive: true });
    try {
      await send(http.request(at('api.example.test', plain, '/v1/first'), { agent }));
      const error = await failure(
        new http.ClientRequest({
          ...urlToHttpOptions(new URL(at('api.example.test', plain, '/admin'))),
          agent,
        }),
      );
      expect(error.reason).toBe('path_not_allowed');
      expect(plain.requests.map((r) => r.url)).toEqual(['/v1/first']);
    } finally {
      agent.destroy();
    }
  });

  it('http.request captured before install() (CommonJS destructuring) is still decided', async () => {
    const captured = http.request;
    installWith();
    expect(captured).not.toBe(http.request);
    const error = await failure(captured(at('evil.example.test', plain)));
    expect(error.reason).toBe('host_not_allowed');
    expect(plain.connections).toBe(0);
  });

  it('new http.ClientRequest() with its own createConnection and no agent is held at the socket layer (fail closed)', async () => {
    installWith();
    // No agent, so no request-level hook sees it: the socket layer decides it as a raw tcp connection,
    // which the http-only rule does not allow.
    const req = new http.ClientRequest({
      host: 'api.example.test',
      port: plain.port,
      path: '/v1/items',
      createConnection: (opts: net.NetConnectOpts) =>
        net.createConnection({ ...opts, lookup: lookupVia(dns) } as net.NetConnectOpts),
    } as http.ClientRequestArgs);
    const error = await failure(req);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'scheme_not_allowed' });
    expect(plain.connections).toBe(0);
    expect(sink.decisions()[0]).toMatchObject({ 'egress.hook': 'net', 'url.scheme': 'tcp' });
  });
});

describe('install / uninstall', () => {
  it('uninstall restores the original functions; install twice returns the same guard', async () => {
    const originals = [http.request, http.get, https.request, https.get];
    const guard = installWith();
    expect(install({ policy: basePolicy() })).toBe(guard);
    expect(installedGuard()).toBe(guard);
    expect([http.request, http.get, https.request, https.get].every((f, i) => f !== originals[i])).toBe(true);
    await uninstall();
    expect([http.request, http.get, https.request, https.get]).toEqual(originals);
    const { request } = await import('node:http');
    expect(request).toBe(originals[0]);
    // Unguarded again: the host no rule lists is reached.
    const reply = await send(http.request(at('127.0.0.1', plain)));
    expect(reply.status).toBe(200);
  });
});
