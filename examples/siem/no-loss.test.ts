/**
 * Nothing lost between the SDK and the sink: 50,000 decisions made by the real SDK guard (`check()`, the
 * call every SDK hook makes for every request), through the real emitter, into a real pino destination
 * file and through the rotating-file recipe's transport. No HTTP request is sent: this measures the
 * audit path, not the network.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGuard } from '@egress-guard/node';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createRotatingFileEmitter } from './file-rotation.js';
import { SAMPLE_POLICY, sampleDecision } from './sample-events.js';

const dir = mkdtempSync(join(tmpdir(), 'egress-siem-burst-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const N = 50_000;

function countDecisions(text: string): { decisions: number; ids: Set<string>; other: number } {
  const ids = new Set<string>();
  let decisions = 0;
  let other = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line);
    if (e['event.name'] === 'egress.decision') {
      decisions++;
      ids.add(e['egress.id']);
    } else other++;
  }
  return { decisions, ids, other };
}

describe(`a burst of ${N.toLocaleString('en-US')} SDK decisions`, () => {
  it('reaches an asynchronous pino.destination file whole: exactly 50,000 decision events', async () => {
    const file = join(dir, 'sdk.jsonl');
    const destination = pino.destination({ dest: file, sync: false });
    await new Promise((r) => destination.once('ready', r));
    const guard = createGuard({ policy: SAMPLE_POLICY, destination, watch: false });
    const started = performance.now();
    for (let i = 0; i < N; i++) {
      const host = i % 10 === 0 ? 'pastebin.com' : 'api.stripe.com';
      guard.check({ scheme: 'https', host, port: 443, method: 'POST', path: `/v1/charges/${i}` }, 'fetch', {
        url: `https://${host}/v1/charges/${i}?token=secret`,
      });
    }
    const checkMs = performance.now() - started;
    await guard.close(); // flushes the emitter
    const { decisions, ids, other } = countDecisions(readFileSync(file, 'utf8'));
    expect(decisions).toBe(N);
    expect(ids.size).toBe(N);
    expect(other).toBe(1); // egress.policy.loaded
    expect(guard.events.stats()).toMatchObject({ emitted: N + 1, dropped: 0 });
    expect(readFileSync(file, 'utf8')).not.toContain('token=secret');
    console.log(
      `SDK burst: ${N} guard.check() calls with their events in ${checkMs.toFixed(0)} ms (${Math.round(N / (checkMs / 1000))}/s)`,
    );
    destination.end();
  });

  it('reaches rotated files through the pino-roll transport whole', async () => {
    const { events, ready, close } = createRotatingFileEmitter({
      file: join(dir, 'roll', 'events'),
      size: '4m',
      keep: 1000,
    });
    await ready;
    const started = performance.now();
    for (let i = 0; i < N; i++)
      events.emit(sampleDecision(`r-${i}`, `https://api.stripe.com/v1/charges/${i}`, 'POST'));
    const emitMs = performance.now() - started;
    await close();
    const text = readdirSync(join(dir, 'roll'))
      .map((f) => readFileSync(join(dir, 'roll', f), 'utf8'))
      .join('');
    const { decisions, ids } = countDecisions(text);
    expect(decisions).toBe(N);
    expect(ids.size).toBe(N);
    expect(events.stats()).toMatchObject({ emitted: N, dropped: 0 });
    console.log(
      `transport burst: ${N} events emitted in ${emitMs.toFixed(0)} ms (${Math.round(N / (emitMs / 1000))}/s)`,
    );
  }, 60_000);
});
