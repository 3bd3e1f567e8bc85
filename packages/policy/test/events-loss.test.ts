import { EventEmitter as NodeEventEmitter, once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventEmitter, type DecisionEvent, type DroppedEvent } from '../src/index.js';

const HASH = 'd'.repeat(64);
const decision = (i: number): DecisionEvent => ({
  'event.name': 'egress.decision',
  'egress.schema': 1,
  'egress.source': 'edge',
  'service.name': 'payments',
  'egress.id': `loss-${i}`,
  'egress.decision': 'allowed',
  'egress.reason': 'allowed',
  'egress.rule': 'api',
  'egress.mode': 'enforce',
  'egress.policy.hash': HASH,
  'egress.hook': 'edge.explicit',
  'url.scheme': 'tls',
  'server.address': 'api.example.com',
  'server.port': 443,
});

/** A destination that accepts nothing more after the first line and never drains (a stalled collector). */
class StalledDestination extends NodeEventEmitter {
  readonly lines: string[] = [];
  write(line: string): boolean {
    this.lines.push(line);
    return false;
  }
}

const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
process.on('warning', onWarning);
afterEach(() => {
  warnings.length = 0;
});

describe('a sink that stalls or fails', () => {
  it('never blocks: beyond the bound events are dropped, counted, and reported once it drains', async () => {
    const dest = new StalledDestination();
    const events = createEventEmitter({ destination: dest, maxBufferedBytes: 64 * 1024 });
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) events.emit(decision(i));
    const elapsed = performance.now() - started;
    const stats = events.stats();
    expect(stats.emitted).toBe(10_000);
    expect(stats.state).toBe('congested');
    expect(stats.dropped).toBeGreaterThan(9000);
    expect(stats.written + stats.dropped).toBe(10_000);
    expect(dest.lines).toHaveLength(stats.written);
    expect(stats.bufferedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(elapsed).toBeLessThan(2000);
    await new Promise((r) => setImmediate(r));
    expect(
      warnings.filter((w) => (w as Error & { code?: string }).code === 'EGRESS_EVENTS_DROPPED'),
    ).toHaveLength(1);

    // The collector catches up: the first line after it is the loss report, then events flow again.
    dest.lines.length = 0;
    dest.emit('drain');
    events.emit(decision(10_000));
    const report = JSON.parse(dest.lines[0]!) as DroppedEvent;
    expect(report).toMatchObject({
      'event.name': 'egress.events.dropped',
      'egress.events.dropped': stats.dropped,
      'egress.events.dropped_total': stats.dropped,
      'egress.events.drop_reason': 'backpressure',
      'egress.source': 'edge',
      'service.name': 'payments',
      level: 40,
    });
    expect(Date.parse(report['egress.events.since'])).toBeLessThanOrEqual(Date.now());
    expect(JSON.parse(dest.lines[1]!)['egress.id']).toBe('loss-10000');
    expect(events.stats()).toMatchObject({ state: 'congested', dropped: stats.dropped });
  });

  it('emitters sharing a destination share its bound and counts, and one of them reports the loss', () => {
    const dest = new StalledDestination();
    const a = createEventEmitter({ destination: dest, maxBufferedBytes: 16 * 1024 });
    const b = createEventEmitter({ destination: dest });
    expect(dest.listenerCount('drain')).toBe(1);
    for (let i = 0; i < 500; i++) (i % 2 ? a : b).emit(decision(i));
    const dropped = a.stats().dropped;
    expect(dropped).toBeGreaterThan(0);
    expect(b.stats()).toMatchObject({ dropped, written: a.stats().written });
    expect(a.stats().written + dropped).toBe(500);
    dest.lines.length = 0;
    dest.emit('drain');
    expect(dest.lines.filter((l) => l.includes('egress.events.dropped'))).toHaveLength(1);
  });

  it('survives a destination that emits error: no crash, later events dropped and counted', async () => {
    const dest = new Writable({
      write(_chunk, _enc, cb) {
        cb(new Error('disk on fire'));
      },
    });
    const events = createEventEmitter({ destination: dest });
    events.emit(decision(0));
    await new Promise((r) => setImmediate(r));
    expect(events.stats().state).toBe('failed');
    for (let i = 1; i <= 100; i++) events.emit(decision(i));
    expect(events.stats()).toMatchObject({ emitted: 101, written: 1, dropped: 100, state: 'failed' });
    await events.flush(); // resolves at once for a failed sink
    await new Promise((r) => setImmediate(r));
    expect(warnings.some((w) => /sink_error/.test(w.message))).toBe(true);
  });

  it('survives a destination whose write() throws', () => {
    const events = createEventEmitter({
      destination: {
        write() {
          throw new Error('EBADF');
        },
      },
    });
    expect(() => {
      for (let i = 0; i < 10; i++) events.emit(decision(i));
    }).not.toThrow();
    expect(events.stats()).toMatchObject({ emitted: 10, written: 0, dropped: 10, state: 'failed' });
  });

  it('a real stalled TCP collector: the service keeps running, nothing unaccounted, the count arrives after', async () => {
    // The collector accepts the connection and stops reading, as a hung log shipper does.
    let collector!: net.Socket;
    const server = net.createServer((socket) => {
      collector = socket;
      socket.pause();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    for (let i = 0; i < 1000 && !collector; i++) await new Promise((r) => setTimeout(r, 5));
    expect(collector).toBeDefined();

    const events = createEventEmitter({ destination: socket, maxBufferedBytes: 1024 * 1024 });
    const total = 50_000;
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    // Emit in slices so the event loop runs in between, as in a service: the loop must keep turning.
    for (let i = 0; i < total; i += 1000) {
      for (let j = i; j < i + 1000; j++) events.emit(decision(j));
      await new Promise((r) => setTimeout(r, 2));
    }
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(10);
    const stalled = events.stats();
    expect(stalled.dropped).toBeGreaterThan(0);
    expect(stalled.written + stalled.dropped).toBe(total);

    // The collector resumes: it receives every line written, then the loss report.
    const received: string[] = [];
    let partial = '';
    collector.setEncoding('utf8');
    collector.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      received.push(...parts);
    });
    collector.resume();
    const deadline = Date.now() + 10_000;
    while (received.length < stalled.written + 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const reports = received
      .map((l) => JSON.parse(l))
      .filter((e) => e['event.name'] === 'egress.events.dropped');
    expect(received.length - reports.length).toBe(stalled.written);
    expect(reports).toHaveLength(1);
    expect(reports[0]['egress.events.dropped']).toBe(stalled.dropped);
    expect(events.stats().state).toBe('ok');
    socket.destroy();
    collector.destroy();
    await new Promise((r) => server.close(r));
  });
});
