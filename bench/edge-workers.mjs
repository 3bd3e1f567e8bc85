// Edge workers: connections per second through the edge with `--workers 2` against `--workers 1`, side by
// side in one run (rounds interleaved, order rotated; the ratio is the median of per-round ratios). The
// load (bench/edge-workers-load.mjs: plain TCP, CONNECT, one byte each way) is kept as cheap as can be so
// that the edge is what limits; it still runs on the same cores as the edge, which caps what a second
// worker can add on a 2-core machine. Also reported: the edge's CPU per connection (primary and workers
// together, from /proc), and whether every connection got one decision and one completion event.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSecondsOf, NOFILE, startNode } from './lib/proc.mjs';
import { median, pairedRatio, rotate } from './lib/stats.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

/** Target: 2 workers give at least this many times the connections per second of 1. */
export const WORKERS_TARGET = 1.7;

export function workersPlan(quick) {
  return quick
    ? { rounds: 1, cps: { concurrency: 16, ms: 500, count: 5_000 }, warmupMs: 200 }
    : { rounds: 5, cps: { concurrency: 64, ms: 4_000, count: 200_000 }, warmupMs: 1_000 };
}

/** Runs the workers benchmark; `workDir` holds the policy and the event files. */
export async function runWorkersBench({ quick = false, log = console.log, workDir }) {
  const plan = workersPlan(quick);
  mkdirSync(workDir, { recursive: true });
  const load = await startNode(here('./edge-workers-load.mjs'), { nofile: NOFILE, name: 'workers load' });
  const policyFile = join(workDir, 'egress.yaml');
  writeFileSync(
    policyFile,
    `version: 1
allow:
  - name: bench-upstream
    addresses: [127.0.0.1/32]
    schemes: [tcp]
    ports: [${load.ready.upstreamPort}]
`,
  );
  const edges = {};
  const result = {
    plan,
    cps: { 1: [], 2: [] },
    cpuUsPerConnection: { 1: [], 2: [] },
    loadCpuUsPerConnection: { 1: [], 2: [] },
    errors: 0,
    logging: {},
  };
  try {
    for (const workers of [1, 2]) {
      const child = await startNode(here('./edge-workers-child.mjs'), {
        args: [JSON.stringify({ workers, policyFile, eventsFile: join(workDir, `events-${workers}.jsonl`) })],
        nofile: NOFILE,
        name: `edge (${workers} worker${workers > 1 ? 's' : ''})`,
      });
      edges[workers] = child;
      // Warm up (JIT, pools) before anything is measured.
      await load.call('cps', { port: child.ready.port, ...plan.cps, ms: plan.warmupMs });
    }
    for (let round = 0; round < plan.rounds; round++) {
      for (const workers of rotate([1, 2], round)) {
        const edge = edges[workers];
        // The edge's process tree: the primary and its workers.
        const cpu0 = cpuSecondsOf(edge.pid);
        const loadCpu0 = cpuSecondsOf(load.pid);
        const r = await load.call('cps', { port: edge.ready.port, ...plan.cps });
        const cpu1 = cpuSecondsOf(edge.pid);
        result.loadCpuUsPerConnection[workers].push(
          ((cpuSecondsOf(load.pid) - loadCpu0) * 1e6) / Math.max(1, r.connections),
        );
        result.cps[workers].push(r.cps);
        result.cpuUsPerConnection[workers].push(((cpu1 - cpu0) * 1e6) / Math.max(1, r.connections));
        result.errors += r.errors;
        if (r.errors) log(`  round ${round + 1}, ${workers} worker(s): ${r.errors} errors (${r.firstError})`);
      }
    }
    for (const workers of [1, 2]) result.logging[workers] = await edges[workers].call('events');
  } finally {
    for (const e of Object.values(edges)) await e.stop();
    await load.stop();
  }
  result.median = { 1: median(result.cps[1]), 2: median(result.cps[2]) };
  result.cpu = { 1: median(result.cpuUsPerConnection[1]), 2: median(result.cpuUsPerConnection[2]) };
  result.loadCpu = median(result.loadCpuUsPerConnection[1]);
  result.ratio = pairedRatio(result.cps[2], result.cps[1]);
  // What two cores allow at best: the one-worker run already kept `coresUsed1` of them busy (the edge's
  // main thread and its helper threads, and the load), so two workers can add at most what is left.
  result.coresUsed1 = (result.median[1] * (result.cpu[1] + result.loadCpu)) / 1e6;
  result.ceiling = Math.min(2, 2 / result.coresUsed1);
  result.target = {
    what: 'edge workers: connections per second, 2 workers vs 1 (2-core machine, load on the same cores)',
    value: `x${result.ratio.toFixed(2)} (${Math.round(result.median[2])} vs ${Math.round(result.median[1])} conn/s)`,
    target: `>= ${WORKERS_TARGET}x`,
    met: result.ratio >= WORKERS_TARGET,
  };
  return result;
}
