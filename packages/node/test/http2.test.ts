/**
 * http2.connect under install(): the session is decided at connect (denied: zero accepted connections),
 * each stream by :method and :path (denied: never sent), with per-stream timeouts, breaker and events.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  countAccepts,
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  type HttpHandler,
  listenEphemeral,
  lookupVia,
  loopbackRule,
  okHandler,
  policyOf,
  type RecordingServer,
  routes,
  settle,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

const NAMES = ['api.example.test', 'evil.example.test', 'private.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let server: RecordingServer;
let sink: EventSink;
const sessions: http2.ClientHttp2Session[] = [];
const timers: NodeJS.Timeout[] = [];

const handlers: Record<string, HttpHandler> = {
  '/v1/slow': (_req, res) => {
    timers.push(setTimeout(() => res.end('late'), 2_000));
  },
  '/v1/fail': (_req, res) => {
    res.writeHead(503);
    res.end();
  },
  // Headers and a first chunk, then nothing: the idle limit between chunks.
  '/v1/stall': (_req, res) => {
    res.writeHead(200);
    res.write('first');
  },
  // A chunk every 40 ms, never done: within the idle limit, past the total one.
  '/v1/drip': (_req, res) => {
    res.writeHead(200);
    const drip = setInterval(() => res.write('.'), 40);
    timers.push(drip);
    res.on('close', () => clearInterval(drip));
  },
};

const policy = (extra: Record<string, unknown> = {}) =>
  policyOf({
    allow: [
      loopbackRule('api', ['api.example.test'], { methods: ['GET', 'POST'], paths: ['/v1/**'], ...extra }),
      { name: 'private-not-allowed', hosts: ['private.example.test'], ports: EPHEMERAL },
    ],
  });

function installWith(p = policy()) {
  sink = eventSink();
  return install({ policy: p, lookup: lookupVia(dns), destination: sink });
}

function connect(
  authority: string,
  options: http2.SecureClientSessionOptions = {},
): http2.ClientHttp2Session {
  const session = http2.connect(authority, { ca: pki.caCertPem, ...options });
  sessions.push(session);
  return session;
}

const origin = (host: string) => `https://${host}:${server.port}`;

/** Sends one request on a session and reads the whole response. */
function get(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request(headers);
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
  });
}

async function streamError(stream: http2.ClientHttp2Stream): Promise<EgressError & Record<string, any>> {
  const closed = new Promise((resolve) => stream.on('close', resolve));
  const [error] = await once(stream, 'error');
  await closed;
  return error as EgressError & Record<string, any>;
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  server = await startHttpsServer({
    pki,
    names: [...NAMES, 'localhost'],
    http2: true,
    handler: routes(handlers, okHandler),
  });
});

afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const t of timers.splice(0)) clearTimeout(t);
  await uninstall();
  server.reset();
  dns.reset();
});

afterAll(async () => {
  await server.close();
  await dns.close();
  await pki.cleanup();
});

describe('sessions', () => {
  it('an allowed session and stream: decided at connect, then per stream; one completion each', async () => {
    installWith();
    const session = connect(origin('api.example.test'));
    await once(session, 'connect');
    const reply = await get(session, { ':path': '/v1/items?token=secret' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ ok: true, path: '/v1/items?token=secret' });
    expect(server.requests[0]?.httpVersion).toBe('2.0');
    session.close();
    await once(session, 'close');
    const decisions = sink.decisions();
    expect(decisions).toHaveLength(2);
    expect(decisions[0]).toMatchObject({
      'egress.hook': 'http2',
      'egress.decision': 'allowed',
      'url.scheme': 'https',
      'server.address': 'api.example.test',
    });
    expect(decisions[0]!['http.request.method']).toBeUndefined();
    expect(decisions[1]).toMatchObject({
      'egress.hook': 'http2',
      'http.request.method': 'GET',
      'url.path': '/v1/items',
      'url.full': `https://api.example.test:${server.port}/v1/items?REDACTED`,
    });
    const completions = sink.completions();
    expect(completions).toHaveLength(2);
    expect(completions[0]).toMatchObject({
      'egress.id': decisions[1]!['egress.id'],
      'egress.outcome': 'ok',
      'http.response.status_code': 200,
      'egress.bytes.received': Buffer.byteLength(reply.body),
    });
    expect(completions[1]).toMatchObject({
      'egress.id': decisions[0]!['egress.id'],
      'egress.outcome': 'ok',
      'tls.protocol.version': 'TLSv1.3',
      'tls.client.alpn': 'h2',
    });
  });

  it('a denied session is a real session that fails without connecting', async () => {
    installWith();
    const session = connect(origin('evil.example.test'));
    expect(session.constructor.name).toBe('ClientHttp2Session');
    let connected = false;
    session.on('connect', () => {
      connected = true;
    });
    // A request made while it "connects" fails with it, and is never sent.
    const stream = session.request({ ':path': '/v1/x' });
    const streamErrors: Error[] = [];
    stream.on('error', (e) => streamErrors.push(e));
    const streamClosed = new Promise((resolve) => stream.on('close', resolve));
    const [error] = (await once(session, 'error')) as [EgressError & Record<string, any>];
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
    });
    await streamClosed;
    // Node cancels the pending stream, with the guard's error as its cause.
    expect(streamErrors[0]).toMatchObject({ code: 'ERR_HTTP2_STREAM_CANCEL', cause: error });
    await settle(20);
    expect(connected).toBe(false);
    expect(server.connections).toBe(0);
    expect(dns.queries.filter((q) => q.name === 'evil.example.test')).toEqual([]);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.completions()).toEqual([expect.objectContaining({ 'egress.outcome': 'denied' })]);
  });

  it.each([
    [
      'an IP literal no addresses rule lists',
      () => `https://127.0.0.1:${server.port}`,
      'address_not_allowed',
    ],
    [
      'a name that resolves to 127.0.0.1 (no privateAddresses: allow)',
      () => origin('private.example.test'),
      'private_address',
    ],
  ])('%s: zero connections', async (_name, authority, reason) => {
    installWith();
    const session = connect(authority());
    const [error] = (await once(session, 'error')) as [EgressError];
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason });
    expect(server.connections).toBe(0);
  });

  it('rejectUnauthorized: false is refused unless the rule allows it', async () => {
    installWith();
    const session = connect(origin('api.example.test'), { rejectUnauthorized: false });
    const [error] = (await once(session, 'error')) as [EgressError];
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled' });
    expect(server.connections).toBe(0);
  });

  it('plaintext h2c is decided as http', async () => {
    const h2c = http2.createServer();
    h2c.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('h2c');
    });
    const accepts = countAccepts(h2c);
    await new Promise<void>((resolve) => h2c.listen(0, '127.0.0.1', resolve));
    const port = (h2c.address() as net.AddressInfo).port;
    try {
      installWith(policyOf({ allow: [loopbackRule('h2c', ['api.example.test'], { schemes: ['http'] })] }));
      const session = connect(`http://api.example.test:${port}`);
      expect((await get(session, { ':path': '/' })).body).toBe('h2c');
      expect(sink.decisions()[0]).toMatchObject({ 'url.scheme': 'http', 'egress.rule': 'h2c' });
      session.destroy();

      const refused = connect(`https://api.example.test:${port}`);
      const [error] = (await once(refused, 'error')) as [EgressError];
      expect(error).toMatchObject({ reason: 'scheme_not_allowed' });
      expect(accepts.count).toBe(1);
    } finally {
      accepts.stop();
      h2c.close();
    }
  });
});

describe('streams', () => {
  it('a stream to a path the rule does not list is never sent; the session carries on', async () => {
    installWith();
    const session = connect(origin('api.example.test'));
    await once(session, 'connect');
    const stream = session.request({ ':path': '/admin/users', authorization: 'Bearer header-secret' });
    expect(stream.id).toBeUndefined();
    stream.end('discarded');
    const error = await streamError(stream);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'path_not_allowed', rule: 'api' });
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect((await get(session, { ':path': '/v1/after' })).status).toBe(200);
    expect(server.requests.map((r) => r.url)).toEqual(['/v1/after']);
    expect(server.connections).toBe(1);
    expect(JSON.stringify(sink.events)).not.toContain('header-secret');
  });

  it('a method the rule does not list', async () => {
    installWith();
    const session = connect(origin('api.example.test'));
    const error = await streamError(session.request({ ':method': 'DELETE', ':path': '/v1/items' }));
    expect(error).toMatchObject({ reason: 'method_not_allowed' });
    await settle(20);
    expect(server.requests).toEqual([]);
  });

  it('response timeout: headers later than timeouts.response', async () => {
    installWith(policy({ timeouts: { response: '150ms' } }));
    const session = connect(origin('api.example.test'));
    const stream = session.request({ ':path': '/v1/slow' });
    const error = await streamError(stream);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'response', limitMs: 150 });
    await settle(10);
    expect(sink.completions().find((e) => e['egress.outcome'] === 'timeout')).toBeDefined();
  });

  it('connect timeout: a session that does not connect within timeouts.connect', async () => {
    installWith(policy({ timeouts: { connect: '150ms' } }));
    const session = connect(origin('api.example.test'), { lookup: (() => {}) as never });
    const [error] = (await once(session, 'error')) as [EgressError & Record<string, any>];
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'connect', limitMs: 150 });
    expect(server.connections).toBe(0);
  });

  it('the breaker opens after 5xx and then refuses streams without sending them', async () => {
    installWith(
      policy({ breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '10s' } }),
    );
    const session = connect(origin('api.example.test'));
    expect((await get(session, { ':path': '/v1/fail' })).status).toBe(503);
    expect((await get(session, { ':path': '/v1/fail' })).status).toBe(503);
    await settle(10);
    const error = await streamError(session.request({ ':path': '/v1/ok' }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_CIRCUIT_OPEN', rule: 'api' });
    expect(server.requests).toHaveLength(2);
  });

  it.each([
    ['idle', '/v1/stall', { idle: '150ms' }, 150],
    ['total', '/v1/drip', { idle: '1s', total: '250ms' }, 250],
  ] as const)('%s timeout on a stream that has its response', async (kind, path, timeouts, limitMs) => {
    installWith(policy({ timeouts }));
    const session = connect(origin('api.example.test'));
    const stream = session.request({ ':path': path });
    stream.resume();
    const error = await streamError(stream);
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: kind, limitMs, rule: 'api' });
    const streamId = sink.decisions()[1]!['egress.id'];
    const [completion] = sink.completions().filter((e) => e['egress.id'] === streamId);
    expect(completion).toMatchObject({
      'egress.outcome': 'timeout',
      'error.type': 'EGRESS_ERR_TIMEOUT',
      'http.response.status_code': 200,
    });
    expect(completion!['egress.bytes.received']).toBeGreaterThan(0);
  });

  it('one decision and one completion per stream', async () => {
    installWith();
    const session = connect(origin('api.example.test'));
    for (const path of ['/v1/a', '/v1/b', '/nope']) {
      const stream = session.request({ ':path': path });
      stream.on('error', () => {});
      stream.resume();
      await new Promise((resolve) => stream.on('close', resolve));
    }
    session.close();
    await once(session, 'close');
    expect(sink.decisions()).toHaveLength(4);
    expect(sink.completions()).toHaveLength(4);
    expect(sink.completions().map((e) => e['egress.outcome'])).toEqual(['ok', 'ok', 'denied', 'ok']);
  });
});

describe('CONNECT streams (the session is an HTTP/2 proxy)', () => {
  let proxy: http2.Http2SecureServer;
  let proxyPort: number;
  let proxied: string[] = [];
  const proxyRules = [
    loopbackRule('proxy-h2', ['api.example.test']),
    loopbackRule('db', ['db.example.test'], { schemes: ['tcp'] }),
  ];

  beforeAll(async () => {
    const { certPem, keyPem } = await pki.issue(NAMES);
    proxy = http2.createSecureServer({ cert: certPem, key: keyPem });
    proxy.on('stream', (stream, headers) => {
      proxied.push(`${headers[':method']} ${headers[':authority']}`);
      stream.respond({ ':status': headers[':method'] === 'CONNECT' ? 200 : 405 });
      stream.end();
    });
    proxyPort = await listenEphemeral(proxy);
  });

  afterEach(() => {
    proxied = [];
  });

  afterAll(async () => {
    await new Promise((resolve) => proxy.close(resolve));
  });

  /** Opens a CONNECT stream to `authority`; resolves with its response status, or the error it failed with. */
  async function tunnel(session: http2.ClientHttp2Session, authority: string): Promise<unknown> {
    const stream = session.request({ ':method': 'CONNECT', ':authority': authority });
    const closed = new Promise((resolve) => stream.once('close', resolve));
    const result = await new Promise<unknown>((resolve) => {
      stream.once('error', resolve);
      stream.once('response', (headers) => resolve(headers[':status']));
    });
    stream.close();
    await closed;
    return result;
  }

  // Before: the tunnel's decision was recorded under an id of its own, unrelated to the stream's.
  it("the tunnel's target is decided under the stream's id; a target no rule lists is refused unsent", async () => {
    installWith(policyOf({ allow: proxyRules }));
    const session = connect(`https://api.example.test:${proxyPort}`);
    expect(await tunnel(session, 'db.example.test:5432')).toBe(200);
    const refused = await tunnel(session, 'evil.example.test:443');
    expect(refused).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
    });
    expect(proxied).toEqual(['CONNECT db.example.test:5432']);
    const [, allowedStream, allowedTunnel, refusedStream, refusedTunnel] = sink.decisions();
    expect(allowedStream).toMatchObject({ 'egress.hook': 'http2', 'http.request.method': 'CONNECT' });
    expect(allowedTunnel).toMatchObject({
      'egress.id': allowedStream!['egress.id'],
      'egress.hook': 'http2.tunnel',
      'egress.decision': 'allowed',
      'egress.rule': 'db',
      'url.scheme': 'tcp',
      'server.address': 'db.example.test',
      'server.port': 5432,
    });
    expect(refusedTunnel).toMatchObject({
      'egress.id': refusedStream!['egress.id'],
      'egress.hook': 'http2.tunnel',
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
    });
    const completionOf = (id: unknown) => sink.completions().filter((e) => e['egress.id'] === id);
    expect(completionOf(allowedStream!['egress.id'])).toEqual([
      expect.objectContaining({ 'egress.hook': 'http2', 'http.response.status_code': 200 }),
    ]);
    expect(completionOf(refusedStream!['egress.id'])).toEqual([
      expect.objectContaining({
        'egress.hook': 'http2',
        'egress.outcome': 'denied',
        'error.type': 'host_not_allowed',
        'server.address': 'evil.example.test',
      }),
    ]);
  });

  // Before: the tunnel's target was decided at Date.now(), not at the guard's clock, so reportUntil was
  // judged at another time than every other decision of the guard.
  it("the tunnel's target is decided at the guard's clock (report mode until reportUntil)", async () => {
    sink = eventSink();
    install({
      policy: policyOf({ mode: 'report', reportUntil: '2020-01-01', allow: proxyRules }),
      lookup: lookupVia(dns),
      destination: sink,
      now: () => Date.parse('2019-12-31T00:00:00Z'),
    });
    const session = connect(`https://api.example.test:${proxyPort}`);
    expect(await tunnel(session, 'evil.example.test:443')).toBe(200);
    expect(proxied).toEqual(['CONNECT evil.example.test:443']);
    expect(sink.decisions().find((e) => e['egress.hook'] === 'http2.tunnel')).toMatchObject({
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
    });
  });
});

describe('install / uninstall', () => {
  it('uninstall restores http2.connect', async () => {
    const original = http2.connect;
    installWith();
    expect(http2.connect).not.toBe(original);
    await uninstall();
    expect(http2.connect).toBe(original);
  });
});
