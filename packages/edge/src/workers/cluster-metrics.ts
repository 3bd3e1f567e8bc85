/**
 * The primary's `/metrics`: every worker's registry (asked over IPC) and the primary's own, combined
 * by prom-client's `AggregatorRegistry.aggregate` (counters and histograms summed, gauges by their
 * aggregator: `max` for the policy and draining gauges, the sum for open connections). Families the
 * primary owns (policy reloads: the primary reloads once for all) are taken from the primary only. A
 * worker that does not answer within {@link CLUSTER_SCRAPE_TIMEOUT_MS} (it is dying) is left out of that
 * scrape rather than failing it.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import type { MetricsSource } from '../admin-server.js';

/** How long a scrape waits for the workers' answers. */
export const CLUSTER_SCRAPE_TIMEOUT_MS = 2000;

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

interface Scrape {
  waiting: Set<number>;
  responses: MetricsJson[];
  done: () => void;
}

/** Aggregates the workers' metrics with the primary's. */
export class ClusterMetrics implements MetricsSource {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private nextId = 0;
  private readonly scrapes = new Map<number, Scrape>();

  /**
   * @param workers The workers running now.
   * @param own The primary's registry.
   * @param primaryOwned Names of families taken from the primary only.
   */
  constructor(
    private readonly workers: () => Worker[],
    private readonly own: Registry,
    private readonly primaryOwned: ReadonlySet<string>,
  ) {}

  /** A worker's answer to scrape `id`. */
  answered(worker: Worker, id: number, metrics: unknown[]): void {
    const scrape = this.scrapes.get(id);
    if (!scrape) return;
    if (!scrape.waiting.delete(worker.id)) return;
    scrape.responses.push(metrics as MetricsJson);
    if (scrape.waiting.size === 0) scrape.done();
  }

  /** A worker exited: scrapes waiting for it go on without it. */
  gone(worker: Worker): void {
    for (const scrape of this.scrapes.values()) {
      if (scrape.waiting.delete(worker.id) && scrape.waiting.size === 0) scrape.done();
    }
  }

  async render(): Promise<string> {
    const responses = await this.ask();
    const parts = responses.map((r) => r.filter((m) => !this.primaryOwned.has(m.name)));
    parts.push((await this.own.getMetricsAsJSON()) as MetricsJson);
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  private ask(): Promise<MetricsJson[]> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      const scrape: Scrape = {
        waiting: new Set(),
        responses: [],
        done: () => {
          clearTimeout(timer);
          this.scrapes.delete(id);
          resolve(scrape.responses);
        },
      };
      const timer = setTimeout(() => scrape.done(), CLUSTER_SCRAPE_TIMEOUT_MS);
      timer.unref();
      this.scrapes.set(id, scrape);
      for (const w of this.workers()) {
        if (!w.isConnected()) continue;
        scrape.waiting.add(w.id);
        w.send({ t: 'metrics', id });
      }
      if (scrape.waiting.size === 0) scrape.done();
    });
  }
}
