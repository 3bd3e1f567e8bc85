/**
 * The bound metric families (bound-metrics.ts) that `/metrics` renders: their Prometheus text is what
 * prom-client's own Counter, Gauge and Histogram write for the same updates, and prom-client's
 * AggregatorRegistry sums them across registries (as the workers' primary does).
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundCounter, BoundGauge, BoundHistogram } from '../src/bound-metrics.js';
import { EdgeMetrics } from '../src/metrics.js';

const BUCKETS = [0.01, 0.1, 1, 10];
const SAMPLES = [0.005, 0.01, 0.05, 0.5, 2, 20, 0.1];

function promClientText(): Promise<string> {
  const registry = new Registry();
  const registers = [registry];
  const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['a', 'b'], registers });
  const g = new Gauge({ name: 'g', help: 'g', labelNames: ['a'], registers });
  const h = new Histogram({ name: 'h', help: 'h', labelNames: ['a'], buckets: BUCKETS, registers });
  c.inc({ a: 'x', b: 'y' }, 3);
  c.inc({ a: 'x', b: 'z' });
  g.set({ a: 'x' }, 7);
  g.dec({ a: 'x' });
  for (const v of SAMPLES) h.observe({ a: 'x' }, v);
  return registry.metrics();
}

function boundText(): Promise<string> {
  const registry = new Registry();
  const registers = [registry];
  const c = new BoundCounter<'a' | 'b'>({ name: 'c_total', help: 'c', labelNames: ['a', 'b'], registers });
  const g = new BoundGauge<'a'>({ name: 'g', help: 'g', labelNames: ['a'], registers });
  const h = new BoundHistogram<'a'>({ name: 'h', help: 'h', labelNames: ['a'], buckets: BUCKETS, registers });
  // Held children, as a flow holds them.
  const cxy = c.labels({ a: 'x', b: 'y' });
  cxy.inc(3);
  c.inc({ a: 'x', b: 'z' });
  const gx = g.labels({ a: 'x' });
  gx.set(7);
  gx.dec();
  const hx = h.labels({ a: 'x' });
  for (const v of SAMPLES) hx.observe(v);
  return registry.metrics();
}

describe('bound metric families', () => {
  it("render the same Prometheus text as prom-client's own metrics", async () => {
    expect(await boundText()).toBe(await promClientText());
  });

  it('are summed across registries by AggregatorRegistry.aggregate, the policy gauge taking the maximum', async () => {
    const a = new EdgeMetrics(undefined, false);
    const b = new EdgeMetrics(undefined, false);
    for (const m of [a, b]) {
      m.setPolicy('f'.repeat(64));
      m.forListener('sni').accepted.inc();
      m.forListener('sni').decided('allowed', 'allowed');
      m.forListener('sni').closed('ok', 'client_closed', 0.2, 10, 20);
    }
    b.forListener('sni').decided('denied', 'host_not_allowed');
    const text = await AggregatorRegistry.aggregate([
      await a.registry.getMetricsAsJSON(),
      await b.registry.getMetricsAsJSON(),
    ]).metrics();
    expect(text).toContain('egress_edge_connections_accepted_total{listener="sni"} 2');
    expect(text).toContain('egress_edge_decisions_total{listener="sni",result="allowed",reason="allowed"} 2');
    expect(text).toContain(
      'egress_edge_decisions_total{listener="sni",result="denied",reason="host_not_allowed"} 1',
    );
    expect(text).toContain('egress_edge_bytes_total{listener="sni",direction="received"} 40');
    expect(text).toContain(
      'egress_edge_flow_duration_seconds_bucket{le="0.5",listener="sni",outcome="ok"} 2',
    );
    expect(text).toContain(`egress_edge_policy_info{hash="${'f'.repeat(64)}"} 1`);
  });
});
