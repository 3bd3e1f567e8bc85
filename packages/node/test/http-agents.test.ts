/**
 * createHttpAgent / createHttpsAgent without install(): nothing is patched, so the agents alone must decide
 * each connection, check every dialled address (names through the look-up, IP literals directly), hold
 * TLS to the floor and refuse disabled verification. Blocks are proven by zero accepted connections.
 */
import http from 'node:http';
import https from 'node:https';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createGuard,
  createHttpAgent,
  createHttpsAgent,
  type EgressGuard,
  install,
  uninstall,
} from '../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  startLegacyTlsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

let pki: TestPki;
let dns: TestDnsServer;
let plain: RecordingServer;
let secure: RecordingServer;
let legacy: RecordingServer;
let sink: EventSink;
const agents: http.Agent[] = [];
const guards: EgressGuard[] = [];

const NAMES = ['api.example.test', 'private.example.test', 'evil.example.test'];

function guardOf(doc: Record<string, unknown>): EgressGuard {
  sink = eventSink();
  const guard = createGuard({
    policy: policyOf(doc),
    destination: sink,
    ca: pki.caCertPem,
    lookup: lookupVia(dns),
  });
  guards.push(guard);
  return guard;
}

function httpAgent(guard: EgressGuard, options?: http.AgentOptions) {
  const agent = createHttpAgent(guard, options);
  agents.push(agent);
  return agent;
}

function httpsAgent(guard: EgressGuard, options?: https.AgentOptions) {
  const agent = createHttpsAgent(guard, options);
  agents.push(agent);
  return agent;
}

function send(req: http.ClientRequest): Promise<{ status: number; body: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), req }),
      );
    });
    req.end();
  });
}

function failure(req: http.ClientRequest): Promise<Error & Record<string, any>> {
  return new Promise((resolve, reject) => {
    req.on('error', resolve);
    req.on('response', (res) => reject(new Error(`expected an error, got HTTP ${res.statusCode}`)));
    req.end();
  });
}

const at = (host: string, server: RecordingServer, path = '/v1/x') =>
  `${server.url.split(':')[0]}://${host}:${server.port}${path}`;

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  plain = await startHttpServer();
  secure = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
  legacy = await startLegacyTlsServer({ pki, names: [...NAMES, 'localhost'] });
});

afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  for (const guard of guards.splice(0)) await guard.close();
  await uninstall();
  for (const s of [plain, secure, legacy]) s.reset();
});

afterAll(async () => {
  await Promise.all([plain, secure, legacy].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('createHttpAgent (no install)', () => {
  it('an allowed connection: one decision per connection, one completion when it closes', async () => {
    const guard = guardOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'] })] });
    const reply = await send(http.request(at('api.example.test', plain), { agent: httpAgent(guard) }));
    expect(reply.status).toBe(200);
    await settle(20);
    expect(sink.decisions()).toEqual([
      expect.objectContaining({
        'egress.hook': 'http.agent',
        'egress.decision': 'allowed',
        'egress.rule': 'api',
        'url.scheme': 'http',
        'server.address': 'api.example.test',
      }),
    ]);
    expect(sink.completions()).toEqual([
      expect.objectContaining({ 'egress.outcome': 'ok', 'egress.id': sink.decisions()[0]!['egress.id'] }),
    ]);
    expect(sink.completions()[0]!['egress.bytes.received']).toBeGreaterThan(0);
  });

  it('a keep-alive agent decides the connection once, whatever it carries', async () => {
    const guard = guardOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'] })] });
    const agent = httpAgent(guard, { keepAlive: true });
    await send(http.request(at('api.example.test', plain, '/v1/a'), { agent }));
    const second = await send(http.request(at('api.example.test', plain, '/v1/b'), { agent }));
    expect(second.req.reusedSocket).toBe(true);
    expect(plain.connections).toBe(1);
    expect(sink.decisions()).toHaveLength(1);
  });

  it('a host no rule lists: refused before any look-up or connection', async () => {
    const guard = guardOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'] })] });
    const error = await failure(http.request(at('evil.example.test', plain), { agent: httpAgent(guard) }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed' });
    expect(plain.connections).toBe(0);
    expect(dns.queries.filter((q) => q.name === 'evil.example.test')).toEqual([]);
    expect(sink.completions()).toEqual([expect.objectContaining({ 'egress.outcome': 'denied' })]);
  });

  it('a name resolving to 127.0.0.1 through the lookup option: private_address unless the rule allows it', async () => {
    const guard = guardOf({
      allow: [
        { name: 'public-only', hosts: ['private.example.test'], schemes: ['http'], ports: EPHEMERAL },
        loopbackRule('internal', ['api.example.test'], { schemes: ['http'] }),
      ],
    });
    const lookup = lookupVia(dns);
    const error = await failure(
      http.request(at('private.example.test', plain), { agent: httpAgent(guard), lookup }),
    );
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'private_address',
      rule: 'public-only',
    });
    expect(plain.connections).toBe(0);
    const ok = await send(http.request(at('api.example.test', plain), { agent: httpAgent(guard), lookup }));
    expect(ok.status).toBe(200);
    expect(plain.connections).toBe(1);
  });

  it.each(['127.0.0.1', '127.1', '0x7f.1', '[::ffff:127.0.0.1]'])(
    'the IP literal %s never reaches a look-up: checked by the agent itself',
    async (host) => {
      const guard = guardOf({ allow: [loopbackRule('names', ['localhost'], { schemes: ['http'] })] });
      const error = await failure(http.request(`http://${host}:${plain.port}/`, { agent: httpAgent(guard) }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed' });
      expect(plain.connections).toBe(0);
    },
  );

  it('an addresses rule lets an IP literal through', async () => {
    const guard = guardOf({
      allow: [{ name: 'loopback', addresses: ['127.0.0.0/8'], schemes: ['http'], ports: EPHEMERAL }],
    });
    const reply = await send(http.request(`http://127.0.0.1:${plain.port}/`, { agent: httpAgent(guard) }));
    expect(reply.status).toBe(200);
  });

  it("the rule's connect timeout applies (look-up included)", async () => {
    const guard = guardOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { schemes: ['http'], timeouts: { connect: '150ms' } }),
      ],
    });
    const error = await failure(
      http.request(at('api.example.test', plain), { agent: httpAgent(guard), lookup: (() => {}) as never }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'connect', limitMs: 150 });
    expect(plain.connections).toBe(0);
  });

  it('connection-level only: methods and paths are not visible to an agent (install() applies them)', async () => {
    const guard = guardOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { schemes: ['http'], methods: ['GET'], paths: ['/v1/**'] }),
      ],
    });
    const reply = await send(
      http.request(at('api.example.test', plain, '/admin'), { agent: httpAgent(guard), method: 'DELETE' }),
    );
    expect(reply.status).toBe(200);
    expect(sink.decisions()[0]!['url.path']).toBeUndefined();
  });

  it('under install(), a request the patch decided is not decided again by the agent', async () => {
    sink = eventSink();
    const guard = install({
      policy: policyOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'] })] }),
      destination: sink,
      lookup: lookupVia(dns),
    });
    const reply = await send(http.request(at('api.example.test', plain), { agent: httpAgent(guard) }));
    expect(reply.status).toBe(200);
    expect(sink.decisions().map((e) => e['egress.hook'])).toEqual(['http']);
  });
});

describe('createHttpsAgent (no install)', () => {
  const rule = (extra: Record<string, unknown> = {}) => ({
    allow: [loopbackRule('api', ['api.example.test'], extra)],
  });

  it("guard.httpsAgent(): trusts the guard's ca and holds the connection to the rule's floor", async () => {
    const guard = guardOf(rule({ tls: { minVersion: 'TLSv1.3' } }));
    const agent = guard.httpsAgent();
    agents.push(agent);
    const reply = await send(https.request(at('api.example.test', secure), { agent }));
    expect(reply.status).toBe(200);
    expect(secure.tlsVersions).toEqual(['TLSv1.3']);
    await settle(20);
    expect(sink.completions()[0]).toMatchObject({
      'egress.outcome': 'ok',
      'tls.protocol.version': 'TLSv1.3',
    });
  });

  it('a server that speaks only TLS 1.1 is refused with EGRESS_ERR_TLS', async () => {
    const guard = guardOf(rule());
    const agent = httpsAgent(guard, { minVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    const error = await failure(https.request(at('api.example.test', legacy), { agent }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version', rule: 'api' });
    expect(legacy.tlsVersions).toEqual([]);
  });

  it('maxVersion below the floor is refused before connecting', async () => {
    const guard = guardOf(rule());
    const error = await failure(
      https.request(at('api.example.test', secure), { agent: httpsAgent(guard, { maxVersion: 'TLSv1.1' }) }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_version' });
    expect(secure.connections).toBe(0);
  });

  it('rejectUnauthorized: false is refused unless the rule says tls.verify: false', async () => {
    const strict = guardOf(rule());
    const error = await failure(
      https.request(at('api.example.test', secure), {
        agent: httpsAgent(strict, { rejectUnauthorized: false }),
      }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled' });
    expect(secure.connections).toBe(0);

    const lax = guardOf(rule({ tls: { verify: false } }));
    const reply = await send(
      https.request(at('api.example.test', secure), {
        agent: httpsAgent(lax, { rejectUnauthorized: false }),
      }),
    );
    expect(reply.status).toBe(200);
    expect(sink.decisions().map((e) => e['egress.hook'])).toEqual([
      'https.agent',
      'https.agent.verify-disabled',
    ]);
  });

  it("a refused TLS option is recorded under the connection's id, as is its completion", async () => {
    // Before: in enforce mode the refusal wrote no decision event (only the completion said tls), and
    // in report mode the finding got a fresh id, linked to nothing.
    const guard = guardOf(rule());
    const error = await failure(
      https.request(at('api.example.test', secure), {
        agent: httpsAgent(guard, { rejectUnauthorized: false }),
      }),
    );
    expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled' });
    const decisions = sink.decisions();
    expect(decisions.map((e) => [e['egress.hook'], e['egress.decision']])).toEqual([
      ['https.agent', 'allowed'],
      ['https.agent.verify-disabled', 'denied'],
    ]);
    const id = decisions[0]!['egress.id'];
    expect(decisions[1]!['egress.id']).toBe(id);
    expect(sink.completions()).toEqual([
      expect.objectContaining({
        'egress.id': id,
        'egress.outcome': 'tls',
        'error.type': 'tls_verify_disabled',
      }),
    ]);
  });

  it('NODE_TLS_REJECT_UNAUTHORIZED=0 counts as turning verification off', async () => {
    // Before: only rejectUnauthorized: false was refused; the process-wide switch went through unverified.
    const guard = guardOf(rule());
    const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const error = await failure(
        https.request(at('api.example.test', secure), { agent: httpsAgent(guard) }),
      );
      expect(error).toMatchObject({ code: 'EGRESS_ERR_TLS', reason: 'tls_verify_disabled' });
    } finally {
      if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
    }
    expect(secure.connections).toBe(0);
  });

  it('report mode blocks nothing: disabled verification and a denied host are logged as reported', async () => {
    const guard = guardOf({ mode: 'report', allow: [loopbackRule('api', ['api.example.test'])] });
    const agent = httpsAgent(guard, { rejectUnauthorized: false });
    const reply = await send(https.request(at('evil.example.test', secure), { agent }));
    expect(reply.status).toBe(200);
    expect(sink.decisions().map((e) => [e['egress.hook'], e['egress.decision'], e['egress.reason']])).toEqual(
      [
        ['https.agent', 'reported', 'host_not_allowed'],
        ['https.agent.verify-disabled', 'reported', 'tls_verify_disabled'],
        // The loopback address it dialled: a rule allowing the host would refuse it (private_address).
        ['https.agent.dial', 'reported', 'host_not_allowed'],
      ],
    );
    const [connection, finding, dial] = sink.decisions();
    expect(dial!['egress.id']).toBe(connection!['egress.id']);
    expect(finding!['egress.id']).toBe(connection!['egress.id']);
  });

  it('an https connection to a name resolving to a private address is refused', async () => {
    const guard = guardOf({
      allow: [{ name: 'public-only', hosts: ['private.example.test'], ports: EPHEMERAL }],
    });
    const error = await failure(
      https.request(at('private.example.test', secure), { agent: httpsAgent(guard) }),
    );
    expect(error).toMatchObject({ reason: 'private_address' });
    expect(secure.connections).toBe(0);
  });
});
