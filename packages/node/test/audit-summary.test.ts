/**
 * `audit: { allowed: 'summary' }`: allowed requests that end normally are counted per rule, origin and
 * outcome in one summary event per interval instead of two lines each; every denial stays one decision
 * and one completion event, and a request that is not summarised keeps both of its lines, in order.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../src/index.js';
import {
  closedPort,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  startDnsServer,
  startHttpServer,
  type TestDnsServer,
} from './fixtures/harness.js';

let dns: TestDnsServer;
let server: RecordingServer;
let sink: EventSink;

beforeAll(async () => {
  const a = [{ type: 'A' as const, data: '127.0.0.1' }];
  dns = await startDnsServer({ 'api.example.test': a, 'unlisted.example.test': a });
  server = await startHttpServer();
});
afterAll(async () => {
  await server.close();
  await dns.close();
});
afterEach(async () => {
  await uninstall();
});

function installSummary() {
  sink = eventSink();
  return install({
    policy: policyOf({ allow: [loopbackRule('api', ['api.example.test'], { schemes: ['http'] })] }),
    lookup: lookupVia(dns),
    destination: sink,
    audit: { allowed: 'summary', intervalMs: 60_000 },
  });
}

describe("audit: { allowed: 'summary' }", () => {
  it('N allowed requests: no per-request lines, one summary with count N when the interval is written', async () => {
    installSummary();
    for (let i = 0; i < 25; i++)
      await request(`http://api.example.test:${server.port}/v1/x`).then((r) => r.body.text());
    expect(sink.decisions()).toEqual([]);
    expect(sink.completions()).toEqual([]);
    await uninstall(); // closing the guard writes the open interval
    const summaries = sink.named('egress.summary');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ 'egress.rule': 'api', 'server.address': 'api.example.test' });
    expect(JSON.stringify(summaries[0])).toContain('25');
  });

  it('a denial is one decision and one completion event, at once', async () => {
    installSummary();
    await rejection(request(`http://unlisted.example.test:${server.port}/`));
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['denied']);
    expect(sink.completions().map((e) => e['egress.outcome'])).toEqual(['denied']);
  });

  it('an allowed request that fails with a connection error is summarised as outcome error', async () => {
    installSummary();
    // Nothing listens on this port of the allowed host.
    const port = await closedPort();
    const closed = await rejection(request(`http://api.example.test:${port}/`));
    expect(closed).toBeTruthy();
    await uninstall();
    const outcomes = sink.named('egress.summary').map((e) => e['egress.outcome']);
    expect(outcomes).toContain('error');
    expect(sink.decisions()).toEqual([]);
  });
});
