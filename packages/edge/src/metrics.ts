/**
 * Prometheus metrics of the edge, in a registry of its own (never prom-client's global one, so two
 * edges in one process, or an application embedding the edge, do not collide). Labels are bounded:
 * listener kinds, decision results, reason codes, close reasons; never host names or addresses.
 *
 * The families are bound ones (bound-metrics.ts): a flow updates children held per listener kind
 * ({@link EdgeMetrics.forListener}) by plain arithmetic, with no label look-up per flow.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import {
  BoundCounter,
  BoundGauge,
  BoundHistogram,
  type CounterChild,
  type GaugeChild,
  type HistogramChild,
} from './bound-metrics.js';
import type { ListenerKind } from './config.js';

/**
 * The children one listener kind updates on every connection, bound when the edge starts. The
 * (result, reason) and (outcome, close reason) children are bound on first use and kept.
 */
export class ListenerMetrics {
  readonly accepted: CounterChild;
  readonly active: GaugeChild;
  readonly connect: HistogramChild;
  readonly bytesSent: CounterChild;
  readonly bytesReceived: CounterChild;
  private readonly decisionChildren = new Map<string, CounterChild>();
  private readonly closeChildren = new Map<string, { closed: CounterChild; duration: HistogramChild }>();

  constructor(
    private readonly metrics: EdgeMetrics,
    private readonly listener: ListenerKind,
  ) {
    this.accepted = metrics.accepted.labels({ listener });
    this.active = metrics.active.labels({ listener });
    this.connect = metrics.connect.labels({ listener });
    this.bytesSent = metrics.bytes.labels({ listener, direction: 'sent' });
    this.bytesReceived = metrics.bytes.labels({ listener, direction: 'received' });
  }

  /** Counts one decision. */
  decided(result: string, reason: string): void {
    const key = `${result} ${reason}`;
    let child = this.decisionChildren.get(key);
    if (!child) {
      child = this.metrics.decisions.labels({ listener: this.listener, result, reason });
      this.decisionChildren.set(key, child);
    }
    child.value += 1;
  }

  /** Counts one flow's end: its outcome, close reason, duration and bytes. */
  closed(outcome: string, closeReason: string, seconds: number, sent: number, received: number): void {
    const key = `${outcome} ${closeReason}`;
    let pair = this.closeChildren.get(key);
    if (!pair) {
      pair = {
        closed: this.metrics.closed.labels({ listener: this.listener, outcome, close_reason: closeReason }),
        duration: this.metrics.duration.labels({ listener: this.listener, outcome }),
      };
      this.closeChildren.set(key, pair);
    }
    pair.closed.value += 1;
    pair.duration.observe(seconds);
    this.bytesSent.value += sent;
    this.bytesReceived.value += received;
  }
}

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
  readonly accepted: BoundCounter<'listener'>;
  readonly active: BoundGauge<'listener'>;
  readonly limited: BoundCounter<'listener' | 'scope'>;
  readonly decisions: BoundCounter<'listener' | 'result' | 'reason'>;
  readonly closed: BoundCounter<'listener' | 'outcome' | 'close_reason'>;
  readonly bytes: BoundCounter<'listener' | 'direction'>;
  readonly duration: BoundHistogram<'listener' | 'outcome'>;
  readonly connect: BoundHistogram<'listener'>;
  readonly reloads: BoundCounter<'result'>;
  readonly policy: BoundGauge<'hash'>;
  readonly dnsNames: BoundGauge;
  readonly draining: BoundGauge;
  private readonly perListener = new Map<ListenerKind, ListenerMetrics>();

  /**
   * @param registry Where to register. Default: a new Registry.
   * @param defaultMetrics Also collect prom-client's process metrics. Default `true`.
   */
  constructor(registry?: Registry, defaultMetrics = true) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.accepted = new BoundCounter({
      name: METRIC_NAMES.accepted,
      help: 'Connections accepted, by listener kind.',
      labelNames: ['listener'],
      registers,
    });
    this.active = new BoundGauge({
      name: METRIC_NAMES.active,
      help: 'Connections open now, by listener kind.',
      labelNames: ['listener'],
      registers,
    });
    this.limited = new BoundCounter({
      name: METRIC_NAMES.limited,
      help: 'Connections closed at accept by the total or per-source connection limit.',
      labelNames: ['listener', 'scope'],
      registers,
    });
    this.decisions = new BoundCounter({
      name: METRIC_NAMES.decisions,
      help: 'Decisions made (one per tunnel or plaintext HTTP request), by result and reason code.',
      labelNames: ['listener', 'result', 'reason'],
      registers,
    });
    this.closed = new BoundCounter({
      name: METRIC_NAMES.closed,
      help: 'Flows ended, by outcome and close reason.',
      labelNames: ['listener', 'outcome', 'close_reason'],
      registers,
    });
    this.bytes = new BoundCounter({
      name: METRIC_NAMES.bytes,
      help: 'Bytes relayed: sent (client to upstream) and received (upstream to client).',
      labelNames: ['listener', 'direction'],
      registers,
    });
    this.duration = new BoundHistogram({
      name: METRIC_NAMES.duration,
      help: 'Flow duration from accept (or request) to close.',
      labelNames: ['listener', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
      registers,
    });
    this.connect = new BoundHistogram({
      name: METRIC_NAMES.connect,
      help: 'Time to connect to the upstream.',
      labelNames: ['listener'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.reloads = new BoundCounter({
      name: METRIC_NAMES.reloads,
      help: 'Policy reload attempts: reloaded, unchanged (same hash) or rejected (old policy kept).',
      labelNames: ['result'],
      registers,
    });
    this.policy = new BoundGauge({
      name: METRIC_NAMES.policy,
      help: 'The policy in force: 1 for its hash.',
      labelNames: ['hash'],
      registers,
      // Every worker runs the same policy: 1, not the number of workers.
      aggregator: 'max',
    });
    this.dnsNames = new BoundGauge({
      name: METRIC_NAMES.dnsNames,
      help: 'Names in the resolver cache.',
      registers,
    });
    this.draining = new BoundGauge({
      name: METRIC_NAMES.draining,
      help: '1 while the edge drains (stopped accepting, waiting for flows to end).',
      registers,
      aggregator: 'max',
    });
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'egress_edge_' });
  }

  /** The children `listener` updates per connection, bound once. */
  forListener(listener: ListenerKind): ListenerMetrics {
    let m = this.perListener.get(listener);
    if (!m) {
      m = new ListenerMetrics(this, listener);
      this.perListener.set(listener, m);
    }
    return m;
  }

  /** Records the policy hash in force. */
  setPolicy(hash: string): void {
    this.policy.reset();
    this.policy.set({ hash }, 1);
  }
}
