#!/usr/bin/env node
// Preload cost of the SDK: what `node --import @egress-guard/node/register -e 0` (and `--require`) adds to
// `node -e 0`, in wall time, CPU time and peak RSS. Each command is a fresh process, run N times
// interleaved (A B C A B C ..., the order rotated each round, so that drift on a shared machine hits every
// variant alike); every figure is a median.
//
// - Wall time: measured around the spawn.
// - CPU time: user + system of all the child's threads, from process.cpuUsage() at exit, printed by a
//   tiny --require probe given to every variant (its cost cancels out). On a loaded machine it moves much
//   less than wall time does.
// - Peak RSS: GNU time (`/usr/bin/time -f %M`, KiB), which wraps every variant alike.
//
// Usage:
//   node bench/sdk-preload.mjs                          15 runs of each variant, this machine's node
//   node bench/sdk-preload.mjs --runs 30                more runs
//   node bench/sdk-preload.mjs --node /path/to/node     another node binary
//   node bench/sdk-preload.mjs --dist before=/a/dist --dist after=/b/dist
//                                                       several builds of packages/node, interleaved
//   node bench/sdk-preload.mjs --policy ./egress.yaml   another policy than the built-in one
//   node bench/sdk-preload.mjs --json                   machine-readable figures
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { median, rotate } from './lib/stats.mjs';

const DEFAULT_DIST = fileURLToPath(new URL('../packages/node/dist/', import.meta.url));
const TIME = '/usr/bin/time';
const FIGURES = ['wallMs', 'cpuMs', 'rssMiB'];

// A policy of the usual size: a few rules, a wildcard, paths, a service section. Loading it is part of
// the cost.
const POLICY = `version: 1
allow:
  - name: payments-api
    hosts: [api.stripe.com]
    schemes: [https]
  - name: internal
    hosts: ['*.internal.example.com']
    ports: [443, 8443]
    methods: [GET, POST]
    paths: ['/v1/**']
  - name: metadata-free
    addresses: [10.0.0.0/8]
    schemes: [http]
    ports: [8080]
services:
  payments:
    allow:
      - name: ledger
        hosts: [ledger.example.com]
`;

// Prints the process's CPU time at exit. Loaded first in every variant, so its cost cancels out.
const CPU_PROBE = `process.on('exit', () => {
  const u = process.cpuUsage();
  require('node:fs').writeSync(2, 'CPU_US ' + (u.user + u.system) + '\\n');
});
`;

function parseArgs(argv) {
  const opts = { runs: 15, node: process.execPath, dists: [], json: false, policy: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--runs') opts.runs = Number(argv[++i]);
    else if (arg === '--node') opts.node = argv[++i];
    else if (arg === '--dist') opts.dists.push(parseDist(argv[++i]));
    else if (arg === '--json') opts.json = true;
    else if (arg === '--policy') opts.policy = argv[++i];
    else throw new Error(`sdk-preload: unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error('sdk-preload: --runs needs a count');
  if (opts.dists.length === 0) opts.dists.push({ label: '', path: DEFAULT_DIST });
  return opts;
}

/** `label=path` or a bare path (no label). */
function parseDist(value) {
  if (!value) throw new Error('sdk-preload: --dist needs a path');
  const eq = value.indexOf('=');
  return eq > 0 ? { label: value.slice(0, eq), path: value.slice(eq + 1) } : { label: '', path: value };
}

/** The commands compared: bare node once, and the preload through each module system for each build. */
function variants(dists) {
  const list = [{ name: 'node -e 0', args: ['-e', '0'] }];
  for (const { label, path } of dists) {
    const esm = join(path, 'register.js');
    const cjs = join(path, 'register.cjs');
    for (const file of [esm, cjs])
      if (!existsSync(file)) throw new Error(`sdk-preload: no ${file}; build first`);
    const prefix = label ? `${label}: ` : '';
    list.push(
      { name: `${prefix}--import register`, args: ['--import', pathToFileURL(esm).href, '-e', '0'] },
      { name: `${prefix}--require register`, args: ['--require', cjs, '-e', '0'] },
    );
  }
  return list;
}

/** One run: wall time (ms, around the spawn), CPU time (ms) and peak RSS (MiB, from GNU time). */
function runOnce(node, args, env, probe) {
  const started = process.hrtime.bigint();
  const child = spawnSync(TIME, ['-f', 'RSS_KIB %M', node, '--require', probe, ...args], {
    env,
    encoding: 'utf8',
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (child.status !== 0)
    throw new Error(`sdk-preload: ${args.join(' ')} failed:\n${child.stderr.slice(-2000)}`);
  const rss = /RSS_KIB (\d+)/.exec(child.stderr);
  const cpu = /CPU_US (\d+)/.exec(child.stderr);
  if (!rss || !cpu) throw new Error(`sdk-preload: no RSS or CPU figure in:\n${child.stderr.slice(-2000)}`);
  return { wallMs, cpuMs: Number(cpu[1]) / 1000, rssMiB: Number(rss[1]) / 1024 };
}

function measure(opts, env, probe) {
  const list = variants(opts.dists);
  const samples = new Map(list.map((v) => [v.name, Object.fromEntries(FIGURES.map((f) => [f, []]))]));
  // One unrecorded round first: the page cache and the binary warm up for every variant alike.
  for (const v of list) runOnce(opts.node, v.args, env, probe);
  for (let round = 0; round < opts.runs; round++) {
    for (const v of rotate(list, round)) {
      const sample = runOnce(opts.node, v.args, env, probe);
      for (const f of FIGURES) samples.get(v.name)[f].push(sample[f]);
    }
  }
  return list.map((v) => {
    const s = samples.get(v.name);
    return { name: v.name, ...Object.fromEntries(FIGURES.map((f) => [f, median(s[f])])) };
  });
}

function report(results, opts) {
  const [base] = results;
  const rows = results.map((r) => ({
    ...r,
    addedMs: r.wallMs - base.wallMs,
    addedCpuMs: r.cpuMs - base.cpuMs,
    addedMiB: r.rssMiB - base.rssMiB,
  }));
  if (opts.json) {
    console.log(JSON.stringify({ node: opts.node, runs: opts.runs, dists: opts.dists, rows }, null, 2));
    return;
  }
  const version = spawnSync(opts.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(
    `node ${version}, ${opts.runs} runs each, medians; ${opts.dists.map((d) => d.path).join(', ')}`,
  );
  const width = Math.max(20, ...rows.map((r) => r.name.length));
  console.log(`${'variant'.padEnd(width)}   wall ms    +ms   CPU ms    +ms  peak RSS MiB  +MiB`);
  for (const r of rows) {
    const cells = [
      r.name.padEnd(width),
      r.wallMs.toFixed(1).padStart(8),
      r.addedMs.toFixed(1).padStart(6),
      r.cpuMs.toFixed(1).padStart(8),
      r.addedCpuMs.toFixed(1).padStart(6),
      r.rssMiB.toFixed(1).padStart(13),
      r.addedMiB.toFixed(1).padStart(6),
    ];
    console.log(cells.join('  '));
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(TIME)) throw new Error(`sdk-preload: needs GNU time at ${TIME}`);
  const dir = mkdtempSync(join(tmpdir(), 'egress-guard-preload-bench-'));
  try {
    const policy = opts.policy ?? join(dir, 'egress.yaml');
    if (!opts.policy) writeFileSync(policy, POLICY);
    const probe = join(dir, 'cpu-probe.cjs');
    writeFileSync(probe, CPU_PROBE);
    // Events go to stdout, which is discarded; NODE_OPTIONS is dropped so nothing else is preloaded.
    const env = { ...process.env, EGRESS_GUARD_POLICY: policy, EGRESS_GUARD_SERVICE: 'payments' };
    delete env.NODE_OPTIONS;
    report(measure(opts, env, probe), opts);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
