/**
 * Prometheus metrics of the edge, in a registry of its own (never prom-client's global one, so two
 * edges in one process, or an application embedding the edge, do not collide). Labels are bounded:
 * listener kinds, decision results, reason codes, close reasons; never host names or addresses.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Metric names, for docs and dashboards. */
export const METRIC_NAMES = {
  accepted: 'egress_edge_connections_accepted_total',
  active: 'egress_edge_connections_active',
  limited: 'egress_edge_connections_limited_total',
  decisions: 'egress_edge_decisions_total',
  closed: 'egress_edge_flows_closed_total',
  bytes: 'egress_edge_bytes_total',
  duration: 'egress_edge_flow_duration_seconds',
  connect: 'egress_edge_upstream_connect_seconds',
  reloads: 'egress_edge_policy_reloads_total',
  policy: 'egress_edge_policy_info',
  dnsNames: 'egress_edge_dns_cache_names',
  draining: 'egress_edge_draining',
} as const;

/** The edge's metrics and the registry that exposes them. */
export class EdgeMetrics {
  readonly registry: Registry;
  readonly accepted: Counter<'listener'>;
  readonly active: Gauge<'listener'>;
  readonly limited: Counter<'listener' | 'scope'>;
  readonly decisions: Counter<'listener' | 'result' | 'reason'>;
  readonly closed: Counter<'listener' | 'outcome' | 'close_reason'>;
  readonly bytes: Counter<'listener' | 'direction'>;
  readonly duration: Histogram<'listener' | 'outcome'>;
  readonly connect: Histogram<'listener'>;
  readonly reloads: Counter<'result'>;
  readonly policy: Gauge<'hash'>;
  readonly dnsNames: Gauge;
  readonly draining: Gauge;

  /**
   * @param registry Where to register. Default: a new Registry.
   * @param defaultMetrics Also collect prom-client's process metrics. Default `true`.
   */
  constructor(registry?: Registry, defaultMetrics = true) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.accepted = new Counter({
      name: METRIC_NAMES.accepted,
      help: 'Connections accepted, by listener kind.',
      labelNames: ['listener'],
      registers,
    });
    this.active = new Gauge({
      name: METRIC_NAMES.active,
      help: 'Connections open now, by listener kind.',
      labelNames: ['listener'],
      registers,
    });
    this.limited = new Counter({
      name: METRIC_NAMES.limited,
      help: 'Connections closed at accept by the total or per-source connection limit.',
      labelNames: ['listener', 'scope'],
      registers,
    });
    this.decisions = new Counter({
      name: METRIC_NAMES.decisions,
      help: 'Decisions made (one per tunnel or plaintext HTTP request), by result and reason code.',
      labelNames: ['listener', 'result', 'reason'],
      registers,
    });
    this.closed = new Counter({
      name: METRIC_NAMES.closed,
      help: 'Flows ended, by outcome and close reason.',
      labelNames: ['listener', 'outcome', 'close_reason'],
      registers,
    });
    this.bytes = new Counter({
      name: METRIC_NAMES.bytes,
      help: 'Bytes relayed: sent (client to upstream) and received (upstream to client).',
      labelNames: ['listener', 'direction'],
      registers,
    });
    this.duration = new Histogram({
      name: METRIC_NAMES.duration,
      help: 'Flow duration from accept (or request) to close.',
      labelNames: ['listener', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
      registers,
    });
    this.connect = new Histogram({
      name: METRIC_NAMES.connect,
      help: 'Time to connect to the upstream.',
      labelNames: ['listener'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.reloads = new Counter({
      name: METRIC_NAMES.reloads,
      help: 'Policy reload attempts: reloaded, unchanged (same hash) or rejected (old policy kept).',
      labelNames: ['result'],
      registers,
    });
    this.policy = new Gauge({
      name: METRIC_NAMES.policy,
      help: 'The policy in force: 1 for its hash.',
      labelNames: ['hash'],
      registers,
    });
    this.dnsNames = new Gauge({
      name: METRIC_NAMES.dnsNames,
      help: 'Names in the resolver cache.',
      registers,
    });
    this.draining = new Gauge({
      name: METRIC_NAMES.draining,
      help: '1 while the edge drains (stopped accepting, waiting for flows to end).',
      registers,
    });
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'egress_edge_' });
  }

  /** Records the policy hash in force. */
  setPolicy(hash: string): void {
    this.policy.reset();
    this.policy.set({ hash }, 1);
  }
}
