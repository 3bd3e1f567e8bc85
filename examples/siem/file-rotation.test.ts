import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRotatingFileEmitter } from './file-rotation.js';
import { emitSamples, sampleDecision } from './sample-events.js';

const dir = mkdtempSync(join(tmpdir(), 'egress-siem-roll-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function readAll(sub: string): { files: string[]; lines: Record<string, unknown>[] } {
  const files = readdirSync(join(dir, sub)).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
  const lines = files.flatMap((f) =>
    readFileSync(join(dir, sub, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  );
  return { files, lines };
}

describe('recipe: rotated files (pino-roll)', () => {
  it('rotates by size and loses nothing: every event in exactly one file, in order', async () => {
    const { events, ready, close } = createRotatingFileEmitter({
      file: join(dir, 'json', 'events'),
      size: '64k',
      keep: 100,
    });
    await ready;
    const n = 2000;
    // pino-roll rotates between writes, after a drain: a service's events arrive spread over time.
    for (let i = 0; i < n; i++) {
      events.emit(sampleDecision(`roll-${i}`, `https://api.stripe.com/v1/charges/${i}`, 'POST'));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 10));
    }
    await close();
    const { files, lines } = readAll('json');
    expect(files.length).toBeGreaterThan(3);
    expect(files.every((f) => /^events\.\d+\.log$/.test(f))).toBe(true);
    expect(lines.map((l) => l['egress.id'])).toEqual(Array.from({ length: n }, (_, i) => `roll-${i}`));
    expect(lines[0]).toMatchObject({
      level: 30,
      'event.name': 'egress.decision',
      'egress.decision': 'allowed',
    });
    expect(events.stats()).toMatchObject({ emitted: n, dropped: 0 });
  });

  it('keeps only the newest files', async () => {
    const { events, ready, close } = createRotatingFileEmitter({
      file: join(dir, 'pruned', 'events'),
      size: '16k',
      keep: 2,
    });
    await ready;
    for (let i = 0; i < 1000; i++) {
      events.emit(sampleDecision(`p-${i}`, 'https://api.stripe.com/v1/charges', 'POST'));
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    await close();
    const { files, lines } = readAll('pruned');
    // Two rotated files and the active one (the last clean-up may still be running when it closes).
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(files.length).toBeLessThanOrEqual(4);
    expect(Number(files[0]!.split('.')[1])).toBeGreaterThan(2);
    expect(lines.at(-1)?.['egress.id']).toBe('p-999');
    expect(lines.some((l) => l['egress.id'] === 'p-0')).toBe(false);
  });

  it('writes OCSF lines with format: ocsf', async () => {
    const { events, close } = createRotatingFileEmitter({
      file: join(dir, 'ocsf', 'events'),
      format: 'ocsf',
    });
    emitSamples(events);
    await close();
    const { lines } = readAll('ocsf');
    expect(lines.map((l) => [l.class_uid, l.activity_name, l.disposition])).toEqual([
      [0, 'egress.policy.loaded', undefined],
      [4002, 'Post', 'Allowed'],
      [4002, 'Post', 'Blocked'],
    ]);
  });
});
