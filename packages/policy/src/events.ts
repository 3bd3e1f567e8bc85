import pino, { type DestinationStream, type Logger } from 'pino';
import type { ReasonCode } from './reason-codes.js';
import type { Decision, Mode } from './types.js';

/** Version of the audit event schema. Bumped only on incompatible changes. */
export const EVENT_SCHEMA_VERSION = 1;

/** Which half of the product wrote the event. */
export type EventSource = 'sdk' | 'edge';

/** Fields common to every egress-guard event. OpenTelemetry names where one exists, `egress.*` otherwise. */
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
  'egress.policy.hash': string;
  /** ok, error, timeout, circuit_open, tls, denied (a redirect or dial-time denial after the decision). */
  'egress.outcome': string;
  'egress.duration_ms': number;
  'server.address'?: string | undefined;
  'server.port'?: number | undefined;
  'http.response.status_code'?: number | undefined;
  'tls.protocol.version'?: string | undefined;
  'tls.client.alpn'?: string | undefined;
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
}

export type EgressEvent = DecisionEvent | CompletionEvent | PolicyEvent | BreakerEvent;

/** Where events go: the application's pino logger, or a destination stream; default stdout. */
export interface EmitterOptions {
  /** The application's pino logger; events become child log lines with `egress: true`. */
  logger?: Logger | undefined;
  /** A pino destination (e.g. `pino.destination({ dest: 1, sync: false })`), used when no logger is given. */
  destination?: DestinationStream | undefined;
  /** Log level of allowed decisions and completions. Default `info`; denials are `warn`. */
  level?: 'trace' | 'debug' | 'info' | undefined;
}

/** Writes events. One method per event kind; denials are logged at warn. */
export interface EventEmitter {
  emit(event: EgressEvent): void;
  /** Flushes buffered output (pino's `flush`) so nothing is lost on exit. */
  flush(): Promise<void>;
  readonly logger: Logger;
}

/**
 * Creates the emitter both halves use. It never starts a transport of its own: give it the
 * application's logger or a destination, or it writes JSON lines to stdout.
 */
export function createEventEmitter(options: EmitterOptions = {}): EventEmitter {
  const logger =
    options.logger?.child({ egress: true }) ??
    pino(
      { base: undefined, messageKey: 'msg', timestamp: pino.stdTimeFunctions.isoTime },
      options.destination ?? pino.destination({ dest: 1, sync: true }),
    );
  const level = options.level ?? 'info';
  return {
    logger,
    emit(event) {
      const msg = messageOf(event);
      if (isWarning(event)) logger.warn(event, msg);
      else logger[level](event, msg);
    },
    flush() {
      return new Promise((resolve) => {
        const flush = (logger as Logger & { flush?: (cb?: (err?: Error) => void) => void }).flush;
        if (typeof flush !== 'function') return resolve();
        try {
          flush.call(logger, () => resolve());
        } catch {
          resolve();
        }
      });
    },
  };
}

function isWarning(event: EgressEvent): boolean {
  switch (event['event.name']) {
    case 'egress.decision':
      return event['egress.decision'] !== 'allowed';
    case 'egress.policy.rejected':
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
    default:
      return event['event.name'].replace('egress.', 'egress ').replace('.', ' ');
  }
}
