import type { DestinationStream } from 'pino';
import type { DropReason } from './event-types.js';

/** Default bound on the event bytes held in memory for a destination that is behind: 64 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** State of the destination as the emitter sees it. */
export type SinkState = 'ok' | 'congested' | 'failed';

/** Counters of a sink. */
export interface SinkStats {
  /**
   * Lines accepted for the destination: handed to it, or waiting in the sink's queue to be handed to it
   * in order. Lines that were accepted and then lost (the destination failed, or dropped them itself)
   * are taken off again and counted in `dropped`, so `written + dropped` is everything given to the sink.
   */
  written: number;
  /** Events dropped: over the bound, after the destination failed, or dropped by the destination itself. */
  dropped: number;
  /**
   * Event bytes held in memory now, waiting to be written: the sink's queue plus what the destination
   * says it holds (sonic-boom's buffer, a stream's `writableLength`). For a destination that says
   * nothing about its buffer, the bytes written to it since it last signalled backpressure.
   */
  bufferedBytes: number;
  state: SinkState;
}

/** Drops not yet reported by an `egress.events.dropped` event. */
export interface UnreportedDrops {
  count: number;
  total: number;
  reason: DropReason;
  /** Epoch milliseconds of the first drop in this run of losses. */
  since: number;
}

/** What the sink may use of a destination: pino's `write`, and whatever else it has. */
type Destination = DestinationStream & {
  on?: (event: string, listener: (...args: any[]) => void) => unknown;
  once?: (event: string, listener: (...args: any[]) => void) => unknown;
  off?: (event: string, listener: (...args: any[]) => void) => unknown;
  flush?: (cb?: (err?: Error | null) => void) => void;
  flushSync?: () => void;
  writableNeedDrain?: boolean;
  /** Node streams: the bytes (or objects) buffered and not yet written out. */
  writableLength?: number;
  // sonic-boom's own bookkeeping. `_writing`: a write(2) is in flight (or the file is being opened);
  // `_len`: bytes it holds, in flight included; `_bufs`: its chunks. Its flush(cb) calls back at once
  // when minLength is 0, even with a write in flight, so the sink reads these to know when it is idle.
  _writing?: boolean;
  _len?: number;
  _bufs?: unknown[];
  sync?: boolean;
  maxLength?: number;
};

/**
 * Pending lines are sealed into one Buffer every 64 KiB. A line from pino is a tree of small string
 * pieces that takes several times its length in the JS heap; a sealed chunk takes exactly its length,
 * outside the heap. Long-lived strings there would also raise V8's old-generation limit (a multiple of
 * what is live), letting garbage pile up to several times the queue before a collection: held in
 * Buffers, what the queue costs in memory is its byte count.
 */
const SEAL_LENGTH = 64 * 1024;

/**
 * Largest write handed to a batching destination at once. sonic-boom writes one chunk of at most 16 KiB
 * per round trip through the event loop, and a busy service turns its loop slowly: at the guarded
 * maximum that is slower than the events come. One batch per round trip keeps up with any rate the
 * service can produce, and bounds the copies a write makes.
 */
const BATCH_LENGTH = 1024 * 1024;

/**
 * Lines waiting for the destination, in order: sealed chunks (exact UTF-8 bytes) and the pending lines
 * (counted by string length: bytes for ASCII, which events are: hosts are A-labels, queries redacted).
 */
class LineQueue {
  private chunks: Buffer[] = [];
  private chunkLines: number[] = [];
  private pending: string[] = [];
  private pendingLength = 0;
  /** Bytes held. */
  length = 0;
  lines = 0;

  /** `sealLength`: the largest chunk (a line longer than that is a chunk of its own). */
  constructor(private readonly sealLength: number) {}

  push(line: string): void {
    if (this.pendingLength > 0 && this.pendingLength + line.length > this.sealLength) this.seal();
    this.pending.push(line);
    this.pendingLength += line.length;
    this.length += line.length;
    this.lines++;
  }

  /** Takes lines from the front, as one string of about `limit` bytes at most (at least one line). */
  take(limit: number): { data: string; lines: number } {
    if (this.chunks.length === 0) {
      // Nothing sealed: pending lines go as they are, without a round trip through a Buffer.
      let n = 0;
      let size = 0;
      while (n < this.pending.length && (n === 0 || size + this.pending[n]!.length <= limit)) {
        size += this.pending[n]!.length;
        n++;
      }
      const taken = n === this.pending.length ? this.pending : this.pending.slice(0, n);
      const data = taken.join('');
      this.pending = n === this.pending.length ? [] : this.pending.slice(n);
      this.pendingLength -= size;
      this.length -= size;
      this.lines -= n;
      return { data, lines: n };
    }
    let n = 0;
    let size = 0;
    let lines = 0;
    while (n < this.chunks.length && (n === 0 || size + this.chunks[n]!.length <= limit)) {
      size += this.chunks[n]!.length;
      lines += this.chunkLines[n]!;
      n++;
    }
    const data = (n === 1 ? this.chunks[0]! : Buffer.concat(this.chunks.slice(0, n), size)).toString();
    this.chunks.splice(0, n);
    this.chunkLines.splice(0, n);
    this.length -= size;
    this.lines -= lines;
    return { data, lines };
  }

  clear(): void {
    this.chunks = [];
    this.chunkLines = [];
    this.pending = [];
    this.pendingLength = 0;
    this.length = 0;
    this.lines = 0;
  }

  private seal(): void {
    const chunk = Buffer.from(this.pending.join(''));
    this.chunks.push(chunk);
    this.chunkLines.push(this.pending.length);
    this.length += chunk.length - this.pendingLength;
    this.pending = [];
    this.pendingLength = 0;
  }
}

/**
 * An asynchronous sonic-boom (what `pino.destination({ sync: false })` makes, and the default stdout
 * destination) in its string mode: the sink batches for it (see {@link BoundedSink}).
 */
function isAsyncSonicBoom(dest: Destination): boolean {
  return (
    Array.isArray(dest._bufs) &&
    typeof dest._len === 'number' &&
    typeof dest._writing === 'boolean' &&
    dest.sync !== true &&
    typeof dest.write === 'function' &&
    dest.write.name !== 'writeBuffer'
  );
}

// One sink per destination: emitters that share a destination share its bound and its counts, and the
// destination gets one set of listeners however many emitters write to it.
const sinks = new WeakMap<object, BoundedSink>();

/** The sink of `destination`, made on first use (later `maxBufferedBytes` values do not change it). */
export function sinkFor(destination: DestinationStream, options: { maxBufferedBytes: number }): BoundedSink {
  let sink = sinks.get(destination);
  if (!sink) {
    sink = new BoundedSink(destination, options);
    sinks.set(destination, sink);
  }
  return sink;
}

/**
 * Sits between pino and the real destination so that a sink which stalls or fails never blocks or
 * crashes the service, and so that what waits for it in memory is bounded by what is truly held.
 *
 * - An asynchronous sonic-boom (a file, stdout) is written in batches: while it has a write in flight,
 *   lines wait here, in order, and when it has written (its `drain`) the sink hands it up to 1 MiB at
 *   once. Without this sonic-boom writes 16 KiB per round trip through the event loop, which a service
 *   at its guarded maximum outruns: its buffer grows without end and events are lost.
 * - Any other destination is written through, line by line; it buffers (a stream's `writableLength`).
 *
 * What is held (the queue here, plus the destination's own buffer) may reach `maxBufferedBytes`; beyond
 * that events are dropped and counted until it is down to half the bound again (so that a destination
 * that stays slower than the service gives one loss report per half-bound written, not one per line).
 * The sink listens for 'error' (an unheard 'error' would crash the process), and says when it accepts
 * events again so that the loss can be reported, in order, before the next event.
 */
export class BoundedSink {
  private state: SinkState = 'ok';
  /** Over the bound: drop until what is held is down to half the bound. */
  private dropping = false;
  /** Write-through destinations that do not tell their buffer: bytes written since backpressure. */
  private estimate = 0;
  private written = 0;
  private total = 0;
  private unreported: UnreportedDrops | undefined;
  private warned = false;
  private readonly recovered = new Set<() => void>();
  private readonly batching: boolean;
  private readonly queue: LineQueue;
  /** Largest write handed to a batching destination: 1 MiB, or its own `maxLength` if smaller. */
  private readonly batchLength: number;

  constructor(
    private readonly dest: Destination,
    private readonly options: { maxBufferedBytes: number },
  ) {
    this.batching = isAsyncSonicBoom(dest);
    this.batchLength = dest.maxLength ? Math.min(BATCH_LENGTH, dest.maxLength) : BATCH_LENGTH;
    this.queue = new LineQueue(Math.min(SEAL_LENGTH, this.batchLength));
    dest.on?.('error', (error: Error) => this.fail(error));
    dest.on?.('drain', () => this.onDrain());
    // sonic-boom drops writes itself when they would exceed its own maxLength.
    dest.on?.('drop', (data: unknown) => {
      const lines = countLines(data);
      this.written -= lines;
      this.drop('sink_drop', lines);
    });
    if (this.batching) {
      // A file being opened has a write "in flight" until it is open, and emits no drain after: lines
      // queued meanwhile go when it is ready (next tick: sonic-boom starts its own buffered write first).
      dest.on?.('ready', () => process.nextTick(() => this.pump()));
      watchExit(this);
    }
  }

  /**
   * Counts an event that is not written because the sink does not accept it now ({@link accepting} is
   * false): the emitter calls this instead of serialising a line that would be dropped.
   */
  refuse(): void {
    this.drop(this.state === 'failed' ? 'sink_error' : 'backpressure');
  }

  /** pino writes each line here. Always returns true: backpressure is handled here, not by pino. */
  write(line: string): boolean {
    if (this.state === 'failed') {
      this.drop('sink_error');
      return true;
    }
    if (this.dropping) {
      // The same test as `accepting`: a loss report written because the sink accepts must not be dropped.
      if (this.held() > this.options.maxBufferedBytes / 2) {
        this.drop('backpressure');
        return true;
      }
      this.resume();
    }
    if (this.batching) this.writeBatching(line);
    else this.writeThrough(line);
    return true;
  }

  /**
   * pino announces its configuration to a transport by emitting a 'message' on the stream it writes
   * to; transports that wait for it (pino-opentelemetry-transport) would wait for ever behind a
   * wrapper that swallowed it.
   */
  emit(event: string, ...args: unknown[]): boolean {
    const emit = (this.dest as { emit?: (event: string, ...args: unknown[]) => boolean }).emit;
    return typeof emit === 'function' ? emit.call(this.dest, event, ...args) : false;
  }

  /**
   * Whether the next event would be accepted: not failed, and not over the bound (or back under half of
   * it). Drop reports are written only then, so that the report itself is not dropped.
   */
  get accepting(): boolean {
    if (this.state === 'failed') return false;
    return !this.dropping || this.held() <= this.options.maxBufferedBytes / 2;
  }

  hasUnreported(): boolean {
    return this.unreported !== undefined;
  }

  /** The drops since the last report, which the caller now reports; resets the count. */
  takeUnreported(): UnreportedDrops | undefined {
    const u = this.unreported;
    this.unreported = undefined;
    this.warned = false;
    return u;
  }

  /**
   * Calls `callback` when the sink accepts events again after a loss (the destination caught up, or
   * what is held is down to half the bound) or after backpressure. Returns the function that removes
   * it. Several emitters may share a sink; the first to take the drops reports.
   */
  onRecovered(callback: () => void): () => void {
    this.recovered.add(callback);
    return () => this.recovered.delete(callback);
  }

  stats(): SinkStats {
    return { written: this.written, dropped: this.total, bufferedBytes: this.held(), state: this.state };
  }

  /** Resolves when the destination has written what it was given, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void> {
    if (this.state === 'failed') return Promise.resolve();
    return new Promise((resolve) => {
      let settled = false;
      const timer = setTimeout(() => finish(), timeoutMs);
      timer.unref();
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.dest.off?.('drain', waitIdle);
        resolve();
      };
      const idle = () =>
        this.state !== 'congested' &&
        this.queue.lines === 0 &&
        this.dest._writing !== true &&
        !(this.dest._len ?? 0);
      // The sink's own 'drain' listener came first: by now it has handed over the next batch, if any.
      const waitIdle = () => {
        if (this.state === 'failed' || idle()) finish();
      };
      const afterFlush = () => {
        if (this.dest.writableNeedDrain === true || !idle()) this.dest.on?.('drain', waitIdle);
        else finish();
      };
      if (typeof this.dest.flush === 'function') {
        try {
          this.dest.flush(() => afterFlush());
        } catch {
          finish();
        }
      } else afterFlush();
    });
  }

  /** Writes out what the sink and the destination hold, synchronously (for exit and signal handlers). */
  flushSync(): void {
    if (this.state === 'failed') return;
    this.handOverAll();
    if (typeof this.dest.flushSync !== 'function') return;
    try {
      this.dest.flushSync();
    } catch {
      // Exit handlers must not throw; what could not be written is lost either way.
    }
  }

  /**
   * Hands everything queued to the destination, without waiting for it: on exit, before whatever
   * flushes the destination synchronously (pino's own exit handler for the destinations it made,
   * `flushOnExit`), so that lines waiting here are not lost where lines waiting there would not be.
   */
  handOverAll(): void {
    while (this.state !== 'failed' && this.queue.lines > 0) {
      const { data, lines } = this.queue.take(this.batchLength);
      this.handOver(data, lines);
    }
  }

  /** Bytes held in memory for the destination now. */
  private held(): number {
    if (this.batching) return this.queue.length + (this.dest._len ?? 0);
    if (typeof this.dest.writableLength === 'number') return this.dest.writableLength;
    return this.state === 'congested' ? this.estimate : 0;
  }

  private writeBatching(line: string): void {
    // Idle: straight through, so that a quiet service's events reach the file at once, as before.
    if (this.queue.lines === 0 && this.dest._writing !== true) {
      this.written++;
      this.handOver(line, 1);
      return;
    }
    if (this.held() + line.length > this.options.maxBufferedBytes) {
      this.dropping = true;
      this.drop('backpressure');
      return;
    }
    this.queue.push(line);
    this.written++;
    this.state = 'congested';
  }

  private writeThrough(line: string): void {
    if (this.state === 'congested' && this.held() + line.length > this.options.maxBufferedBytes) {
      this.dropping = true;
      this.drop('backpressure');
      return;
    }
    let accepted: boolean;
    try {
      accepted = (this.dest.write(line) as unknown) !== false;
    } catch (error) {
      this.fail(error as Error);
      this.drop('sink_error');
      return;
    }
    this.written++;
    if (this.state === 'congested') {
      // A stream whose write() says true again has room again, whether or not it emits 'drain'.
      if (accepted) this.recover();
      else this.estimate += line.length;
    } else if (!accepted && this.state === 'ok') {
      this.state = 'congested';
      this.estimate = line.length;
    }
  }

  /** Gives the destination `data` (`lines` lines already counted as written). */
  private handOver(data: string, lines: number): void {
    try {
      this.dest.write(data);
    } catch (error) {
      this.written -= lines;
      this.fail(error as Error);
      this.drop('sink_error', lines);
    }
  }

  private onDrain(): void {
    if (this.state === 'failed') return;
    if (this.batching) this.pump();
    else this.recover();
  }

  /**
   * The destination has written what it had: give it the next batch, or say it has caught up. A loop: a
   * batch the destination dropped (sonic-boom's maxLength) starts no write, and so brings no 'drain'.
   */
  private pump(): void {
    const half = this.options.maxBufferedBytes / 2;
    while (this.state !== 'failed' && this.dest._writing !== true) {
      if (this.queue.lines === 0) {
        this.recover();
        return;
      }
      // Room again: the loss report goes at the end of the queue, after what was accepted before the loss.
      if (this.dropping && this.held() <= half) this.resume();
      const { data, lines } = this.queue.take(this.batchLength);
      this.handOver(data, lines);
    }
  }

  private drop(reason: DropReason, count = 1): void {
    if (count <= 0) return;
    this.total += count;
    if (this.unreported) {
      this.unreported.count += count;
      this.unreported.total = this.total;
      // The worst reason of the run is the one reported: an error is worse than backpressure.
      if (reason === 'sink_error') this.unreported.reason = reason;
    } else {
      this.unreported = { count, total: this.total, reason, since: Date.now() };
    }
    if (!this.warned) {
      this.warned = true;
      // No event can report a loss through a sink that is losing them: say it where an operator looks.
      process.emitWarning(
        `egress-guard: audit events are being dropped (${reason}); the count is in emitter.stats().dropped and an egress.events.dropped event follows when the destination recovers`,
        { code: 'EGRESS_EVENTS_DROPPED' },
      );
    }
  }

  private fail(_error: Error): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.dropping = false;
    this.estimate = 0;
    // Lines waiting here will never be written: they are lost with the destination.
    const lost = this.queue.lines;
    this.queue.clear();
    this.written -= lost;
    this.drop('sink_error', lost);
  }

  /** Back under half the bound after a loss: accept again, and let the emitters report the loss first. */
  private resume(): void {
    this.dropping = false;
    for (const callback of this.recovered) callback();
  }

  /** The destination has caught up. */
  private recover(): void {
    if (this.state === 'ok' && !this.dropping) return;
    if (this.state !== 'failed') this.state = 'ok';
    this.dropping = false;
    this.estimate = 0;
    for (const callback of this.recovered) callback();
  }
}

/** Lines in what a destination dropped (sonic-boom hands the dropped data to its 'drop' listeners). */
function countLines(data: unknown): number {
  if (typeof data !== 'string') return 1;
  let n = 0;
  for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++;
  return Math.max(n, 1);
}

// Batching sinks hold lines that the destination has not seen. On exit they are handed over first, so
// that pino's exit handler (for the destinations it made) or `flushOnExit` writes them out with the
// rest. Weak references: a sink whose destination is gone must not be kept alive by the process.
const batchingSinks = new Set<WeakRef<BoundedSink>>();
const forget = new FinalizationRegistry<WeakRef<BoundedSink>>((ref) => batchingSinks.delete(ref));
let exitWatched = false;

function watchExit(sink: BoundedSink): void {
  const ref = new WeakRef(sink);
  batchingSinks.add(ref);
  forget.register(sink, ref);
  if (exitWatched) return;
  exitWatched = true;
  process.prependListener('exit', () => {
    for (const r of batchingSinks) r.deref()?.handOverAll();
  });
}
