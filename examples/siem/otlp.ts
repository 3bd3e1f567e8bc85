/**
 * Recipe: audit events as OpenTelemetry log records, exported over OTLP/HTTP (JSON) to a collector,
 * which forwards them to any backend it supports. Each record's body is the one-line message and its
 * attributes are the event's fields (they already carry OpenTelemetry names).
 *
 *   npx tsx examples/siem/otlp.ts http://127.0.0.1:4318/v1/logs
 */
import { once } from 'node:events';
import { createEventEmitter, type EventEmitter } from '@egress-guard/policy';
import pino from 'pino';
import { closeTransport } from './close-transport.js';
import { emitSamples, isMain } from './sample-events.js';

/** Options of {@link createOtlpEmitter}. */
export interface OtlpOptions {
  /** The collector's OTLP/HTTP logs endpoint. Default `http://127.0.0.1:4318/v1/logs`. */
  url?: string;
  /** Resource `service.name`. Default `egress-guard`. */
  serviceName?: string;
  /** Export each record at once (`simple`) or in batches (`batch`, the default, for production). */
  processor?: 'simple' | 'batch';
}

/** An emitter exporting OTLP log records, and how to close it (which exports what is batched). */
export function createOtlpEmitter(options: OtlpOptions = {}): {
  events: EventEmitter;
  ready: Promise<unknown>;
  close(): Promise<void>;
} {
  const transport = pino.transport({
    target: 'pino-opentelemetry-transport',
    options: {
      loggerName: 'egress-guard',
      resourceAttributes: { 'service.name': options.serviceName ?? 'egress-guard' },
      logRecordProcessorOptions: {
        recordProcessorType: options.processor ?? 'batch',
        exporterOptions: {
          protocol: 'http',
          httpExporterOptions: { url: options.url ?? 'http://127.0.0.1:4318/v1/logs' },
        },
      },
    },
  });
  // The transport takes pino's epoch-millisecond time as the record's timestamp.
  const events = createEventEmitter({
    destination: transport,
    flushOnExit: true,
    envelope: { time: 'epoch' },
  });
  return {
    events,
    // The transport's worker thread has started (events emitted before are buffered, not lost).
    ready: once(transport, 'ready').catch(() => undefined),
    close: () => closeTransport(events, transport),
  };
}

if (isMain(import.meta.url)) {
  const { events, close } = createOtlpEmitter({ url: process.argv[2] });
  emitSamples(events);
  await close();
}
