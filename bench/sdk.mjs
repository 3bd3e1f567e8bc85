// SDK overhead: the same client guarded (install()) and unguarded, and request-filtering-agent where it
// applies, against a loopback server in another process. Each run of each variant is a fresh child
// process (sdk-client.mjs), so patches never leak across variants; runs are interleaved (A B C A B C ...,
// the order rotated each round) and every figure is a median, every comparison a median of paired ratios.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode } from './lib/proc.mjs';
import { newestProfile, summariseProfile } from './lib/profile.mjs';
import { median, pairedRatio, rotate } from './lib/stats.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

export const SDK_CLIENTS = [
  { client: 'fetch', label: 'global fetch', variants: ['unguarded', 'guarded', 'summary'] },
  { client: 'undici', label: '`undici.request`', variants: ['unguarded', 'guarded', 'summary', 'explicit'] },
  {
    client: 'http',
    label: '`http.request`',
    variants: ['unguarded', 'guarded', 'summary', 'rfa', 'explicit'],
  },
];

export const VARIANT_LABELS = {
  unguarded: 'unguarded',
  guarded: 'guarded: `install()`',
  summary: "guarded, `audit: { allowed: 'summary' }`",
  explicit: 'guarded, explicit', // refined per client below
  rfa: 'request-filtering-agent',
};

export function variantLabel(client, variant) {
  if (variant === 'explicit')
    return client === 'http' ? 'explicit `guard.httpAgent()`' : 'explicit `guard.dispatcher()`';
  if (variant === 'rfa') return 'request-filtering-agent agent';
  return VARIANT_LABELS[variant];
}

export const SDK_TARGETS = {
  kaThroughput: 0.95, // guarded/unguarded, keep-alive
  kaP99: 1.05, // guarded p99 / unguarded p99
  newThroughput: 0.9, // guarded/unguarded, new connection per request
};

export function sdkPlan(quick) {
  return quick
    ? {
        runs: 1,
        warmup: { ms: 100, count: 200 },
        load: { ms: 300, count: 3_000, concurrency: 16 },
        latency: { ms: 200, count: 300 },
      }
    : {
        runs: 7,
        warmup: { ms: 500, count: 5_000 },
        load: { ms: 2_000, count: 200_000, concurrency: 16 },
        latency: { ms: 1_500, count: 20_000 },
      };
}

async function runClient(cfg, { execArgv = [] } = {}) {
  const child = await startNode(here('./sdk-client.mjs'), {
    args: [JSON.stringify(cfg)],
    execArgv,
    name: `sdk-client ${cfg.client}/${cfg.variant}/${cfg.mode}`,
  });
  try {
    return await child.call('run', {}, 120_000);
  } finally {
    await child.stop();
  }
}

/**
 * Runs the SDK benchmark. `log(line)` prints progress. `profile`: when true, profiles (--cpu-prof) the
 * guarded and the unguarded client of every case that misses a target, keep-alive phase only.
 */
export async function runSdkBench({ quick = false, log = console.log, workDir, profile = !quick } = {}) {
  const plan = sdkPlan(quick);
  mkdirSync(workDir, { recursive: true });
  const server = await startNode(here('./sdk-server.mjs'), { name: 'sdk-server' });
  const port = server.ready.port;
  const cases = [];
  try {
    for (const c of SDK_CLIENTS) {
      for (const mode of ['ka', 'new']) {
        const runs = Object.fromEntries(c.variants.map((v) => [v, []]));
        for (let r = 0; r < plan.runs; r++) {
          for (const variant of rotate(c.variants, r)) {
            const cfg = {
              client: c.client,
              variant,
              mode,
              port,
              eventsFile: join(workDir, `events-${c.client}-${variant}-${mode}.jsonl`),
              warmup: plan.warmup,
              load: plan.load,
              latency: plan.latency,
            };
            runs[variant].push(await runClient(cfg));
          }
        }
        const kase = summariseCase(c, mode, runs);
        cases.push(kase);
        log(caseLine(kase));
      }
    }

    const profiles = [];
    if (profile) {
      for (const kase of cases) {
        const missed = kase.targets.filter((t) => !t.met);
        if (missed.length === 0) continue;
        const dir = join(workDir, `profile-${kase.client}-${kase.mode}`);
        const one = {};
        for (const variant of ['unguarded', 'guarded']) {
          const vdir = join(dir, variant);
          rmSync(vdir, { recursive: true, force: true });
          mkdirSync(vdir, { recursive: true });
          const cfg = {
            client: kase.client,
            variant,
            mode: kase.mode,
            port,
            eventsFile: join(workDir, `events-profile-${kase.client}-${kase.mode}.jsonl`),
            warmup: plan.warmup,
            load: { ...plan.load, ms: 4_000 },
            latency: { ms: 10, count: 10 },
          };
          const result = await runClient(cfg, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${vdir}`] });
          const file = newestProfile(vdir);
          one[variant] = {
            file,
            requests: result.throughput.requests,
            cpuUsPerRequest: result.throughput.cpuUsPerRequest,
            summary: summariseProfile(file, { top: 25, window: result.throughput.window }),
          };
        }
        profiles.push({ client: kase.client, label: kase.label, mode: kase.mode, ...one });
        log(
          `  profiled ${kase.client} ${kase.mode === 'ka' ? 'keep-alive' : 'new connections'} (guarded and unguarded)`,
        );
      }
    }
    return { plan, port, cases, profiles };
  } finally {
    await server.stop();
  }
}

function summariseCase(c, mode, runs) {
  const pick = (v, f) => runs[v].map(f);
  const variants = {};
  for (const v of c.variants) {
    const rs = runs[v];
    const events = rs.map((x) => x.events).filter(Boolean);
    variants[v] = {
      label: variantLabel(c.client, v),
      rps: median(pick(v, (x) => x.throughput.rps)),
      cpuUs: median(pick(v, (x) => x.throughput.cpuUsPerRequest)),
      p50: median(pick(v, (x) => x.latency.p50)),
      p99: median(pick(v, (x) => x.latency.p99)),
      errors: rs.reduce((s, x) => s + x.throughput.errors + x.latency.errors, 0),
      firstError: rs.find((x) => x.firstError)?.firstError,
      requests: rs.reduce((s, x) => s + (x.events?.requests ?? 0), 0),
      events:
        events.length === 0
          ? undefined
          : {
              requests: events.reduce((s, e) => s + e.requests, 0),
              decisions: events.reduce((s, e) => s + e.decisions, 0),
              completions: events.reduce((s, e) => s + e.completions, 0),
              dropped: events.reduce((s, e) => s + e.dropped, 0),
              summarised: events.reduce((s, e) => s + (e.summarised ?? 0), 0),
            },
      // paired with the unguarded run of the same round
      vsUnguarded:
        v === 'unguarded'
          ? undefined
          : {
              rps: pairedRatio(
                pick(v, (x) => x.throughput.rps),
                pick('unguarded', (x) => x.throughput.rps),
              ),
              cpu: pairedRatio(
                pick(v, (x) => x.throughput.cpuUsPerRequest),
                pick('unguarded', (x) => x.throughput.cpuUsPerRequest),
              ),
              p50: pairedRatio(
                pick(v, (x) => x.latency.p50),
                pick('unguarded', (x) => x.latency.p50),
              ),
              p99: pairedRatio(
                pick(v, (x) => x.latency.p99),
                pick('unguarded', (x) => x.latency.p99),
              ),
            },
      raw: rs.map((x) => ({
        rps: x.throughput.rps,
        p50: x.latency.p50,
        p99: x.latency.p99,
        cpuUs: x.throughput.cpuUsPerRequest,
      })),
    };
  }
  if (variants.rfa) {
    for (const v of ['guarded', 'explicit']) {
      if (!variants[v]) continue;
      variants[v].vsPeer = {
        rps: pairedRatio(
          pick(v, (x) => x.throughput.rps),
          pick('rfa', (x) => x.throughput.rps),
        ),
        p99: pairedRatio(
          pick(v, (x) => x.latency.p99),
          pick('rfa', (x) => x.latency.p99),
        ),
      };
    }
  }
  const g = variants.guarded.vsUnguarded;
  const targets =
    mode === 'ka'
      ? [
          {
            what: `${c.label} keep-alive: guarded/unguarded throughput`,
            value: g.rps,
            target: `>= ${SDK_TARGETS.kaThroughput}`,
            met: g.rps >= SDK_TARGETS.kaThroughput,
            gap: g.rps / SDK_TARGETS.kaThroughput - 1,
          },
          {
            what: `${c.label} keep-alive: guarded/unguarded p99 latency`,
            value: g.p99,
            target: `<= ${SDK_TARGETS.kaP99}`,
            met: g.p99 <= SDK_TARGETS.kaP99,
            gap: g.p99 / SDK_TARGETS.kaP99 - 1,
          },
        ]
      : [
          {
            what: `${c.label} new connection per request: guarded/unguarded throughput`,
            value: g.rps,
            target: `>= ${SDK_TARGETS.newThroughput}`,
            met: g.rps >= SDK_TARGETS.newThroughput,
            gap: g.rps / SDK_TARGETS.newThroughput - 1,
          },
        ];
  // Every request must have been logged: one decision and one completion event each (request-level hooks).
  const logging = [];
  for (const [v, s] of Object.entries(variants)) {
    if (!s.events) continue;
    const connectionLevel = c.client === 'http' && v === 'explicit';
    const ok = connectionLevel
      ? s.events.dropped === 0
      : s.events.decisions === s.events.requests &&
        s.events.completions === s.events.requests &&
        s.events.dropped === 0;
    logging.push({ variant: v, connectionLevel, ok, ...s.events });
  }
  return { client: c.client, label: c.label, mode, variants, targets, logging, runs: runs.unguarded.length };
}

function caseLine(k) {
  const g = k.variants.guarded;
  const parts = Object.entries(k.variants).map(
    ([v, s]) =>
      `${v} ${Math.round(s.rps)}/s p50 ${s.p50.toFixed(3)} p99 ${s.p99.toFixed(3)} ms${s.errors ? ` (${s.errors} errors)` : ''}`,
  );
  return `  ${k.client.padEnd(6)} ${k.mode === 'ka' ? 'keep-alive' : 'new-conn  '}  ${parts.join(' | ')}  => guarded/unguarded x${g.vsUnguarded.rps.toFixed(3)} throughput, p99 x${g.vsUnguarded.p99.toFixed(3)}`;
}
