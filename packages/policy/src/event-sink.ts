import type { DestinationStream } from 'pino';
import type { DropReason } from './events.js';

/** Default bound on what may wait in a destination that signalled backpressure: 64 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** State of the destination as the emitter sees it. */
export type SinkState = 'ok' | 'congested' | 'failed';

/** Counters of a sink. */
export interface SinkStats {
  /** Lines handed to the destination. */
  written: number;
  /** Events dropped: over the bound, after the destination failed, or dropped by the destination itself. */
  dropped: number;
  /** Approximate bytes written since the destination last signalled backpressure (0 when `ok`). */
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
  // sonic-boom's own bookkeeping: its flush(cb) calls back at once when minLength is 0, even with a
  // write in flight, so the sink reads these to know whether it must wait for 'drain'.
  _writing?: boolean;
  _len?: number;
};

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
 * crashes the service: it honours backpressure up to a bound, then drops and counts, listens for
 * 'error' (an unheard 'error' would crash the process), and says when the destination accepts writes again
 * so the loss can be reported.
 */
export class BoundedSink {
  private state: SinkState = 'ok';
  private buffered = 0;
  private written = 0;
  private total = 0;
  private unreported: UnreportedDrops | undefined;
  private warned = false;
  private readonly recovered = new Set<() => void>();

  constructor(
    private readonly dest: Destination,
    private readonly options: { maxBufferedBytes: number },
  ) {
    dest.on?.('error', (error: Error) => this.fail(error));
    dest.on?.('drain', () => this.recover());
    // sonic-boom drops lines itself when they would exceed its own maxLength.
    dest.on?.('drop', () => {
      this.written--;
      this.drop('sink_drop');
    });
  }

  /** pino writes each line here. Always returns true: backpressure is handled here, not by pino. */
  write(line: string): boolean {
    if (this.state === 'failed') {
      this.drop('sink_error');
      return true;
    }
    if (this.state === 'congested' && this.buffered + line.length > this.options.maxBufferedBytes) {
      this.drop('backpressure');
      return true;
    }
    let accepted: boolean;
    try {
      accepted = (this.dest.write(line) as unknown) !== false;
    } catch (error) {
      this.fail(error as Error);
      this.drop('sink_error');
      return true;
    }
    this.written++;
    if (this.state === 'congested') {
      // A stream whose write() says true again has room again, whether or not it emits 'drain'.
      if (accepted) this.recover();
      else this.buffered += line.length;
    } else if (!accepted) {
      this.state = 'congested';
      this.buffered = line.length;
    }
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

  /** Whether the destination has room: not congested, not failed. Drop reports are written only then. */
  get accepting(): boolean {
    return this.state === 'ok';
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
   * Calls `callback` when the destination accepts writes again after backpressure or an error. Returns
   * the function that removes it. Several emitters may share a sink; the first to take the drops reports.
   */
  onRecovered(callback: () => void): () => void {
    this.recovered.add(callback);
    return () => this.recovered.delete(callback);
  }

  stats(): SinkStats {
    return { written: this.written, dropped: this.total, bufferedBytes: this.buffered, state: this.state };
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
      const idle = () => this.state !== 'congested' && this.dest._writing !== true && !(this.dest._len ?? 0);
      const waitIdle = () => {
        if (idle()) finish();
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

  /** Writes out what the destination buffers, synchronously (for exit and signal handlers). */
  flushSync(): void {
    if (this.state === 'failed' || typeof this.dest.flushSync !== 'function') return;
    try {
      this.dest.flushSync();
    } catch {
      // Exit handlers must not throw; what could not be written is lost either way.
    }
  }

  private drop(reason: DropReason): void {
    this.total++;
    if (this.unreported) {
      this.unreported.count++;
      this.unreported.total = this.total;
      // The worst reason of the run is the one reported: an error is worse than backpressure.
      if (reason === 'sink_error') this.unreported.reason = reason;
    } else {
      this.unreported = { count: 1, total: this.total, reason, since: Date.now() };
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
    this.state = 'failed';
    this.buffered = 0;
  }

  private recover(): void {
    if (this.state === 'ok') return;
    this.state = 'ok';
    this.buffered = 0;
    for (const callback of this.recovered) callback();
  }
}
