/**
 * The request pipeline: every limit fires on time on every client (undici's coarse timers used to fire a
 * 300 ms limit after about a second), every decision of a request shares its id, denials at connection
 * level are recorded as denials, and every decision and completion is published on diagnostics_channel.
 */
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../src/index.js';
import {
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  routes,
  startDnsServer,
  startHttpServer,
  type TestDnsServer,
} from './fixtures/harness.js';

let dns: TestDnsServer;
let server: RecordingServer;
let sink: EventSink;

beforeAll(async () => {
  const a = [{ type: 'A' as const, data: '127.0.0.1' }];
  dns = await startDnsServer({ 'api.example.test': a, 'other.example.test': a });
  server = await startHttpServer({
    handler: routes({
      '/v1/slow-headers': () => {}, // never answers
      '/v1/stalled-body': (_req, res) => {
        res.writeHead(200);
        res.write('first');
      },
    }),
  });
});
afterAll(async () => {
  await server.close();
  await dns.close();
});
afterEach(async () => {
  await uninstall();
});

function installWith(rule: Record<string, unknown>, extra: Record<string, unknown>[] = []) {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'], ...rule }), ...extra],
    }),
    lookup: lookupVia(dns),
    destination: sink,
  });
}

const url = (path: string) => `http://api.example.test:${server.port}${path}`;

/** Time from the request to its failure, on a warm keep-alive connection (the limit alone is measured). */
async function elapsedUntilFailure(
  send: () => Promise<unknown>,
  warm?: () => Promise<unknown>,
): Promise<{ ms: number; error: any }> {
  await warm?.();
  const started = performance.now();
  const error = await rejection(send());
  return { ms: performance.now() - started, error };
}

describe('limits fire on time on undici and fetch (within 50 ms of their value)', () => {
  const clients = {
    'undici.request': (path: string) => request(url(path)).then((r) => r.body.text()),
    fetch: (path: string) => fetch(url(path)).then((r) => r.text()),
  };
  for (const [name, send] of Object.entries(clients)) {
    it(`${name}: timeouts.response 300ms`, async () => {
      installWith({ timeouts: { response: '300ms' } });
      const { ms, error } = await elapsedUntilFailure(
        () => send('/v1/slow-headers'),
        () => send('/v1/ok'),
      );
      const cause = error.code === 'EGRESS_ERR_TIMEOUT' ? error : error.cause;
      expect(cause).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'response', limitMs: 300 });
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(350);
    });

    it(`${name}: timeouts.idle 300ms`, async () => {
      installWith({ timeouts: { idle: '300ms' } });
      const { ms, error } = await elapsedUntilFailure(
        () => send('/v1/stalled-body'),
        () => send('/v1/ok'),
      );
      const cause = error.code === 'EGRESS_ERR_TIMEOUT' ? error : error.cause;
      expect(cause).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'idle', limitMs: 300 });
      expect(ms).toBeLessThan(350);
    });

    it(`${name}: timeouts.connect 300ms (a resolver that never answers)`, async () => {
      sink = eventSink();
      install({
        policy: policyOf({
          allow: [
            loopbackRule('api', ['api.example.test'], { schemes: ['http'], timeouts: { connect: '300ms' } }),
          ],
        }),
        lookup: (() => {}) as never,
        destination: sink,
      });
      const { ms, error } = await elapsedUntilFailure(() => send('/v1/x'));
      const cause = error.code === 'EGRESS_ERR_TIMEOUT' ? error : error.cause;
      expect(cause).toMatchObject({ code: 'EGRESS_ERR_TIMEOUT', timeout: 'connect', limitMs: 300 });
      expect(ms).toBeLessThan(350);
    });
  }
});

describe('every event of a request shares its id', () => {
  it('a request through a forward proxy: the proxy hop and the target under one id, then the completion', async () => {
    installWith({}, [loopbackRule('proxy', ['other.example.test'], { schemes: ['http'] })]);
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: 'other.example.test',
          port: server.port,
          path: `http://api.example.test:${server.port}/v1/x`,
        },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end();
    });
    const decisions = sink.decisions();
    expect(decisions.map((e) => e['egress.hook'])).toEqual(['http', 'http.proxy']);
    const ids = new Set([...decisions, ...sink.completions()].map((e) => e['egress.id']));
    expect(ids.size).toBe(1);
  });
});

describe('connection-level denials are recorded as denials', () => {
  it('a TLS connection to a host allowed for https and denied for wss is denied (as at the edge)', async () => {
    sink = eventSink();
    install({
      policy: policyOf({
        allow: [loopbackRule('api', ['api.example.test'], { schemes: ['https'] })],
        deny: [{ name: 'no-websockets', hosts: ['api.example.test'], schemes: ['wss'] }],
      }),
      lookup: lookupVia(dns),
      destination: sink,
    });
    const before = server.connections;
    const error = await rejection(request(`https://api.example.test:${server.port}/v1/x`));
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'explicit_deny',
      rule: 'no-websockets',
    });
    expect(server.connections - before).toBe(0);
    expect(sink.decisions().map((e) => [e['egress.hook'], e['egress.decision']])).toEqual([
      ['undici.global', 'allowed'],
      ['undici.connect', 'denied'],
    ]);
    expect(sink.completions().map((e) => e['egress.outcome'])).toEqual(['denied']);
  });
});

describe('a fetch refused at dial time is recorded as a denial', () => {
  it('the name resolves to a private address the rule does not allow: completion outcome denied', async () => {
    sink = eventSink();
    install({
      // The rule allows the name, not the loopback address it resolves to.
      policy: policyOf({
        allow: [{ name: 'api', hosts: ['api.example.test'], schemes: ['http'], ports: EPHEMERAL }],
      }),
      lookup: lookupVia(dns),
      destination: sink,
    });
    const before = server.connections;
    const error = await rejection(fetch(url('/v1/x')));
    expect(error.cause).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'private_address' });
    expect(server.connections - before).toBe(0);
    expect(sink.decisions().map((e) => e['egress.reason'])).toEqual(['allowed', 'private_address']);
    expect(sink.completions().map((e) => e['egress.outcome'])).toEqual(['denied']);
  });
});

describe('node:https decides the connection as the edge does', () => {
  it('https.request to a host allowed for https and denied for wss: denied, zero connections', async () => {
    sink = eventSink();
    install({
      policy: policyOf({
        allow: [loopbackRule('api', ['api.example.test'], { schemes: ['https'] })],
        deny: [{ name: 'no-websockets', hosts: ['api.example.test'], schemes: ['wss'] }],
      }),
      lookup: lookupVia(dns),
      destination: sink,
    });
    const before = server.connections;
    const error = await new Promise<Error>((resolve) => {
      https.get(`https://api.example.test:${server.port}/v1/x`).on('error', resolve);
    });
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'explicit_deny',
      rule: 'no-websockets',
    });
    expect(server.connections - before).toBe(0);
    const decisions = sink.decisions();
    expect(decisions.map((e) => [e['egress.hook'], e['egress.decision']])).toEqual([
      ['https', 'allowed'],
      ['https.connect', 'denied'],
    ]);
    expect(new Set(decisions.map((e) => e['egress.id'])).size).toBe(1);
  });
});

describe('diagnostics_channel', () => {
  it('publishes every decision and completion on egress-guard:decision and egress-guard:completion', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const listener = (message: unknown) => seen.push(message as Record<string, unknown>);
    diagnostics.subscribe('egress-guard:decision', listener);
    diagnostics.subscribe('egress-guard:completion', listener);
    try {
      installWith({});
      await request(url('/v1/x')).then((r) => r.body.text());
      await rejection(request(`http://unlisted.example.test:${server.port}/`));
    } finally {
      diagnostics.unsubscribe('egress-guard:decision', listener);
      diagnostics.unsubscribe('egress-guard:completion', listener);
    }
    expect(seen.map((e) => [e['event.name'], e['egress.decision'] ?? e['egress.outcome']])).toEqual([
      ['egress.decision', 'allowed'],
      ['egress.completion', 'ok'],
      ['egress.decision', 'denied'],
      ['egress.completion', 'denied'],
    ]);
    expect(seen.length).toBe(sink.decisions().length + sink.completions().length);
  });
});
