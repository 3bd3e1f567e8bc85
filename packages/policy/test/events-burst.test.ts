import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createEventEmitter, createPolicy, type DecisionEvent } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'egress-burst-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const policy = createPolicy({
  version: 1,
  allow: [{ name: 'api', hosts: ['api.example.com'], methods: ['GET', 'POST'] }],
});

/** The decision event the SDK writes for a request, built from a real decision. */
function decide(i: number): DecisionEvent {
  const host = i % 10 === 0 ? 'evil.example' : 'api.example.com';
  const d = policy.decide({ scheme: 'https', host, port: 443, method: 'POST', path: `/v1/items/${i}` });
  return {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.id': `burst-${i}`,
    'egress.decision': d.result,
    'egress.reason': d.reason,
    'egress.rule': d.rule,
    'egress.mode': d.mode,
    'egress.policy.hash': d.policyHash,
    'egress.hook': 'fetch',
    'url.scheme': 'https',
    'url.path': `/v1/items/${i}`,
    'server.address': d.host,
    'server.port': 443,
    'http.request.method': 'POST',
    ...(d.result !== 'allowed' ? { 'egress.message': d.message } : {}),
  };
}

describe('a burst of 50,000 decisions', () => {
  it('reaches an asynchronous pino file destination whole: exactly 50,000 lines, none dropped', async () => {
    const file = join(dir, 'burst.jsonl');
    const destination = pino.destination({ dest: file, sync: false });
    await new Promise((r) => destination.once('ready', r));
    const events = createEventEmitter({ destination });
    const n = 50_000;
    const started = performance.now();
    for (let i = 0; i < n; i++) events.emit(decide(i));
    const emitMs = performance.now() - started;
    await events.flush(30_000);
    const totalMs = performance.now() - started;
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const ids = new Set(lines.map((l) => JSON.parse(l)['egress.id']));
    expect(lines).toHaveLength(n);
    expect(ids.size).toBe(n);
    expect(lines.filter((l) => l.includes('"egress.decision":"denied"'))).toHaveLength(n / 10);
    expect(events.stats()).toMatchObject({ emitted: n, written: n, dropped: 0 });
    console.log(
      `burst: ${n} decisions emitted in ${emitMs.toFixed(0)} ms (${Math.round(n / (emitMs / 1000))}/s), on disk after ${totalMs.toFixed(0)} ms`,
    );
    destination.end();
  });
});
