/**
 * A worker's flow log destination: whole event lines go to the primary over the IPC channel, which
 * writes them to the one flow log in the order each worker sent them. Lines written within
 * {@link RELAY_BATCH_MS} travel in one message (a line is never split across messages, so no line is torn);
 * `writableLength` counts what is not yet written to the channel, so the emitter's bound
 * (`maxBufferedBytes`) applies when the primary falls behind, and a loss is reported as
 * `egress.events.dropped` like any other.
 */
import { EventEmitter } from 'node:events';
import type { FromWorker } from './messages.js';

/** Sends a message to the primary; calls back once it is written to the channel. */
export type SendToPrimary = (message: FromWorker, done: (error: Error | null) => void) => boolean;

/**
 * Lines are sent at most this long after they were written (ms). Every message costs the primary a
 * wake-up and a decode: one per event-loop turn cost it about a fifth of a worker's CPU per connection
 * under load; a few milliseconds' batching makes that a few messages per 1,000 events.
 */
export const RELAY_BATCH_MS = 5;
/** ...or as soon as this many bytes wait. */
export const RELAY_BATCH_BYTES = 256 * 1024;

/** A pino-style destination (`write(line)`) that batches lines to the primary. */
export class EventRelay extends EventEmitter {
  private pending: string[] = [];
  private pendingBytes = 0;
  private inFlightBytes = 0;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];

  constructor(private readonly send: SendToPrimary) {
    super();
  }

  /** Bytes accepted and not yet written to the channel (read by the emitter's bound). */
  get writableLength(): number {
    return this.pendingBytes + this.inFlightBytes;
  }

  /** Takes whole lines (the emitter writes one line per call). */
  write(line: string): boolean {
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= RELAY_BATCH_BYTES) this.sendPending();
    else if (!this.scheduled) {
      this.scheduled = true;
      this.timer = setTimeout(() => this.sendPending(), RELAY_BATCH_MS);
    }
    return true;
  }

  /** Sends what is pending now and calls back once everything sent so far is written to the channel. */
  flush(cb?: (err?: Error | null) => void): void {
    this.sendPending();
    if (this.inFlightBytes === 0) cb?.(null);
    else if (cb) this.waiters.push(() => cb(null));
  }

  /** Resolves once every line accepted so far is written to the channel. */
  drained(): Promise<void> {
    return new Promise((resolve) => this.flush(() => resolve()));
  }

  private sendPending(): void {
    this.scheduled = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const lines = this.pending.join('');
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlightBytes += bytes;
    try {
      this.send({ t: 'events', lines }, () => this.written(bytes));
    } catch {
      // The channel is closed (the primary is gone): nothing can be written any more.
      this.written(bytes);
    }
  }

  private written(bytes: number): void {
    this.inFlightBytes -= bytes;
    if (this.inFlightBytes === 0) {
      for (const wake of this.waiters.splice(0)) wake();
      this.emit('drain');
    }
  }
}
