// Edge figures, side by side in one run: a new TLS connection plus one small request (p50/p99 and what
// each candidate adds to direct), bulk transfer over 1 and 64 connections, connections per second, and
// RSS at 10,000 idle spliced connections. Candidates: direct; the edge as an explicit proxy (CONNECT) and
// SNI-routed; nginx stream ssl_preread, HAProxy req.ssl_sni and sniproxy (configured from bench/peers/).
// Every process is separate: load generator (edge-client.mjs), upstream (edge-upstream.mjs), edge
// (edge-child.mjs) and each peer. Runs are interleaved (each metric: A B C ... per round, order rotated).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCerts } from './lib/certs.mjs';
import { startPeerProxy } from './lib/peers.mjs';
import { cpuSecondsOf, NOFILE, rssOf, sleep, startNode } from './lib/proc.mjs';
import { newestProfile, summariseProfile } from './lib/profile.mjs';
import { median, pairedDiff, pairedRatio, rotate } from './lib/stats.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
export const NAME = 'api.bench.test';

export const EDGE_TARGETS = {
  addedP50Ms: 0.5, // added p50 latency, new TLS connection + small request
  vsNginxAdded: 1.5, // edge's added latency / nginx's added latency
  bulkVsNginx: 0.9, // edge bulk throughput / nginx's
  idleRssMB: 150, // RSS at 10,000 idle spliced connections
};

/** Idle connections: 10,000, or as many as a proxy can hold (two sockets each) under the open-file limit. */
export const IDLE_WANTED = 10_000;
export const idleCount = () => Math.min(IDLE_WANTED, Math.floor((NOFILE - 100) / 2));

export function edgePlan(quick) {
  return quick
    ? {
        runs: 1,
        latency: { count: 50, ms: 1_000, warmup: 5 },
        bulk1: { connections: 1, bytes: 16 * 2 ** 20 },
        bulk64: { connections: 64, bytes: 16 * 2 ** 20 },
        cps: { concurrency: 16, ms: 500, count: 5_000 },
        idle: { count: 200, settleMs: 300 },
        memoryRuns: 1,
      }
    : {
        runs: 5,
        latency: { count: 1_000, ms: 4_000, warmup: 30 },
        bulk1: { connections: 1, bytes: 512 * 2 ** 20 },
        bulk64: { connections: 64, bytes: 512 * 2 ** 20 },
        cps: { concurrency: 32, ms: 2_000, count: 100_000 },
        idle: { count: idleCount(), settleMs: 2_000 },
        memoryRuns: 1,
      };
}

const EDGE_LABELS = {
  direct: 'direct (no proxy)',
  'edge-connect': 'edge, explicit proxy (CONNECT)',
  'edge-sni': 'edge, SNI-routed',
};

async function startEdgeChild(upstreamPort, workDir, tag, execArgv = []) {
  return startNode(here('./edge-child.mjs'), {
    args: [JSON.stringify({ upstreamPort, eventsFile: join(workDir, `edge-events-${tag}.jsonl`) })],
    nofile: NOFILE,
    execArgv,
    name: `edge (${tag})`,
  });
}

/**
 * Runs the edge benchmark. `peers`: also run nginx, HAProxy and sniproxy (installed beforehand).
 * `profile`: profile the edge (--cpu-prof) where a target is missed.
 */
export async function runEdgeBench({
  quick = false,
  peers = !quick,
  log = console.log,
  workDir,
  profile = !quick,
} = {}) {
  const plan = edgePlan(quick);
  mkdirSync(join(workDir, 'certs'), { recursive: true });
  const certs = makeCerts(join(workDir, 'certs'), [NAME]);
  const upstream = await startNode(here('./edge-upstream.mjs'), {
    args: [certs.certPath, certs.keyPath],
    nofile: NOFILE,
    name: 'upstream',
  });
  const upstreamPort = upstream.ready.port;
  const client = await startNode(here('./edge-client.mjs'), {
    args: [certs.caPath],
    nofile: NOFILE,
    name: 'load generator',
  });
  const running = [];
  const result = { plan, candidates: [], metrics: {}, memory: [], logging: [], profiles: [], targets: [] };
  try {
    // --- the candidates, all running at once (idle ones cost nothing) ---
    const edge = await startEdgeChild(upstreamPort, workDir, 'main');
    running.push(edge);
    const cands = [
      { id: 'direct', label: EDGE_LABELS.direct, target: { kind: 'direct', port: upstreamPort } },
      {
        id: 'edge-connect',
        label: EDGE_LABELS['edge-connect'],
        target: { kind: 'connect', port: edge.ready.explicitPort, upstreamPort },
        pid: edge.pid,
      },
      {
        id: 'edge-sni',
        label: EDGE_LABELS['edge-sni'],
        target: { kind: 'sni', port: edge.ready.sniPort },
        pid: edge.pid,
      },
    ];
    if (peers) {
      for (const name of ['nginx', 'haproxy', 'sniproxy']) {
        const p = await startPeerProxy(name, { upstreamPort, name: NAME, runDir: join(workDir, 'peers') });
        running.push(p);
        cands.push({ id: name, label: p.label, target: { kind: 'sni', port: p.port }, pid: p.pid });
      }
    }
    result.candidates = cands.map(({ id, label }) => ({ id, label }));

    // --- latency, bulk, connections per second: per round, each metric over every candidate ---
    // Bulk and cps also read the proxy's CPU time (/proc, user + system, its whole process tree).
    const withCpu = async (c, run) => {
      const before = c.pid ? cpuSecondsOf(c.pid) : Number.NaN;
      const r = await run();
      return { ...r, proxyCpuS: c.pid ? cpuSecondsOf(c.pid) - before : Number.NaN };
    };
    const metrics = {
      latency: (c) => client.call('latency', { target: c.target, ...plan.latency }),
      bulk1: (c) => withCpu(c, () => client.call('bulk', { target: c.target, ...plan.bulk1 })),
      bulk64: (c) => withCpu(c, () => client.call('bulk', { target: c.target, ...plan.bulk64 })),
      cps: (c) => withCpu(c, () => client.call('cps', { target: c.target, ...plan.cps })),
    };
    const raw = Object.fromEntries(
      Object.keys(metrics).map((m) => [m, Object.fromEntries(cands.map((c) => [c.id, []]))]),
    );
    for (let r = 0; r < plan.runs; r++) {
      for (const [m, fn] of Object.entries(metrics)) {
        for (const c of rotate(cands, r)) raw[m][c.id].push(await fn(c));
      }
      log(`  edge round ${r + 1}/${plan.runs} done`);
    }
    result.metrics = summariseMetrics(cands, raw);
    const flows = (await edge.call('stats')).flows;
    const ev = await edge.call('events');
    result.logging.push({
      what: 'edge (latency, bulk, cps)',
      flows,
      ...ev,
      ok: ev.decisions === flows && ev.completions === flows && ev.dropped === 0,
    });
    for (const p of running.splice(0)) await p.stop();

    // --- memory at N idle spliced connections: each proxy started afresh ---
    const memCands = cands.filter((c) => c.id !== 'direct');
    for (let r = 0; r < plan.memoryRuns; r++) {
      for (const c of memCands) {
        const m = await measureIdle(c, {
          upstreamPort,
          workDir,
          client,
          upstream,
          plan,
          peersDir: join(workDir, 'peers-mem'),
        });
        result.memory.push(m);
        log(
          `  idle ${m.id}: ${m.alive}/${m.count} alive, RSS ${(m.rss / 2 ** 20).toFixed(1)} MB (${(m.rss0 / 2 ** 20).toFixed(1)} MB at rest)`,
        );
      }
    }
    result.memorySummary = summariseMemory(memCands, result.memory, plan.idle.count);

    // --- targets ---
    result.targets = edgeTargets(result, peers);

    // --- profiles of the edge where a target is missed ---
    if (profile) {
      const missed = new Set(result.targets.filter((t) => !t.met).map((t) => t.metric));
      const toProfile = [];
      if (missed.has('latency')) {
        toProfile.push({
          what: 'new TLS connection + small request (connections per second load), SNI-routed',
          listener: 'sni',
          op: 'cps',
          args: { ...plan.cps, ms: 5_000 },
        });
        toProfile.push({
          what: 'new TLS connection + small request (connections per second load), CONNECT',
          listener: 'connect',
          op: 'cps',
          args: { ...plan.cps, ms: 5_000 },
        });
      }
      if (missed.has('bulk'))
        toProfile.push({
          what: 'bulk transfer, 64 connections, SNI-routed',
          listener: 'sni',
          op: 'bulk',
          args: plan.bulk64,
        });
      for (const p of toProfile) {
        const dir = join(workDir, `profile-edge-${p.op}-${p.listener}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const e = await startEdgeChild(upstreamPort, workDir, `profile-${p.op}-${p.listener}`, [
          '--cpu-prof',
          `--cpu-prof-dir=${dir}`,
        ]);
        const target =
          p.listener === 'sni'
            ? { kind: 'sni', port: e.ready.sniPort }
            : { kind: 'connect', port: e.ready.explicitPort, upstreamPort };
        await client.call(p.op, { target, ...p.args, ms: 500 }); // warm-up
        const from = await e.call('now');
        const cpu0 = cpuSecondsOf(e.pid);
        const r = await client.call(p.op, { target, ...p.args });
        const cpuS = cpuSecondsOf(e.pid) - cpu0;
        const to = await e.call('now');
        await e.stop();
        const file = newestProfile(dir);
        result.profiles.push({
          ...p,
          file,
          cpuS,
          result: r,
          summary: summariseProfile(file, { top: 25, window: [from, to] }),
        });
        log(`  profiled the edge: ${p.what}`);
      }
    }
    return result;
  } finally {
    for (const p of running) await p.stop().catch(() => {});
    await client.stop();
    await upstream.stop();
  }
}

export async function measureIdle(
  c,
  { upstreamPort, workDir, client, upstream, plan, peersDir, execArgv = [] },
) {
  let proc;
  let target;
  if (c.id === 'edge-connect' || c.id === 'edge-sni') {
    proc = await startEdgeChild(upstreamPort, workDir, `idle-${c.id}`, execArgv);
    target =
      c.id === 'edge-sni'
        ? { kind: 'sni', port: proc.ready.sniPort }
        : { kind: 'connect', port: proc.ready.explicitPort, upstreamPort };
  } else {
    proc = await startPeerProxy(c.id, { upstreamPort, name: NAME, runDir: peersDir });
    target = { kind: 'sni', port: proc.port };
  }
  try {
    await sleep(500);
    const rss0 = rssOf(proc.pid);
    const upstreamBefore = (await upstream.call('stats')).open;
    const opened = await client.call('openIdle', { target, count: plan.idle.count, concurrency: 64 });
    await sleep(plan.idle.settleMs);
    const rss = rssOf(proc.pid);
    const alive = await client.call('idleAlive');
    const upstreamOpen = (await upstream.call('stats')).open - upstreamBefore;
    const edgeStats = proc.call ? await proc.call('stats') : undefined;
    await client.call('closeIdle');
    return {
      id: c.id,
      label: c.label,
      count: plan.idle.count,
      alive,
      upstreamOpen,
      edgeOpen: edgeStats?.open,
      edgeMemory: edgeStats?.memory,
      errors: opened.errors,
      firstError: opened.firstError,
      openSecs: opened.secs,
      rss0,
      rss,
      perConnection: (rss - rss0) / plan.idle.count,
      at10k: rss0 + ((rss - rss0) / plan.idle.count) * IDLE_WANTED,
    };
  } finally {
    await proc.stop();
  }
}

function summariseMetrics(cands, raw) {
  const out = {};
  const nginx = cands.some((c) => c.id === 'nginx') ? 'nginx' : undefined;
  // latency: p50/p99 medians, added p50 = median over rounds of (candidate p50 - direct p50)
  out.latency = {};
  for (const c of cands) {
    const r = raw.latency[c.id];
    out.latency[c.id] = {
      p50: median(r.map((x) => x.p50)),
      p99: median(r.map((x) => x.p99)),
      addedP50:
        c.id === 'direct'
          ? 0
          : pairedDiff(
              r.map((x) => x.p50),
              raw.latency.direct.map((x) => x.p50),
            ),
      addedP99:
        c.id === 'direct'
          ? 0
          : pairedDiff(
              r.map((x) => x.p99),
              raw.latency.direct.map((x) => x.p99),
            ),
      errors: r.reduce((s, x) => s + x.errors, 0),
      samples: r.reduce((s, x) => s + x.n, 0),
      firstError: r.find((x) => x.firstError)?.firstError,
    };
  }
  if (nginx) {
    for (const c of cands)
      out.latency[c.id].addedVsNginx = out.latency[c.id].addedP50 / out.latency.nginx.addedP50;
  }
  for (const m of ['bulk1', 'bulk64']) {
    out[m] = {};
    for (const c of cands) {
      const r = raw[m][c.id];
      const bps = r.map((x) => (x.complete ? x.bytesPerSec : Number.NaN));
      out[m][c.id] = {
        bytesPerSec: median(bps),
        vsDirect: pairedRatio(
          bps,
          raw[m].direct.map((x) => (x.complete ? x.bytesPerSec : Number.NaN)),
        ),
        vsNginx: nginx
          ? pairedRatio(
              bps,
              raw[m].nginx.map((x) => (x.complete ? x.bytesPerSec : Number.NaN)),
            )
          : undefined,
        // proxy CPU time per MiB relayed (µs)
        cpuUsPerMiB: median(r.map((x) => (x.proxyCpuS * 1e6) / (x.expected / 2 ** 20))),
        incomplete: r.filter((x) => !x.complete).length,
        firstError: r.find((x) => x.firstError)?.firstError,
      };
    }
  }
  out.cps = {};
  for (const c of cands) {
    const r = raw.cps[c.id];
    const v = r.map((x) => x.cps);
    out.cps[c.id] = {
      cps: median(v),
      vsDirect: pairedRatio(
        v,
        raw.cps.direct.map((x) => x.cps),
      ),
      vsNginx: nginx
        ? pairedRatio(
            v,
            raw.cps.nginx.map((x) => x.cps),
          )
        : undefined,
      // proxy CPU time per connection (µs)
      cpuUsPerConnection: median(r.map((x) => (x.proxyCpuS * 1e6) / x.connections)),
      errors: r.reduce((s, x) => s + x.errors, 0),
      firstError: r.find((x) => x.firstError)?.firstError,
    };
  }
  out.raw = raw;
  return out;
}

function summariseMemory(cands, memory, count) {
  const out = {};
  for (const c of cands) {
    const ms = memory.filter((m) => m.id === c.id);
    if (ms.length === 0) continue;
    out[c.id] = {
      label: c.label,
      count,
      rss: median(ms.map((m) => m.rss)),
      rss0: median(ms.map((m) => m.rss0)),
      perConnection: median(ms.map((m) => m.perConnection)),
      at10k: median(ms.map((m) => m.at10k)),
      alive: Math.min(...ms.map((m) => m.alive)),
    };
  }
  return out;
}

function edgeTargets(result, peers) {
  const t = [];
  const lat = result.metrics.latency;
  for (const id of ['edge-sni', 'edge-connect']) {
    const l = lat[id];
    const label = EDGE_LABELS[id];
    t.push({
      metric: 'latency',
      what: `${label}: added p50 latency, new TLS connection + small request`,
      value: `${l.addedP50.toFixed(3)} ms`,
      target: `< ${EDGE_TARGETS.addedP50Ms} ms`,
      met: l.addedP50 < EDGE_TARGETS.addedP50Ms,
      miss:
        l.addedP50 < EDGE_TARGETS.addedP50Ms
          ? undefined
          : `${(l.addedP50 - EDGE_TARGETS.addedP50Ms).toFixed(3)} ms over`,
    });
    if (peers) {
      const nginxAdded = lat.nginx.addedP50;
      const limit = EDGE_TARGETS.vsNginxAdded * Math.max(nginxAdded, 0);
      t.push({
        metric: 'latency',
        what: `${label}: added p50 latency vs nginx's (${nginxAdded.toFixed(3)} ms)`,
        value:
          Number.isFinite(l.addedVsNginx) && nginxAdded > 0
            ? `${l.addedVsNginx.toFixed(2)}x`
            : `${l.addedP50.toFixed(3)} ms vs ${nginxAdded.toFixed(3)} ms`,
        target: `<= ${EDGE_TARGETS.vsNginxAdded}x nginx's (${limit.toFixed(3)} ms)`,
        met: l.addedP50 <= limit,
        miss: l.addedP50 <= limit ? undefined : `${(l.addedP50 - limit).toFixed(3)} ms over`,
      });
      for (const m of ['bulk1', 'bulk64']) {
        const v = result.metrics[m][id].vsNginx;
        t.push({
          metric: 'bulk',
          what: `${label}: bulk transfer over ${m === 'bulk1' ? '1 connection' : '64 connections'} vs nginx`,
          value: `${v.toFixed(2)}x`,
          target: `>= ${EDGE_TARGETS.bulkVsNginx}x`,
          met: v >= EDGE_TARGETS.bulkVsNginx,
          miss:
            v >= EDGE_TARGETS.bulkVsNginx
              ? undefined
              : `${((1 - v / EDGE_TARGETS.bulkVsNginx) * 100).toFixed(0)}% short`,
        });
      }
    }
    const mem = result.memorySummary[id];
    if (mem) {
      const mb = mem.at10k / 2 ** 20;
      t.push({
        metric: 'memory',
        what: `${label}: RSS at 10,000 idle spliced connections${mem.count < IDLE_WANTED ? ` (measured at ${mem.count.toLocaleString('en-US')})` : ''}`,
        value: `${mb.toFixed(1)} MB`,
        target: `< ${EDGE_TARGETS.idleRssMB} MB`,
        met: mb < EDGE_TARGETS.idleRssMB && mem.alive === mem.count,
        miss:
          mb < EDGE_TARGETS.idleRssMB
            ? mem.alive === mem.count
              ? undefined
              : `${mem.count - mem.alive} connections lost`
            : `${(mb - EDGE_TARGETS.idleRssMB).toFixed(1)} MB over`,
      });
    }
  }
  return t;
}
