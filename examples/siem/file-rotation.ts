/**
 * Recipe: audit events to local files, rotated by size and by day, old files pruned. A log shipper
 * (Filebeat, Fluent Bit, Vector, the Splunk forwarder) then tails the directory.
 *
 *   npx tsx examples/siem/file-rotation.ts /var/log/egress-guard/events
 */
import { once } from 'node:events';
import { createEventEmitter, type EventEmitter, type EventFormat } from '@egress-guard/policy';
import pino from 'pino';
import { closeTransport } from './close-transport.js';
import { emitSamples, isMain } from './sample-events.js';

/** Options of {@link createRotatingFileEmitter}. */
export interface RotatingFileOptions {
  /** Path without the rotation suffix: `/var/log/egress-guard/events` gives `events.1.log`, `events.2.log`, ... */
  file: string;
  /** Rotate when a file reaches this size (`10m`, `500k`). Default `100m`. */
  size?: string;
  /** Also rotate `daily` or `hourly`. Default `daily`. */
  frequency?: 'daily' | 'hourly';
  /** Rotated files kept besides the active one. Default 14. */
  keep?: number;
  /** `json` (default) or `ocsf`. */
  format?: EventFormat;
}

/** An emitter writing through the pino-roll transport (a worker thread), and how to close it cleanly. */
export function createRotatingFileEmitter(options: RotatingFileOptions): {
  events: EventEmitter;
  ready: Promise<unknown>;
  close(): Promise<void>;
} {
  const transport = pino.transport({
    target: 'pino-roll',
    options: {
      file: options.file,
      size: options.size ?? '100m',
      frequency: options.frequency ?? 'daily',
      mkdir: true,
      limit: { count: options.keep ?? 14 },
    },
  });
  const events = createEventEmitter({ destination: transport, format: options.format, flushOnExit: true });
  return {
    events,
    // The transport's worker thread has started (events emitted before are buffered, not lost).
    ready: once(transport, 'ready').catch(() => undefined),
    close: () => closeTransport(events, transport),
  };
}

if (isMain(import.meta.url)) {
  const { events, close } = createRotatingFileEmitter({ file: process.argv[2] ?? './egress-events/events' });
  emitSamples(events);
  await close();
}
