/**
 * Metric families whose children are bound once and then updated by plain arithmetic. prom-client's own
 * `Counter.inc(labels)` (and its `labels()` children, which call the same path) validate the labels and
 * build a hash string from them on every call: two or three of those per flow showed in the edge's
 * profile. Here a flow holds its children (per listener kind, made when the edge starts) and an update is
 * an addition; the label work happens once per label set, and at scrape time.
 *
 * The families speak prom-client's metric protocol (`name`, `help`, `type`, `aggregator`, `get()`,
 * `reset()`), so a prom-client `Registry` renders them, `getSingleMetricAsString` finds them, and
 * `AggregatorRegistry.aggregate` sums them across worker processes like its own metrics.
 */
import type { Registry } from 'prom-client';

/** How worker processes' values are combined in the aggregated `/metrics` (prom-client's aggregators). */
export type Aggregator = 'sum' | 'max' | 'min' | 'first' | 'average' | 'omit';

/** One exported sample, as prom-client's `MetricObjectWithValues` holds it. */
interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface FamilyOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registers: Registry[];
  aggregator?: Aggregator;
}

/** The labels of a child, by name. */
export type LabelValues<L extends string> = Record<L, string>;

abstract class Family<L extends string, C> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly aggregator: Aggregator;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected children = new Map<string, { labels: LabelValues<L>; child: C }>();

  constructor(options: FamilyOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
    this.aggregator = options.aggregator ?? 'sum';
    for (const r of options.registers) r.registerMetric(this as never);
  }

  /** The child for these label values, made on first use. Hold on to it: later updates cost nothing. */
  labels(labels: LabelValues<L>): C {
    let key = '';
    for (const n of this.labelNames) key += `${labels[n]}\u0000`;
    let entry = this.children.get(key);
    if (!entry) {
      const copy = {} as LabelValues<L>;
      for (const n of this.labelNames) copy[n] = String(labels[n]);
      entry = { labels: copy, child: this.newChild() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** prom-client's protocol: the samples now. */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: Aggregator;
    values: Sample[];
  }> {
    const values: Sample[] = [];
    for (const { labels, child } of this.children.values()) this.samples(labels, child, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /**
   * prom-client's protocol (`registry.resetMetrics()`): forgets every child. A child still held elsewhere
   * is no longer exported: the edge resets only the policy gauge, whose children nobody holds.
   */
  reset(): void {
    this.children.clear();
  }

  protected abstract newChild(): C;
  protected abstract samples(labels: LabelValues<L>, child: C, into: Sample[]): void;
}

/** A counter child: `inc(n)` adds. */
export class CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

/** A counter family (`_total` name given in full). */
export class BoundCounter<L extends string = never> extends Family<L, CounterChild> {
  readonly type = 'counter' as const;
  /** Adds to the child of `labels` (a look-up: prefer a held child on hot paths). */
  inc(labels: LabelValues<L>, n = 1): void {
    this.labels(labels).value += n;
  }
  protected newChild(): CounterChild {
    return new CounterChild();
  }
  protected samples(labels: LabelValues<L>, child: CounterChild, into: Sample[]): void {
    into.push({ value: child.value, labels });
  }
}

/** A gauge child: `set`, `inc`, `dec`. */
export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

/** A gauge family. */
export class BoundGauge<L extends string = never> extends Family<L, GaugeChild> {
  readonly type = 'gauge' as const;
  /** The child of a gauge without labels, held once made. */
  private unlabelled: GaugeChild | undefined;
  override reset(): void {
    super.reset();
    this.unlabelled = undefined;
  }
  /** Sets the unlabelled value, or that of the child of `labels`. */
  set(labelsOrValue: LabelValues<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'number') {
      this.unlabelled ??= this.labels({} as LabelValues<L>);
      this.unlabelled.value = labelsOrValue;
    } else this.labels(labelsOrValue).value = value ?? 0;
  }
  /** Adds one to the child of `labels` (a look-up: prefer a held child on hot paths). */
  inc(labels: LabelValues<L>, n = 1): void {
    this.labels(labels).value += n;
  }
  /** Takes one from the child of `labels`. */
  dec(labels: LabelValues<L>, n = 1): void {
    this.labels(labels).value -= n;
  }
  protected newChild(): GaugeChild {
    return new GaugeChild();
  }
  protected samples(labels: LabelValues<L>, child: GaugeChild, into: Sample[]): void {
    into.push({ value: child.value, labels });
  }
}

/** A histogram child: `observe(v)` finds the bucket and adds; buckets are cumulated at scrape time. */
export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]! += 1;
    this.sum += v;
    this.count += 1;
  }
}

/** A histogram family with fixed upper bounds (`le`), exported as prom-client exports its own. */
export class BoundHistogram<L extends string = never> extends Family<L, HistogramChild> {
  readonly type = 'histogram' as const;
  private readonly bounds: readonly number[];
  constructor(options: FamilyOptions<L> & { buckets: readonly number[] }) {
    super(options);
    this.bounds = [...options.buckets].sort((a, b) => a - b);
  }
  /** Observes into the child of `labels` (a look-up: prefer a held child on hot paths). */
  observe(labels: LabelValues<L>, v: number): void {
    this.labels(labels).observe(v);
  }
  protected newChild(): HistogramChild {
    return new HistogramChild(this.bounds);
  }
  protected samples(labels: LabelValues<L>, child: HistogramChild, into: Sample[]): void {
    // `le` first, as prom-client writes its own histograms.
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += child.counts[i]!;
      into.push({
        metricName: `${this.name}_bucket`,
        labels: { le: this.bounds[i]!, ...labels },
        value: cumulative,
      });
    }
    into.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: child.count });
    into.push({ metricName: `${this.name}_sum`, labels, value: child.sum });
    into.push({ metricName: `${this.name}_count`, labels, value: child.count });
  }
}
