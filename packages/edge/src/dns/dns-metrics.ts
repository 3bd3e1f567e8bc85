/**
 * Prometheus metrics of the DNS guard, registered on the edge's own registry. Labels are bounded: query
 * types are folded to the policy's list (others are `other`), results, reason codes, response codes and
 * transports; never names or addresses.
 */
import { DNS_QUERY_TYPES } from '@egress-guard/policy';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Metric names, for docs and dashboards. */
export const DNS_METRIC_NAMES = {
  questions: 'egress_edge_dns_questions_total',
  dropped: 'egress_edge_dns_dropped_total',
  malformed: 'egress_edge_dns_malformed_total',
  exfiltration: 'egress_edge_dns_exfiltration_signals_total',
  bindings: 'egress_edge_dns_bindings_names',
} as const;

const KNOWN_TYPES: ReadonlySet<string> = new Set(DNS_QUERY_TYPES);

/** A query type as a bounded label value. */
export function typeLabel(type: string): string {
  return KNOWN_TYPES.has(type) ? type : 'other';
}

/** The DNS guard's metrics. */
export class DnsMetrics {
  /** Questions answered, by result (allowed, denied, reported), reason, response code, type, transport. */
  readonly questions: Counter<'result' | 'reason' | 'rcode' | 'type' | 'transport'>;
  /** Questions dropped without an answer: rate_limited, busy. */
  readonly dropped: Counter<'why' | 'transport'>;
  /** Messages that were not a readable query: answered FORMERR, NOTIMP or BADVERS, or dropped (`none`). */
  readonly malformed: Counter<'answer' | 'transport'>;
  /** Refused questions that look like a tunnel: long_label, high_entropy, many_names. */
  readonly exfiltration: Counter<'signal'>;
  /** Names with a live binding. */
  readonly bindings: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.questions = new Counter({
      name: DNS_METRIC_NAMES.questions,
      help: 'DNS questions answered by the guard, by result, reason code, response code, query type and transport.',
      labelNames: ['result', 'reason', 'rcode', 'type', 'transport'],
      registers,
    });
    this.dropped = new Counter({
      name: DNS_METRIC_NAMES.dropped,
      help: 'DNS questions dropped without an answer: rate_limited (the source exceeded its questions per second), busy (too many TCP connections or questions in flight).',
      labelNames: ['why', 'transport'],
      registers,
    });
    this.malformed = new Counter({
      name: DNS_METRIC_NAMES.malformed,
      help: 'DNS messages that were not a query the guard reads: answered FORMERR, NOTIMP (an opcode other than QUERY) or BADVERS, or dropped (none: no readable header, a response, oversized).',
      labelNames: ['answer', 'transport'],
      registers,
    });
    this.exfiltration = new Counter({
      name: DNS_METRIC_NAMES.exfiltration,
      help: 'Refused DNS questions with an exfiltration signal: long_label (a label of 40 bytes or more), high_entropy (over 3.5 bits per character on 16 or more characters), many_names (50 or more distinct names under one parent in the window).',
      labelNames: ['signal'],
      registers,
    });
    this.bindings = new Gauge({
      name: DNS_METRIC_NAMES.bindings,
      help: 'Names with addresses bound from DNS answers (kept for the TTL, at least --dns-min-ttl).',
      registers,
    });
  }
}
