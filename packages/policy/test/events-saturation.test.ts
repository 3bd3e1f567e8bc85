import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createEventEmitter, type DecisionEvent } from '../src/index.js';

// A service at its guarded maximum writes events without pause, its event loop busy with requests:
// the destination gets one round trip per turn of that loop, not an idle loop's thousands.

const dir = mkdtempSync(join(tmpdir(), 'egress-saturation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HASH = 'f'.repeat(64);
const decision = (i: number): DecisionEvent => ({
  'event.name': 'egress.decision',
  'egress.schema': 1,
  'egress.source': 'sdk',
  'service.name': 'payments',
  'egress.id': `sat-${i}`,
  'egress.decision': 'allowed',
  'egress.reason': 'allowed',
  'egress.rule': 'loopback',
  'egress.mode': 'enforce',
  'egress.policy.hash': HASH,
  'egress.hook': 'undici',
  'url.scheme': 'http',
  'url.full': `http://127.0.0.1:8080/v1/items/${i}`,
  'url.path': `/v1/items/${i}`,
  'server.address': '127.0.0.1',
  'server.port': 8080,
  'http.request.method': 'GET',
});

/** Keeps the event loop busy for `ms`, as request handling does in a saturated service. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

const turn = () => new Promise((r) => setImmediate(r));

interface Parsed {
  ids: number[];
  reports: number[];
}

/** The decision ids (numbers, in file order) and the counts of the loss reports in `text`. */
function parse(text: string): Parsed {
  const ids: number[] = [];
  const reports: number[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const event = JSON.parse(line);
    if (event['event.name'] === 'egress.events.dropped') reports.push(event['egress.events.dropped']);
    else ids.push(Number(String(event['egress.id']).slice(4)));
  }
  return { ids, reports };
}

const increasing = (ids: number[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]!);

describe('audit events under saturation', () => {
  it('an asynchronous file destination keeps up with a busy service: every event on disk, in order, none dropped', async () => {
    const file = join(dir, 'sustained.jsonl');
    const destination = pino.destination({ dest: file, sync: false });
    await new Promise((r) => destination.once('ready', r));
    const bound = 8 * 1024 * 1024;
    const events = createEventEmitter({ destination, maxBufferedBytes: bound });
    // 100 turns of 1000 events (~50 MB in all, six times the bound), each turn 2 ms of other work.
    const turns = 100;
    const perTurn = 1000;
    let peak = 0;
    for (let t = 0; t < turns; t++) {
      for (let i = t * perTurn; i < (t + 1) * perTurn; i++) events.emit(decision(i));
      peak = Math.max(peak, events.stats().bufferedBytes);
      busy(2);
      await turn();
    }
    await events.flush(30_000);
    const n = turns * perTurn;
    expect(events.stats()).toMatchObject({
      emitted: n,
      written: n,
      dropped: 0,
      state: 'ok',
      bufferedBytes: 0,
    });
    const { ids, reports } = parse(readFileSync(file, 'utf8'));
    expect(reports).toEqual([]);
    expect(ids).toHaveLength(n);
    expect(increasing(ids)).toBe(true);
    expect(peak).toBeLessThanOrEqual(bound);
    destination.end();
  });

  it('a stream slower than the service: the bound counts what the stream holds now, and every event is written or counted', async () => {
    // A collector that takes 16 KiB every 5 ms (3 MiB/s), one line per write.
    const received: string[] = [];
    const waiting: Array<() => void> = [];
    let credit = 0;
    const collector = setInterval(() => {
      credit = 16 * 1024;
      while (credit > 0 && waiting.length) waiting.shift()!();
    }, 5);
    const dest = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        received.push(chunk.toString());
        credit -= chunk.length;
        if (credit > 0) callback();
        else waiting.push(() => callback());
      },
    });
    const bound = 1024 * 1024;
    const events = createEventEmitter({ destination: dest, maxBufferedBytes: bound });
    const n = 40_000;
    for (let t = 0; t < n; t += 1000) {
      for (let i = t; i < t + 1000; i++) events.emit(decision(i));
      const s = events.stats();
      // Exactly what the stream holds, not an estimate of what went in since it last said "full".
      expect(s.bufferedBytes).toBe(dest.writableLength);
      expect(s.bufferedBytes).toBeLessThanOrEqual(bound);
      busy(2);
      await new Promise((r) => setTimeout(r, 5));
    }
    const stalled = events.stats();
    expect(stalled.dropped).toBeGreaterThan(0);
    // Let it catch up: the loss still unreported is reported when the stream drains.
    await events.flush(20_000);
    for (let i = 0; i < 200 && dest.writableLength > 0; i++) await new Promise((r) => setTimeout(r, 10));
    clearInterval(collector);
    const { ids, reports } = parse(received.join(''));
    const stats = events.stats();
    expect(received).toHaveLength(stats.written);
    expect(ids.length + stats.dropped).toBe(n);
    expect(reports.reduce((a, b) => a + b, 0)).toBe(stats.dropped);
    expect(increasing(ids)).toBe(true);
  });

  it.skipIf(process.platform === 'win32')(
    'a pipe whose reader falls behind: memory held stays within the bound, the loss is counted and reported, nothing unaccounted',
    async () => {
      const fifo = join(dir, 'slow.fifo');
      execFileSync('mkfifo', [fifo]);
      // The reader: 64 KiB every 10 ms (6.4 MB/s) while the service runs, then as fast as it can.
      const reader = createReadStream(fifo);
      const chunks: Buffer[] = [];
      let throttled = true;
      reader.on('data', (c) => {
        chunks.push(Buffer.from(c));
        if (throttled) {
          reader.pause();
          setTimeout(() => reader.resume(), 10);
        }
      });
      const ended = new Promise<void>((r) => reader.on('end', () => r()));
      const destination = pino.destination({ dest: fifo, sync: false });
      await new Promise((r) => destination.once('ready', r));
      const bound = 2 * 1024 * 1024;
      const events = createEventEmitter({ destination, maxBufferedBytes: bound });
      const n = 60_000;
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 1);
      let sawRecoveryWhileBehind = false;
      for (let t = 0; t < n; t += 1000) {
        for (let i = t; i < t + 1000; i++) events.emit(decision(i));
        const s = events.stats();
        expect(s.bufferedBytes).toBeLessThanOrEqual(bound);
        // It counts what sonic-boom holds (in flight included) as well as its own queue.
        expect(s.bufferedBytes).toBeGreaterThanOrEqual((destination as unknown as { _len: number })._len);
        if (s.dropped > 0 && s.bufferedBytes <= bound / 2) sawRecoveryWhileBehind = true;
        busy(1);
        await new Promise((r) => setTimeout(r, 4));
      }
      clearInterval(ticker);
      // The loop kept turning: backpressure never blocked it.
      expect(ticks).toBeGreaterThan(20);
      const behind = events.stats();
      expect(behind.dropped).toBeGreaterThan(0);
      expect(behind.written + behind.dropped).toBeGreaterThanOrEqual(n);
      throttled = false;
      reader.resume();
      await events.flush(20_000);
      destination.end();
      await ended;
      const { ids, reports } = parse(Buffer.concat(chunks).toString());
      const stats = events.stats();
      expect(stats.dropped).toBe(behind.dropped);
      expect(ids.length + stats.dropped).toBe(n);
      expect(ids.length + reports.length).toBe(stats.written);
      expect(reports.reduce((a, b) => a + b, 0)).toBe(stats.dropped);
      expect(increasing(ids)).toBe(true);
      // Dropping stops at half the bound, so loss is reported while the reader is still behind.
      expect(sawRecoveryWhileBehind || reports.length > 1).toBe(true);
    },
  );

  it('a sonic-boom with its own maxLength is given writes it can take: a burst is kept whole', async () => {
    const file = join(dir, 'max-length.jsonl');
    const destination = pino.destination({ dest: file, sync: false, maxLength: 16 * 1024 });
    await new Promise((r) => destination.once('ready', r));
    const events = createEventEmitter({ destination });
    for (let i = 0; i < 5000; i++) events.emit(decision(i));
    await events.flush(10_000);
    expect(events.stats()).toMatchObject({ emitted: 5000, written: 5000, dropped: 0 });
    const { ids } = parse(readFileSync(file, 'utf8'));
    expect(ids).toHaveLength(5000);
    expect(increasing(ids)).toBe(true);
    destination.end();
  });

  it('on a normal exit, events still waiting in the sink reach a pino.destination file (pino flushes it at exit)', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const pinoPath = createRequire(import.meta.url).resolve('pino');
    const child = join(dir, 'exit-child.mts');
    writeFileSync(
      child,
      `import pino from ${JSON.stringify(pathToFileURL(pinoPath).href)};
import { createEventEmitter } from ${JSON.stringify(pathToFileURL(join(root, 'packages/policy/src/index.ts')).href)};
const [file, n] = process.argv.slice(2);
const destination = pino.destination({ dest: file, sync: false });
await new Promise((resolve) => destination.once('ready', resolve));
const events = createEventEmitter({ destination });
for (let i = 0; i < Number(n); i++) {
  events.emit({ 'event.name': 'egress.decision', 'egress.schema': 1, 'egress.source': 'sdk', 'egress.id': 'sat-' + i,
    'egress.decision': 'allowed', 'egress.reason': 'allowed', 'egress.mode': 'enforce', 'egress.policy.hash': '${HASH}',
    'egress.hook': 'fetch', 'url.scheme': 'https', 'server.address': 'api.example.com', 'server.port': 443 });
}
process.exit(0);
`,
    );
    const file = join(dir, 'exit.jsonl');
    const n = 20_000;
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, file, String(n)], {
        cwd: root,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(0);
    const { ids } = parse(readFileSync(file, 'utf8'));
    expect(ids).toHaveLength(n);
    expect(increasing(ids)).toBe(true);
  });
});
