import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import type { SonicBoom } from 'sonic-boom';
import { EgressOptionsError } from './errors.js';
import { openAuditFile } from './event-audit-file.js';
import { registerExitFlush } from './event-exit-flush.js';
import { type BoundedSink, DEFAULT_MAX_BUFFERED_BYTES, type SinkStats, sinkFor } from './event-sink.js';
import { type EgressEvent, EVENT_SCHEMA_VERSION, type EventSource } from './event-types.js';
import { toOcsf } from './ocsf.js';

export * from './event-types.js';

// Both builds: the CommonJS one has __filename, the ESM one import.meta.url.
const requireHere = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);

/** on-exit-leak-free: pino's own exit hooks, which hold what they flush weakly. */
interface OnExit {
  register<T extends object>(target: T, handler: (target: T, event: 'exit' | 'beforeExit') => void): void;
  unregister(target: object): void;
}

let pinoModule: typeof import('pino') | undefined;

/**
 * pino, loaded when a line needs it: on the default path (JSON at info, no base fields, to the emitter's
 * own destination) the emitter writes pino's line itself (see nativeLine), and an application's logger
 * brings its own pino; loading pino there (about 40 files) would only slow the start of the service.
 */
function loadPino(): typeof import('pino') {
  pinoModule ??= requireHere('pino') as typeof import('pino');
  return pinoModule;
}

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
  let logger: () => Logger;
  if (options.logger) {
    const child = options.logger.child({ egress: true });
    logger = () => child;
  } else {
    checkEnvelope(options.envelope);
    const to = sinkFor(options.destination ?? stdoutDestination(), {
      maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
    });
    sink = to;
    // Made on the first line that needs it (see loadPino): never, on the default path.
    let made: Logger | undefined;
    logger = () => {
      made ??= loadPino().default(lineOptions(options.envelope), to);
      return made;
    };
    // pino announces its configuration on the stream it writes to when it is made, and a transport
    // (pino.transport(), pino-opentelemetry-transport) may wait for that before it writes anything: for
    // a destination of the application's that can hear it, pino is made now, as it always was.
    if (typeof (options.destination as { emit?: unknown } | undefined)?.emit === 'function') logger();
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
      if (warn) logger().warn(line, msg);
      else logger()[level](line, msg);
    } else if (fastLine && sink) {
      sink.write(fastLine(fieldsJson ?? JSON.stringify(event), warn, msg));
    } else if (warn) logger().warn(event, msg);
    else logger()[level](event, msg);
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
    return flushLogger(logger(), timeoutMs);
  };
  const unregister = options.flushOnExit && sink ? registerExitFlush(sink) : undefined;

  return {
    get logger() {
      return logger();
    },
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

/** Names in `envelope.base` must not have a dot: checked when the emitter is made, pino or not. */
function checkEnvelope(envelope: LineEnvelope = {}): void {
  for (const key of Object.keys(envelope.base ?? {})) {
    if (key.includes('.'))
      throw new EgressOptionsError(
        `envelope.base: "${key}" has a dot; dotted names belong to the event schema`,
      );
  }
}

/** Pino options of a line: the event's own fields, the time, the level, a message, and `base` if asked. */
function lineOptions(envelope: LineEnvelope = {}): LoggerOptions {
  const time = loadPino().stdTimeFunctions;
  return {
    base: envelope.base ?? undefined,
    messageKey: 'msg',
    timestamp: envelope.time === 'epoch' ? time.epochTime : time.isoTime,
  };
}

/**
 * The default destination: asynchronous JSON lines on stdout, as `pino.destination({ dest: 1, sync: false })`
 * makes it (sonic-boom, without loading pino): a broken pipe (EPIPE) silences it rather than failing,
 * and it is written out on exit (synchronously) and ended when the event loop empties (`beforeExit`).
 */
function stdoutDestination(): DestinationStream {
  const { SonicBoom } = requireHere('sonic-boom') as typeof import('sonic-boom');
  const stream = new SonicBoom({ dest: 1, sync: false });
  const filterBrokenPipe = (error: NodeJS.ErrnoException): void => {
    if (error.code === 'EPIPE') {
      const noop = () => {};
      Object.assign(stream, { write: noop, end: noop, flushSync: noop, destroy: noop });
      return;
    }
    stream.removeListener('error', filterBrokenPipe);
    stream.emit('error', error);
  };
  stream.on('error', filterBrokenPipe);
  if (isMainThread) {
    const onExit = requireHere('on-exit-leak-free') as OnExit;
    onExit.register(stream, endOnExit);
    stream.on('close', () => onExit.unregister(stream));
  }
  return stream;
}

/** pino's exit handler for the destinations it makes (`autoEnd`). */
function endOnExit(stream: SonicBoom, event: string): void {
  if ((stream as SonicBoom & { destroyed?: boolean }).destroyed) return;
  if (event === 'beforeExit') {
    // The event loop is still there: use it.
    stream.flush();
    stream.on('drain', () => stream.end());
  } else stream.flushSync();
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
    case 'egress.dns':
      return event['egress.decision'] !== 'allowed';
    case 'egress.policy.rejected':
    case 'egress.events.dropped':
    case 'egress.worker.exited':
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
    case 'egress.dns':
      return (
        event['egress.message'] ??
        `egress dns ${event['egress.decision']}: ${event['dns.question.name']} ${event['egress.dns.type']} ${event['egress.dns.rcode']}`
      );
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
