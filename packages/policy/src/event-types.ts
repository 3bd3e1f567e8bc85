import type { ReasonCode } from './reason-codes.js';
import type { Decision, Mode } from './types.js';

// The events themselves, apart from the emitter that writes them (events.ts, which re-exports all of
// this): event-sink.ts and ocsf.ts use these types, and events.ts imports both of them, so the types
// cannot live in events.ts without an import cycle.

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

/**
 * Edge DNS guard: one per question (a query the guard could read), with what was decided, what the client
 * was answered, and on refused questions the DNS exfiltration signals a SIEM can alert on.
 */
export interface DnsEvent extends BaseEvent {
  'event.name': 'egress.dns';
  'egress.id': string;
  'egress.decision': Decision['result'];
  'egress.reason': ReasonCode;
  'egress.rule'?: string | undefined;
  'egress.mode': Mode;
  'egress.policy.hash': string;
  /** `edge.dns`. */
  'egress.hook': string;
  'egress.message'?: string | undefined;
  /** OpenTelemetry dns.question.name: the name asked, lower case, without the trailing dot. */
  'dns.question.name': string;
  /** The query type (`A`, `AAAA`, `HTTPS`, `TXT`, `TYPE123`). */
  'egress.dns.type': string;
  /** The response code the client got (`NOERROR`, `NXDOMAIN`, `REFUSED`, `SERVFAIL`, ...). */
  'egress.dns.rcode': string;
  /** Records in the answer section the client got. */
  'egress.dns.answer_count': number;
  /** OpenTelemetry dns.answers: the addresses the client got (A and AAAA records). */
  'dns.answers'?: string[] | undefined;
  /** OpenTelemetry network.transport: `udp` or `tcp`. */
  'network.transport': 'udp' | 'tcp';
  'client.address'?: string | undefined;
  /** Time from the question to the answer, in milliseconds. */
  'egress.duration_ms': number;
  /** Refused questions: the longest label of the name, in bytes. */
  'egress.dns.label_max_length'?: number | undefined;
  /** Refused questions: Shannon entropy of the name's characters below its parent, bits per character. */
  'egress.dns.entropy'?: number | undefined;
  /** Refused questions: the parent domain the signals are counted under (its last two labels). */
  'egress.dns.parent'?: string | undefined;
  /** Refused questions: distinct names asked under that parent in the guard's window. */
  'egress.dns.parent_distinct_names'?: number | undefined;
}

/**
 * Edge with workers (`--workers N`): a worker process ended while the edge ran (crash, kill, out of
 * memory); the primary starts a replacement. The flows it held ended with it.
 */
export interface WorkerExitEvent extends BaseEvent {
  'event.name': 'egress.worker.exited';
  /** node:cluster's id of the worker (a replacement gets a new one). */
  'egress.worker.id': number;
  'process.pid': number;
  /** Its exit code, when it exited rather than being killed by a signal. */
  'process.exit.code'?: number | undefined;
  /** The signal that ended it, if one did. */
  'egress.worker.signal'?: string | undefined;
  'egress.worker.uptime_ms': number;
  /** Delay before the replacement starts (backoff when workers keep dying right after start). */
  'egress.worker.replaced_in_ms': number;
  'egress.policy.hash': string;
}

export type EgressEvent =
  | WorkerExitEvent
  | DnsEvent
  | DecisionEvent
  | CompletionEvent
  | PolicyEvent
  | BreakerEvent
  | DroppedEvent
  | SummaryEvent;
