import * as z from 'zod';
import { REASON_CODES } from './reason-codes.js';
import { SCHEMES } from './types.js';

/**
 * The zod definition of every audit event, version 1: the one source of `schema/events-v1.json`
 * (see {@link eventJsonSchema}). A test keeps it field for field in step with the TypeScript event types.
 */

// A private registry: ids must be unique in a registry, and the global one would refuse a second copy
// of this module (an application may load both the ESM and CJS builds).
const registry = z.registry<{ id?: string; description: string }>();

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const port = z.number().int().min(0).max(65535);
const count = z.number().int().min(0);
// describe() clones, so that a shared schema (hex64, port) can carry a different description per field.
const d = <T extends z.ZodType>(schema: T, description: string): T => {
  const described = schema.describe(description) as T;
  registry.add(described, { description });
  return described;
};

const base = {
  'egress.schema': d(z.literal(1), 'Version of this schema: 1. Bumped only on incompatible changes.'),
  'egress.source': d(z.enum(['sdk', 'edge']), 'Which half wrote the event: the Node SDK or the edge filter.'),
  'service.name': d(
    z.string(),
    'OpenTelemetry service.name: the policy service whose section applied (EGRESS_GUARD_SERVICE in the SDK, the sources match at the edge).',
  ).optional(),
};

const id = d(
  z.string().min(1),
  'Correlates a decision with its completion (and with a dial-time re-decision of the same request).',
);
const hook = d(
  z.string().min(1),
  'What saw the traffic: fetch, undici, http, https, http2, net, tls, dns, a `.dial` suffix for the address check at dial time, edge.explicit, edge.transparent, edge.sni.',
);
const rule = d(
  z.string(),
  'Name of the rule that made the decision; absent when no rule matched (default deny).',
);
const serverAddress = d(
  z.string(),
  'OpenTelemetry server.address: the destination host name, normalised (lower case, A-label), or the canonical IP literal.',
);
const clientAddress = d(
  z.string(),
  'OpenTelemetry client.address: the address of the client connection (edge: the workload that connected).',
);
const sni = d(z.string(), 'OpenTelemetry tls.client.server_name: the SNI the client sent.');

/** One per request (SDK) or connection (edge). */
export const decisionEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.decision'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.id': id,
    'egress.decision': d(
      z.enum(['allowed', 'denied', 'reported']),
      'What the hook did: allowed; denied (blocked); reported (report mode: the policy would deny, the traffic went through).',
    ),
    'egress.reason': d(
      z.enum(REASON_CODES),
      'Stable reason code (docs/policy.md): allowed, or why it was (or would have been) denied.',
    ),
    'egress.rule': rule.optional(),
    'egress.mode': d(
      z.enum(['enforce', 'report']),
      'Mode in force at the decision (report turns to enforce after reportUntil).',
    ),
    'egress.policy.hash': d(hex64, 'sha256 (hex) of the canonical policy that decided.'),
    'egress.hook': hook,
    'egress.message': d(
      z.string(),
      'For people, on denials and reports: what was denied, why, and how to allow it.',
    ).optional(),
    'url.scheme': d(z.enum(SCHEMES), 'OpenTelemetry url.scheme: the policy scheme of the destination.'),
    'url.full': d(
      z.string(),
      'OpenTelemetry url.full without credentials; the query string is replaced by ?REDACTED unless logQueryStrings.',
    ).optional(),
    'url.path': d(z.string(), 'OpenTelemetry url.path, without the query string.').optional(),
    'server.address': serverAddress.optional(),
    'server.port': d(port, 'OpenTelemetry server.port: the destination port.'),
    'network.peer.address': d(
      z.string(),
      'OpenTelemetry network.peer.address: the IP address dialled, when known (dial-time checks, edge).',
    ).optional(),
    'http.request.method': d(
      z.string(),
      'OpenTelemetry http.request.method, when the hook sees HTTP (SDK; plaintext HTTP at the edge).',
    ).optional(),
    'client.address': clientAddress.optional(),
    'tls.client.server_name': sni.optional(),
  })
  .register(registry, {
    id: 'DecisionEvent',
    description: 'What was decided for one request or connection, and why.',
  });

/** One at the end of each allowed request or connection. */
export const completionEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.completion'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.id': id,
    'egress.hook': hook,
    'egress.rule': rule.optional(),
    'egress.policy.hash': d(
      z.union([hex64, z.literal('')]),
      'sha256 of the policy that decided; empty when the connection ended before any decision.',
    ),
    'egress.outcome': d(
      z.string().min(1),
      'How it ended: ok, error, timeout, circuit_open, tls, denied (a redirect or dial-time denial after the decision).',
    ),
    'egress.duration_ms': d(z.number().min(0), 'Duration in milliseconds, from the decision to the end.'),
    'server.address': serverAddress.optional(),
    'server.port': d(port, 'OpenTelemetry server.port.').optional(),
    'client.address': clientAddress.optional(),
    'http.response.status_code': d(
      z.number().int().min(0).max(999),
      'OpenTelemetry http.response.status_code.',
    ).optional(),
    'tls.protocol.version': d(
      z.string(),
      'OpenTelemetry tls.protocol.version, spelt as Node reports it (TLSv1.2, TLSv1.3); at the edge, the version the server selected.',
    ).optional(),
    'tls.client.alpn': d(z.string(), 'ALPN protocols offered, comma-separated.').optional(),
    'tls.client.server_name': sni.optional(),
    'egress.tls.client_max_version': d(
      z.string(),
      'Edge: the highest TLS version the client offered in its ClientHello.',
    ).optional(),
    'egress.bytes.sent': d(count, 'Bytes sent to the destination.').optional(),
    'egress.bytes.received': d(count, 'Bytes received from the destination.').optional(),
    'egress.close_reason': d(z.string(), 'Edge: why the connection closed.').optional(),
    'error.type': d(
      z.string(),
      'OpenTelemetry error.type: the error class or code, when it failed.',
    ).optional(),
  })
  .register(registry, {
    id: 'CompletionEvent',
    description: 'How an allowed request or connection ended: outcome, duration, bytes, status, TLS version.',
  });

/** A readable diff between two policies: rule keys `[service/]allow|deny:name`. */
export const policyDiffSchema = z
  .strictObject({
    added: d(z.array(z.string()), 'Rules in the new policy only.'),
    removed: d(z.array(z.string()), 'Rules in the old policy only.'),
    changed: d(z.array(z.string()), 'Rules in both whose canonical form differs.'),
  })
  .register(registry, {
    id: 'PolicyDiff',
    description: 'Rules added, removed and changed, each as [service/]allow|deny:name.',
  });

/** Policy loaded, reloaded or rejected. */
export const policyEventSchema = z
  .strictObject({
    'event.name': d(
      z.enum(['egress.policy.loaded', 'egress.policy.reloaded', 'egress.policy.rejected']),
      'OpenTelemetry event.name: loaded at start, reloaded (a valid new file is in force), rejected (an invalid file: the old policy stays).',
    ),
    ...base,
    'egress.policy.hash': d(
      hex64,
      'sha256 of the policy now in force (for rejected: the old one, still in force).',
    ).optional(),
    'egress.policy.previous_hash': d(hex64, 'sha256 of the policy it replaced (reloaded).').optional(),
    'egress.policy.file': d(
      z.string(),
      'Where the policy came from: the file path; absent for a policy given in code.',
    ).optional(),
    'egress.policy.diff': policyDiffSchema.optional(),
    'egress.policy.problems': d(
      z.array(z.string()),
      'Rejected: every problem of the new file, with line, column and path.',
    ).optional(),
  })
  .register(registry, {
    id: 'PolicyEvent',
    description: 'A policy was loaded, reloaded (with a diff) or rejected (with its problems).',
  });

/** A circuit breaker changed state. */
export const breakerEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.breaker.state'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.breaker.state': d(z.enum(['open', 'half_open', 'closed']), 'The new state.'),
    'egress.breaker.key': d(z.string(), 'The breaker: rule and origin, `rule|scheme://host:port`.'),
    'egress.rule': rule.optional(),
    'egress.policy.hash': d(hex64, 'sha256 of the policy in force when the state changed.').optional(),
  })
  .register(registry, {
    id: 'BreakerEvent',
    description: 'A circuit breaker opened, half-opened or closed.',
  });

/** Events were lost. */
export const droppedEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.events.dropped'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.events.dropped': d(count, 'Events dropped since the previous report.'),
    'egress.events.dropped_total': d(count, 'Events dropped since the emitter was created.'),
    'egress.events.drop_reason': d(
      z.enum(['backpressure', 'sink_error', 'sink_drop']),
      'backpressure: the destination did not keep up and the buffer bound was reached; sink_error: it failed; sink_drop: it dropped lines itself.',
    ),
    'egress.events.since': d(z.iso.datetime(), 'When the first of these drops happened (ISO 8601, UTC).'),
    'egress.policy.hash': d(
      hex64,
      'sha256 of the policy of the last event emitted before the report, when it had one.',
    ).optional(),
  })
  .register(registry, {
    id: 'DroppedEvent',
    description:
      'Written when the destination accepts writes again after a loss: how many events were dropped.',
  });

/** Summary mode: the allowed traffic of one key over one interval. */
export const summaryEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.summary'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.rule': d(z.string(), 'Name of the rule that allowed the traffic.').optional(),
    'egress.policy.hash': d(
      z.union([hex64, z.literal('')]),
      'sha256 of the policy that allowed the traffic; a reload starts new summaries.',
    ),
    'egress.outcome': d(
      z.string().min(1),
      'How the requests or connections ended: ok, error, timeout, circuit_open (the outcomes that are summarised).',
    ),
    'url.scheme': d(z.enum(SCHEMES), 'OpenTelemetry url.scheme: the policy scheme of the destination.'),
    'server.address': serverAddress.optional(),
    'server.port': d(port, 'OpenTelemetry server.port.'),
    'error.type': d(
      z.string(),
      'OpenTelemetry error.type: for outcomes other than ok, the error class or code common to the requests counted.',
    ).optional(),
    'egress.summary.start': d(z.iso.datetime(), 'Start of the interval counted (ISO 8601, UTC).'),
    'egress.summary.end': d(z.iso.datetime(), 'End of the interval counted (ISO 8601, UTC).'),
    'egress.summary.count': d(
      z.number().int().min(1),
      'Requests or connections with this rule, origin and outcome that ended in the interval.',
    ),
    'egress.bytes.sent': d(count, 'Bytes sent to the destination, in all.'),
    'egress.bytes.received': d(count, 'Bytes received from the destination, in all.'),
    'egress.summary.duration_p50_ms': d(
      z.number().min(0),
      'Median duration in milliseconds (within 2%), from the decision to the end.',
    ),
    'egress.summary.duration_p90_ms': d(
      z.number().min(0),
      '90th percentile duration in milliseconds (within 2%).',
    ),
    'egress.summary.duration_p99_ms': d(
      z.number().min(0),
      '99th percentile duration in milliseconds (within 2%).',
    ),
    'egress.summary.duration_max_ms': d(z.number().min(0), 'Longest duration in milliseconds.'),
  })
  .register(registry, {
    id: 'SummaryEvent',
    description:
      'Summary mode: the allowed traffic of one rule, origin and outcome over one interval (count, bytes, duration quantiles).',
  });

/** Edge DNS guard: one per question. */
export const dnsEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.dns'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.id': d(z.string().min(1), 'Identifies the question (one event per question).'),
    'egress.decision': d(
      z.enum(['allowed', 'denied', 'reported']),
      'allowed (forwarded); denied (answered REFUSED or NXDOMAIN without reaching the upstream, or an answer refused); reported (report mode: forwarded, would have been denied).',
    ),
    'egress.reason': d(
      z.enum(REASON_CODES),
      'Stable reason code: allowed, host_not_allowed, dns_type_not_allowed, explicit_deny, private_address (an answer), invalid_destination, upstream_unreachable, timeout.',
    ),
    'egress.rule': rule.optional(),
    'egress.mode': d(z.enum(['enforce', 'report']), 'Mode in force at the decision.'),
    'egress.policy.hash': d(hex64, 'sha256 (hex) of the canonical policy that decided.'),
    'egress.hook': hook,
    'egress.message': d(
      z.string(),
      'For people, on denials and reports: what was denied, why, and how to allow it.',
    ).optional(),
    'dns.question.name': d(
      z.string(),
      'OpenTelemetry dns.question.name: the name asked, lower case, without the trailing dot.',
    ),
    'egress.dns.type': d(z.string().min(1), 'The query type: A, AAAA, HTTPS, TXT, ... or TYPEnnn.'),
    'egress.dns.rcode': d(
      z.string().min(1),
      'The response code the client got: NOERROR, NXDOMAIN, REFUSED, SERVFAIL, FORMERR, ...',
    ),
    'egress.dns.answer_count': d(count, 'Records in the answer section the client got.'),
    'dns.answers': d(
      z.array(z.string()),
      'OpenTelemetry dns.answers: the addresses (A and AAAA records) the client got.',
    ).optional(),
    'network.transport': d(z.enum(['udp', 'tcp']), 'OpenTelemetry network.transport: udp or tcp.'),
    'client.address': clientAddress.optional(),
    'egress.duration_ms': d(z.number().min(0), 'From the question to the answer, in milliseconds.'),
    'egress.dns.label_max_length': d(
      count,
      'Refused questions: the longest label of the name in bytes (data encoded in names makes long labels).',
    ).optional(),
    'egress.dns.entropy': d(
      z.number().min(0),
      'Refused questions: Shannon entropy of the characters below the parent domain, in bits per character.',
    ).optional(),
    'egress.dns.parent': d(
      z.string(),
      'Refused questions: the parent domain the signals are counted under (the last two labels).',
    ).optional(),
    'egress.dns.parent_distinct_names': d(
      count,
      'Refused questions: distinct names asked under that parent within the window (a tunnel asks many).',
    ).optional(),
  })
  .register(registry, {
    id: 'DnsEvent',
    description:
      'Edge DNS guard: one DNS question, what was decided, the answer the client got and, when refused, exfiltration signals.',
  });

/** Edge workers: a worker process ended while the edge was running, and was replaced. */
export const workerEventSchema = z
  .strictObject({
    'event.name': d(z.literal('egress.worker.exited'), 'OpenTelemetry event.name.'),
    ...base,
    'egress.worker.id': d(
      z.number().int().min(1),
      'The worker, as numbered by the primary (node:cluster worker id; a replacement gets a new one).',
    ),
    'process.pid': d(z.number().int().min(1), 'OpenTelemetry process.pid: the process that ended.'),
    'process.exit.code': d(
      z.number().int(),
      'OpenTelemetry process.exit.code, when it exited rather than being killed by a signal.',
    ).optional(),
    'egress.worker.signal': d(
      z.string(),
      'The signal that ended it (SIGKILL, SIGSEGV, ...), if one did.',
    ).optional(),
    'egress.worker.uptime_ms': d(z.number().min(0), 'How long it ran, in milliseconds.'),
    'egress.worker.replaced_in_ms': d(
      z.number().min(0),
      'Delay before its replacement is started: 0, or longer when workers keep dying soon after they start.',
    ),
    'egress.policy.hash': d(hex64, 'sha256 of the policy in force (the replacement runs it).'),
  })
  .register(registry, {
    id: 'WorkerEvent',
    description:
      'Edge with workers: a worker process ended unexpectedly (its flows ended with it) and a replacement is started.',
  });

/** Any audit event. */
export const egressEventSchema = z.discriminatedUnion('event.name', [
  workerEventSchema,
  dnsEventSchema,
  decisionEventSchema,
  completionEventSchema,
  policyEventSchema,
  breakerEventSchema,
  droppedEventSchema,
  summaryEventSchema,
]);

/**
 * Fields of the log line around an event, written by pino or by the application's logger, and allowed
 * next to the event's own fields. Any other property without a dot (an application logger's bindings)
 * is allowed too; a dotted name that the schema does not list is an error, so a misspelt or undocumented
 * attribute fails validation.
 */
const ENVELOPE = {
  time: {
    description: 'When the line was written: ISO 8601 (egress-guard own destination) or epoch ms (a logger).',
    anyOf: [{ type: 'string' }, { type: 'number' }],
  },
  level: {
    description: 'pino level: 30 info (allowed), 40 warn (denied, reported, rejected).',
    type: 'integer',
  },
  msg: { description: 'A one-line summary for people.', type: 'string' },
  egress: { description: 'true on lines written through an application logger.', const: true },
};

/** `$id` of the published schema. */
export const EVENT_SCHEMA_ID = 'https://egress-guard.dev/schema/events-v1.json';

/**
 * The JSON Schema (draft 2020-12) of audit events, version 1: what `schema/events-v1.json` holds. Each
 * event kind is a `$defs` entry; a line validates against exactly one.
 */
export function eventJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(egressEventSchema, { metadata: registry, io: 'output' }) as {
    $defs: Record<string, Record<string, unknown>>;
  } & Record<string, unknown>;
  for (const [name, def] of Object.entries(schema.$defs)) {
    if (name === 'PolicyDiff') continue;
    def.properties = { ...(def.properties as object), ...ENVELOPE };
    def.patternProperties = { '^[^.]+$': true };
  }
  const { $schema, ...rest } = schema;
  return {
    $schema,
    $id: EVENT_SCHEMA_ID,
    title: 'egress-guard audit event, version 1',
    description:
      'One JSON line per event, written by the egress-guard SDK and edge filter. Field names follow OpenTelemetry semantic conventions where one exists, egress.* otherwise. See docs/events.md.',
    ...rest,
  };
}
