import pino, { type DestinationStream, type Logger } from 'pino';
import { EgressOptionsError } from './errors.js';
import { openAuditFile } from './event-audit-file.js';
import { registerExitFlush } from './event-exit-flush.js';
import { type BoundedSink, DEFAULT_MAX_BUFFERED_BYTES, type SinkStats, sinkFor } from './event-sink.js';
import { toOcsf } from './ocsf.js';
import type { ReasonCode } from './reason-codes.js';
import type { Decision, Mode } from './types.js';

/** Version of the audit event schema. Bumped only on incompatible changes. */
export const EVENT_SCHEMA_VERSION = 1;

/** Which half of the product wrote the event. */
export type EventSource = 'sdk' | 'edge';

/**
 * Fields common to every egress-guard event. OpenTelemetry names where one exists, `egress.*` otherwise.
 * The published JSON Schema (`schema/events-v1.json`) and docs/events.md describe every field.
 */
export interface BaseEvent {
  'event.name': string;
  'egress.schema': typeof EVENT_SCHEMA_VERSION;
  'egress.source': EventSource;
  'service.name'?: string | undefined;
}

/** One per request (SDK) or connection (edge): what was decided, and why. */
export interface DecisionEvent extends BaseEvent {
  'event.name': 'egress.decision';
  /** Correlates the decision with its completion. */
  'egress.id': string;
  'egress.decision': Decision['result'];
  'egress.reason': ReasonCode;
  'egress.rule'?: string | undefined;
  'egress.mode': Mode;
  'egress.policy.hash': string;
  /** The hook that saw the traffic: fetch, undici, http, https, http2, net, tls, dns, edge.explicit, ... */
  'egress.hook': string;
  'egress.message'?: string | undefined;
  /** One of the policy's schemes: https, http, wss, ws, tls, tcp, ssh. */
  'url.scheme': string;
  /** Scheme, host, port and path; the query string is redacted unless the caller opts in. */
  'url.full'?: string | undefined;
  'url.path'?: string | undefined;
  'server.address'?: string | undefined;
  'server.port': number;
  'network.peer.address'?: string | undefined;
  'http.request.method'?: string | undefined;
  'client.address'?: string | undefined;
  'tls.client.server_name'?: string | undefined;
}

/** One at the end of each allowed request or connection. */
export interface CompletionEvent extends BaseEvent {
  'event.name': 'egress.completion';
  'egress.id': string;
  'egress.hook': string;
  'egress.rule'?: string | undefined;
  /** The hash of the policy that made the decision; empty when the flow ended before any decision. */
  'egress.policy.hash': string;
  /** ok, error, timeout, circuit_open, tls, denied (a redirect or dial-time denial after the decision). */
  'egress.outcome': string;
  'egress.duration_ms': number;
  'server.address'?: string | undefined;
  'server.port'?: number | undefined;
  'client.address'?: string | undefined;
  'http.response.status_code'?: number | undefined;
  /** The negotiated TLS version as Node spells it (`TLSv1.3`). */
  'tls.protocol.version'?: string | undefined;
  'tls.client.alpn'?: string | undefined;
  'tls.client.server_name'?: string | undefined;
  /** Edge only: the highest TLS version the client offered. */
  'egress.tls.client_max_version'?: string | undefined;
  'egress.bytes.sent'?: number | undefined;
  'egress.bytes.received'?: number | undefined;
  'egress.close_reason'?: string | undefined;
  'error.type'?: string | undefined;
}

/** A summary of what changed between two policies. */
export interface PolicyDiffSummary {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Policy loaded at start, reloaded, or rejected (the old policy stays in force). */
export interface PolicyEvent extends BaseEvent {
  'event.name': 'egress.policy.loaded' | 'egress.policy.reloaded' | 'egress.policy.rejected';
  'egress.policy.hash'?: string | undefined;
  'egress.policy.previous_hash'?: string | undefined;
  'egress.policy.file'?: string | undefined;
  'egress.policy.diff'?: PolicyDiffSummary | undefined;
  'egress.policy.problems'?: string[] | undefined;
}

/** A circuit breaker opened, half-opened or closed. */
export interface BreakerEvent extends BaseEvent {
  'event.name': 'egress.breaker.state';
  'egress.breaker.state': 'open' | 'half_open' | 'closed';
  'egress.breaker.key': string;
  'egress.rule'?: string | undefined;
  /** The policy in force when the state changed. */
  'egress.policy.hash'?: string | undefined;
}

/** Why events were dropped: the sink did not keep up, failed, or dropped lines itself. */
export type DropReason = 'backpressure' | 'sink_error' | 'sink_drop';

/**
 * Written by the emitter itself, on the first write the sink accepts after a loss: how many events were
 * dropped since the last such report. An audit trail with a gap says so.
 */
export interface DroppedEvent extends BaseEvent {
  'event.name': 'egress.events.dropped';
  /** Events dropped since the previous report. */
  'egress.events.dropped': number;
  /** Events dropped since the emitter was created. */
  'egress.events.dropped_total': number;
  'egress.events.drop_reason': DropReason;
  /** When the first of these drops happened (ISO 8601). */
  'egress.events.since': string;
  /** The policy of the last event emitted before the report, when it had one. */
  'egress.policy.hash'?: string | undefined;
}

/**
 * Summary mode (`audit: { allowed: 'summary' }`): the allowed traffic of one key over one interval, in
 * place of a decision and a completion event per request. The key is the service, policy, rule, origin
 * (`url.scheme`, `server.address`, `server.port`), outcome and error type. See `AllowedTrafficSummary`.
 */
export interface SummaryEvent extends BaseEvent {
  'event.name': 'egress.summary';
  'egress.rule'?: string | undefined;
  /** The policy that allowed the traffic (a reload starts new keys). */
  'egress.policy.hash': string;
  /** ok, error, timeout, circuit_open: the outcomes that are summarised. */
  'egress.outcome': string;
  'url.scheme': string;
  'server.address'?: string | undefined;
  'server.port': number;
  /** For outcomes other than ok: the error class or code, part of the key. */
  'error.type'?: string | undefined;
  /** Start of the interval counted (ISO 8601). */
  'egress.summary.start': string;
  /** End of the interval counted (ISO 8601). */
  'egress.summary.end': string;
  /** Requests or connections that ended in the interval. */
  'egress.summary.count': number;
  /** Bytes sent, in all, by those that reported it. */
  'egress.bytes.sent': number;
  /** Bytes received, in all, by those that reported it. */
  'egress.bytes.received': number;
  'egress.summary.duration_p50_ms': number;
  'egress.summary.duration_p90_ms': number;
  'egress.summary.duration_p99_ms': number;
  'egress.summary.duration_max_ms': number;
}

export type EgressEvent =
  | DecisionEvent
  | CompletionEvent
  | PolicyEvent
  | BreakerEvent
  | DroppedEvent
  | SummaryEvent;

/** Output formats: egress-guard's own schema (default), or OCSF 1.6 classes for SIEMs that ingest OCSF. */
export type EventFormat = 'json' | 'ocsf';

/** Where events go: the application's pino logger, or a destination stream; default stdout. */
export interface EmitterOptions {
  /** The application's pino logger; events become child log lines with `egress: true`. */
  logger?: Logger | undefined;
  /**
   * A pino destination (`pino.destination(...)`, `pino.transport(...)`, any writable), used when no
   * logger is given. Default: asynchronous JSON lines on stdout (`pino.destination({ dest: 1, sync: false })`),
   * so that a stalled reader of stdout never blocks the service.
   */
  destination?: DestinationStream | undefined;
  /** Log level of allowed decisions and completions. Default `info`; denials are `warn`. */
  level?: 'trace' | 'debug' | 'info' | undefined;
  /**
   * `json` (default): egress-guard's schema, one JSON line per event. `ocsf`: each event mapped by
   * `toOcsf()` (Network Activity 4001, HTTP Activity 4002, Base Event 0 for the rest); with a `logger`,
   * the OCSF object is nested under the key `ocsf` because the logger owns the line's envelope.
   */
  format?: EventFormat | undefined;
  /**
   * Flush buffered events on `exit`, `SIGTERM` and `SIGINT`. Default `false`: a library must not change
   * a process's signal behaviour unasked. When on, the signal handlers flush and then, if nothing else
   * listens for that signal, re-raise it so the process still ends as it would have.
   */
  flushOnExit?: boolean | undefined;
  /**
   * How many bytes of events may be held in memory for a destination that is behind (the emitter's own
   * queue plus the destination's buffer, as they are now) before further events are dropped and
   * counted; dropping stops when that is down to half the bound, and the loss is then reported. Default
   * 64 MiB. Applies to the destination the emitter writes to itself, not to an application logger's
   * stream. Emitters given the same destination share one bound (the first one's) and one set of counts.
   */
  maxBufferedBytes?: number | undefined;
  /** `egress.source` of the emitter's own events (`egress.events.dropped`). Default: that of the last event. */
  source?: EventSource | undefined;
  /**
   * The line around each event, on the emitter's own destination. Default `{ time: 'iso' }` and no other
   * field. A transport that expects pino's defaults, such as pino-syslog, needs
   * `{ time: 'epoch', base: { pid: process.pid, hostname: os.hostname() } }`. Names in `base` must not
   * contain a dot (dotted names belong to the event schema).
   */
  envelope?: LineEnvelope | undefined;
}

/** The fields pino writes around an event. */
export interface LineEnvelope {
  /** `iso` (default): `"time":"2026-01-31T10:00:00.000Z"`; `epoch`: milliseconds, pino's default. */
  time?: 'iso' | 'epoch' | undefined;
  /** Fields added to every line. Default none. */
  base?: Record<string, string | number> | undefined;
}

/** Counters of an emitter, for health checks and tests. */
export interface EmitterStats extends SinkStats {
  /** Events given to `emit()`. */
  emitted: number;
}

/** Writes events. One method per event kind; denials are logged at warn. */
export interface EventEmitter {
  /**
   * Writes one event. `fieldsJson`, when given, is the event's fields as JSON (what `JSON.stringify(event)`
   * gives, keys in any order): a caller that writes many similar events can render them from cached parts
   * instead of having each serialised again. Used on the native line path only.
   */
  emit(event: EgressEvent, fieldsJson?: string): void;
  /**
   * Flushes buffered output (pino's `flush`) so nothing is lost on exit. Resolves when the destination
   * has written everything, or after `timeoutMs` (default 5000) if it stalls.
   */
  flush(timeoutMs?: number): Promise<void>;
  /** Emitted, written and dropped counts, and the sink's state. */
  stats(): EmitterStats;
  /** Flushes, and removes the exit handlers `flushOnExit` installed. The destination stays open. */
  close(): Promise<void>;
  readonly logger: Logger;
}

const DEFAULT_FLUSH_TIMEOUT_MS = 5000;

/**
 * Creates the emitter both halves use. It never starts a transport of its own: give it the
 * application's logger or a destination, or it writes JSON lines to stdout.
 *
 * When `EGRESS_GUARD_EVENT_AUDIT_FILE` is set, every event is also appended, synchronously and in the
 * native schema, to that file: a test-only hook that lets the test suite validate every event it made
 * against the published schema. Never set it in production.
 */
export function createEventEmitter(options: EmitterOptions = {}): EventEmitter {
  const format = options.format ?? 'json';
  const level = options.level ?? 'info';
  const audit = openAuditFile();
  let sink: BoundedSink | undefined;
  let logger: Logger;
  if (options.logger) {
    logger = options.logger.child({ egress: true });
  } else {
    sink = sinkFor(options.destination ?? pino.destination({ dest: 1, sync: false }), {
      maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
    });
    logger = pino(lineOptions(options.envelope), sink);
  }

  // The hot path (every request writes two events): with no logger of the application's, no base fields
  // and the info level, the line is built here, byte for byte what pino would write, without pino's
  // per-key serialisation.
  const fastLine =
    !options.logger && format === 'json' && level === 'info' && !options.envelope?.base
      ? nativeLine(options.envelope?.time === 'epoch')
      : undefined;

  let emitted = 0;
  let lastSource: EventSource = options.source ?? 'sdk';
  let lastService: string | undefined;
  let lastHash: string | undefined;
  let reporting = false;

  const write = (event: EgressEvent, fieldsJson?: string): void => {
    audit?.(event);
    const msg = messageOf(event);
    const warn = isWarning(event);
    if (format === 'ocsf' && sink) {
      // An OCSF line is the OCSF object alone: pino's level, time and msg are not OCSF attributes.
      sink.write(`${JSON.stringify(ocsfOf(event))}\n`);
    } else if (format === 'ocsf') {
      const line = { ocsf: ocsfOf(event) };
      if (warn) logger.warn(line, msg);
      else logger[level](line, msg);
    } else if (fastLine && sink) {
      sink.write(fastLine(fieldsJson ?? JSON.stringify(event), warn, msg));
    } else if (warn) logger.warn(event, msg);
    else logger[level](event, msg);
  };

  // The sink calls back when it accepts writes again after a loss; the report then goes first.
  const reportDrops = (): void => {
    if (!sink || reporting) return;
    const pending = sink.takeUnreported();
    if (!pending) return;
    reporting = true;
    try {
      write({
        'event.name': 'egress.events.dropped',
        'egress.schema': EVENT_SCHEMA_VERSION,
        'egress.source': options.source ?? lastSource,
        'service.name': lastService,
        'egress.events.dropped': pending.count,
        'egress.events.dropped_total': pending.total,
        'egress.events.drop_reason': pending.reason,
        'egress.events.since': new Date(pending.since).toISOString(),
        'egress.policy.hash': lastHash,
      });
    } finally {
      reporting = false;
    }
  };
  const stopReporting = sink?.onRecovered(reportDrops);

  const flush = (timeoutMs = DEFAULT_FLUSH_TIMEOUT_MS): Promise<void> => {
    if (sink) return sink.flush(timeoutMs);
    return flushLogger(logger, timeoutMs);
  };
  const unregister = options.flushOnExit && sink ? registerExitFlush(sink) : undefined;

  return {
    logger,
    emit(event, fieldsJson) {
      emitted++;
      lastSource = event['egress.source'];
      lastService = event['service.name'];
      if ('egress.policy.hash' in event && event['egress.policy.hash'])
        lastHash = event['egress.policy.hash'];
      if (sink && !sink.accepting) {
        // Over the bound or failed: counted as dropped without making a line that would be thrown away.
        audit?.(event);
        sink.refuse();
        return;
      }
      if (sink?.hasUnreported()) reportDrops();
      write(event, fieldsJson);
    },
    flush,
    stats() {
      return { emitted, ...(sink ? sink.stats() : NO_SINK_STATS) };
    },
    async close() {
      unregister?.();
      stopReporting?.();
      await flush();
    },
  };
}

/** Pino options of a line: the event's own fields, the time, the level, a message, and `base` if asked. */
function lineOptions(envelope: LineEnvelope = {}) {
  for (const key of Object.keys(envelope.base ?? {})) {
    if (key.includes('.'))
      throw new EgressOptionsError(
        `envelope.base: "${key}" has a dot; dotted names belong to the event schema`,
      );
  }
  return {
    base: envelope.base ?? undefined,
    messageKey: 'msg',
    timestamp: envelope.time === 'epoch' ? pino.stdTimeFunctions.epochTime : pino.stdTimeFunctions.isoTime,
  };
}

/**
 * Builds the line pino writes for an event (`{"level":30,"time":…,<event fields>,"msg":…}`), from one
 * native `JSON.stringify` of the event: undefined fields are left out, as pino leaves them out.
 */
function nativeLine(epoch: boolean): (fields: string, warn: boolean, msg: string) => string {
  // One ISO string per millisecond: a busy service writes many events in the same one.
  let lastMs = -1;
  let lastTime = '';
  return (fields, warn, msg) => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastTime = epoch ? String(now) : `"${new Date(now).toISOString()}"`;
    }
    const body = fields.length > 2 ? `${fields.slice(1, -1)},` : '';
    return `{"level":${warn ? 40 : 30},"time":${lastTime},${body}"msg":${JSON.stringify(msg)}}\n`;
  };
}

const NO_SINK_STATS: SinkStats = { written: 0, dropped: 0, bufferedBytes: 0, state: 'ok' };

function flushLogger(logger: Logger, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      logger.flush(done);
    } catch {
      done();
    }
  });
}

/**
 * `toOcsf`, with every field of a summary under `unmapped`: a Base Event has no attributes for the
 * origin, outcome and bytes that `toOcsf` maps only for decisions and completions.
 */
function ocsfOf(event: EgressEvent) {
  const ocsf = toOcsf(event);
  if (event['event.name'] === 'egress.summary') {
    for (const [key, value] of Object.entries(event)) {
      if (value !== undefined && key !== 'event.name') ocsf.unmapped[key] = value;
    }
  }
  return ocsf;
}

function isWarning(event: EgressEvent): boolean {
  switch (event['event.name']) {
    case 'egress.decision':
      return event['egress.decision'] !== 'allowed';
    case 'egress.policy.rejected':
    case 'egress.events.dropped':
      return true;
    case 'egress.breaker.state':
      return event['egress.breaker.state'] === 'open';
    default:
      return false;
  }
}

function messageOf(event: EgressEvent): string {
  switch (event['event.name']) {
    case 'egress.decision':
      return event['egress.message'] ?? `egress ${event['egress.decision']}: ${event['egress.reason']}`;
    case 'egress.completion':
      return `egress completed: ${event['egress.outcome']}`;
    case 'egress.breaker.state':
      return `egress breaker ${event['egress.breaker.state']}: ${event['egress.breaker.key']}`;
    case 'egress.events.dropped':
      return `egress events dropped: ${event['egress.events.dropped']} (${event['egress.events.drop_reason']})`;
    case 'egress.summary':
      return `egress summary: ${event['egress.summary.count']} ${event['egress.outcome']} to ${event['url.scheme']}://${event['server.address'] ?? ''}:${event['server.port']}`;
    default:
      return event['event.name'].replace('egress.', 'egress ').replace('.', ' ');
  }
}
