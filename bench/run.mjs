// pnpm bench: every figure side by side in one run, as ratios against baselines and peers, medians of
// several interleaved runs, with the machine printed beside them; writes docs/benchmarks.md.
//   node bench/run.mjs             everything (decider, SDK, edge with nginx/HAProxy/sniproxy, edge workers,
//                                  edge resolver, DNS guard with dnsmasq/unbound), ~25 min on 2 cores
//   node bench/run.mjs --quick     harness check for CI: tiny counts, SDK + edge against direct only, no
//                                  peers, nothing written; figures are not meaningful, nothing is asserted
//   --only=decider,sdk,edge,workers,resolver,dns  run some parts (docs/benchmarks.md is not written)
//   --merge=<report.json>          with --only: the parts not run now are taken from that earlier run's
//                                  report.json, and the merged report is written (and docs/benchmarks.md,
//                                  when it then holds every part, with peers, from full runs)
//   --no-peers                     do not install the peers nor run nginx/HAProxy/sniproxy (the DNS part
//                                  still runs dnsmasq/unbound when installed); docs/benchmarks.md not written
//   --render=<report.json>         write docs/benchmarks.md again from a finished run's figures (e.g. after
//                                  editing bench/findings.md), without measuring anything; with
//                                  --out=<file>, to that file instead (e.g. to check a partial run's)
// Working files (events, rendered peer configs, CPU profiles, report.json) go to a directory of their own
// per run, bench/results/<full|only|quick>-<time>-<pid>/ (the last three of each kind are kept), so runs
// started side by side do not clobber each other.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runDeciderBench } from './decider.mjs';
import { printDns, runDnsBench } from './dns.mjs';
import { runEdgeBench } from './edge.mjs';
import { printResolver, runResolverBench } from './edge-resolver.mjs';
import { runWorkersBench } from './edge-workers.mjs';
import { machine, machineLine } from './lib/machine.mjs';
import { installPeers, peerVersions } from './lib/peers.mjs';
import { PART_KEYS, renderMarkdown } from './lib/report.mjs';
import { evaluateTargets } from './lib/targets.mjs';
import { runSdkBench } from './sdk.mjs';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const onlyArg = argv.find((a) => a.startsWith('--only='));
const only = onlyArg ? new Set(onlyArg.slice(7).split(',')) : undefined;
const wantPeers = !quick && !argv.includes('--no-peers');
const part = (p) => !only || only.has(p);
const unknown = [...(only ?? [])].filter((p) => !PART_KEYS.includes(p));
if (unknown.length) {
  console.error(`unknown part(s) ${unknown.join(', ')}: the parts are ${PART_KEYS.join(', ')}`);
  process.exit(2);
}
const mergeArg = argv.find((a) => a.startsWith('--merge='));
const mergeFrom = mergeArg ? JSON.parse(readFileSync(mergeArg.slice(8), 'utf8')) : undefined;
const started = Date.now();
const docPath = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const findingsPath = fileURLToPath(new URL('./findings.md', import.meta.url));

const renderArg = argv.find((a) => a.startsWith('--render='));
if (renderArg) {
  const saved = JSON.parse(readFileSync(renderArg.slice(9), 'utf8'));
  const out = argv.find((a) => a.startsWith('--out='))?.slice(6) ?? docPath;
  writeFileSync(out, renderMarkdown(saved, { findings: readFileSync(findingsPath, 'utf8') }));
  console.log(`wrote ${out} from ${renderArg.slice(9)} (run of ${saved.startedAt})`);
  process.exit(0);
}

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
// Runs of some parts (--only) are kept apart from full runs, so that pruning after a few partial runs
// never deletes the report.json of the last full run.
const kind = quick ? 'quick' : only ? 'only' : 'full';
const workName = `${kind}-${new Date(started).toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
const workDir = `${resultsDir}${workName}/`;
mkdirSync(workDir, { recursive: true });
try {
  const old = readdirSync(resultsDir)
    .filter((d) => d.startsWith(`${kind}-`))
    .sort()
    .slice(0, -3);
  for (const d of old) rmSync(`${resultsDir}${d}`, { recursive: true, force: true });
} catch {
  // nothing to prune
}

const m = machine();
console.log(`machine: ${machineLine(m)}${quick ? '  (quick: harness check, figures not meaningful)' : ''}`);

const report = { machine: m, quick, startedAt: new Date(started).toISOString() };

if (part('decider')) {
  const d = runDeciderBench({ quick });
  report.decider = d;
  console.log('\n## decider (one decision: exact, wildcard and CIDR rules mixed)');
  console.log(`  10 rules      median ${d.smallNs.toFixed(0)} ns`);
  console.log(
    `  10,000 rules  median ${d.largeNs.toFixed(0)} ns   ratio x${d.ratio.toFixed(2)}   target: < 1000 ns and flat`,
  );
}

if (part('sdk')) {
  console.log('\n## SDK: guarded vs unguarded, loopback HTTP server in another process');
  report.sdk = await runSdkBench({ quick, workDir: `${workDir}sdk`, log: (l) => console.log(l) });
}

// The peers (nginx, HAProxy, sniproxy for the edge; dnsmasq, unbound for the DNS guard), installed once.
let peersInstalled;
function ensurePeers() {
  if (peersInstalled !== undefined) return peersInstalled;
  console.log('\n## peers (bench/install-peers.sh)');
  peersInstalled = installPeers((l) => console.log(l));
  if (peersInstalled) report.peerVersions = peerVersions();
  return peersInstalled;
}

if (part('edge')) {
  let peers = false;
  if (wantPeers) {
    peers = ensurePeers();
    if (!peers) console.log('  peers unavailable: the edge is measured against direct only');
  }
  console.log(
    `\n## edge: direct, the edge (CONNECT and SNI-routed)${peers ? ', nginx, HAProxy, sniproxy' : ''}`,
  );
  if (!peers)
    console.log(
      `  peers (nginx, HAProxy, sniproxy) not run${quick ? ' in quick mode: a harness check, not a figure' : ''}`,
    );
  report.edge = await runEdgeBench({ quick, peers, workDir: `${workDir}edge`, log: (l) => console.log(l) });
  report.edge.peers = peers;
  printEdge(report.edge);
}

if (part('resolver')) {
  console.log(
    '\n## edge resolver: a DNS query per flow vs answers cached for their TTL (CONNECT, new TLS + small request)',
  );
  report.resolver = await runResolverBench({
    quick,
    workDir: `${workDir}resolver`,
    log: (l) => console.log(l),
  });
  printResolver(report.resolver, (l) => console.log(l));
}

if (part('workers')) {
  console.log('\n## edge workers: connections per second, --workers 2 vs --workers 1 (plain TCP CONNECT)');
  const w = await runWorkersBench({ quick, workDir: `${workDir}workers`, log: (l) => console.log(l) });
  report.workers = w;
  for (const n of [1, 2])
    console.log(
      `  ${n} worker${n > 1 ? 's' : ' '}  conn/s ${w.cps[n].map((x) => Math.round(x)).join(', ')}  median ${Math.round(w.median[n])}  edge CPU ${Math.round(w.cpu[n])} µs/conn  events ${w.logging[n].decisions}/${w.logging[n].completions}`,
    );
  console.log(
    `  median ratio x${w.ratio.toFixed(2)}; one worker (with the load, ${Math.round(w.loadCpu)} µs/conn) already kept ${w.coresUsed1.toFixed(2)} of 2 cores busy: this machine allows about x${w.ceiling.toFixed(2)}`,
  );
}

if (part('dns')) {
  if (wantPeers) ensurePeers();
  console.log(
    '\n## DNS guard: the edge, dnsmasq and unbound as allowlisting forwarders, the upstream directly',
  );
  report.dns = await runDnsBench({ quick, workDir: `${workDir}dns`, log: (l) => console.log(l) });
  printDns(report.dns, (l) => console.log(l));
}

report.machine.loadAfter = machine().load;
report.seconds = (Date.now() - started) / 1000;

if (quick) {
  console.log(
    '\n(quick mode: a harness check with tiny counts; targets are not evaluated and nothing is asserted)',
  );
} else {
  console.log('\n## targets');
  for (const t of evaluateTargets(report))
    console.log(
      `  ${t.met === undefined ? 'n/a   ' : t.met ? 'met   ' : 'MISSED'}  ${t.what}: ${t.value} (target ${t.target}, ${t.source})${t.miss ? `, ${t.miss}` : ''}`,
    );
}

if (mergeFrom) mergeInto(report, mergeFrom);
writeFileSync(`${workDir}report.json`, JSON.stringify(report, null, 1));
const complete = PART_KEYS.every((p) => report[p]);
const writeDoc =
  !quick && (mergeFrom ? complete && !mergeFrom.quick : !only) && wantPeers && report.edge?.peers;
if (writeDoc) {
  writeFileSync(docPath, renderMarkdown(report, { findings: readFileSync(findingsPath, 'utf8') }));
  console.log(`\nwrote docs/benchmarks.md`);
}
console.log(`\ndone in ${report.seconds.toFixed(0)} s; working files in bench/results/${workName}/`);

/**
 * --merge: the parts this run did not measure are taken from an earlier run's report, each part keeping
 * the figures of the run that measured it (every comparison stays within one run), and the report says
 * which parts came from which run.
 */
function mergeInto(r, earlier) {
  const mine = PART_KEYS.filter((p) => r[p]);
  const taken = PART_KEYS.filter((p) => !r[p] && earlier[p]);
  for (const p of taken) r[p] = earlier[p];
  if (!r.peerVersions && earlier.peerVersions) r.peerVersions = earlier.peerVersions;
  const before = earlier.merged ?? [
    { startedAt: earlier.startedAt, parts: PART_KEYS.filter((p) => earlier[p]) },
  ];
  r.merged = [
    ...before
      .map((m) => ({ ...m, parts: m.parts.filter((p) => taken.includes(p)) }))
      .filter((m) => m.parts.length),
    { startedAt: r.startedAt, parts: mine },
  ];
  console.log(`\nmerged: ${taken.join(', ') || 'nothing'} from the run of ${earlier.startedAt}`);
}

function printEdge(e) {
  const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
  const n0 = (x) => (Number.isFinite(x) ? Math.round(x).toString() : '-');
  const mib = (x) => (Number.isFinite(x) ? (x / 2 ** 20).toFixed(0) : 'n/a');
  console.log(
    '  candidate                         p50 ms  p99 ms  added p50  bulk x1 MiB/s  bulk x64 MiB/s  CPU µs/MiB  conn/s  CPU µs/conn',
  );
  for (const c of e.candidates) {
    const l = e.metrics.latency[c.id];
    const b64 = e.metrics.bulk64[c.id];
    const cps = e.metrics.cps[c.id];
    console.log(
      `  ${c.label.padEnd(32)} ${f3(l.p50).padStart(7)} ${f3(l.p99).padStart(7)} ${f3(l.addedP50).padStart(10)} ${mib(e.metrics.bulk1[c.id].bytesPerSec).padStart(14)} ${mib(b64.bytesPerSec).padStart(15)} ${n0(b64.cpuUsPerMiB).padStart(11)} ${n0(cps.cps).padStart(7)} ${n0(cps.cpuUsPerConnection).padStart(12)}${l.errors ? `  (${l.errors} errors: ${l.firstError})` : ''}`,
    );
  }
  for (const [id, mem] of Object.entries(e.memorySummary)) {
    console.log(
      `  idle x${mem.count}: ${id.padEnd(13)} RSS ${(mem.rss / 2 ** 20).toFixed(1)} MB (at rest ${(mem.rss0 / 2 ** 20).toFixed(1)} MB, ${(mem.perConnection / 1024).toFixed(1)} KiB per connection, ${(mem.at10k / 2 ** 20).toFixed(1)} MB at 10,000), ${mem.alive}/${mem.count} alive`,
    );
  }
  for (const l of e.logging)
    console.log(
      `  events: ${l.what}: ${l.flows} flows, ${l.decisions} decisions, ${l.completions} completions${l.ok ? '' : '  MISMATCH'}`,
    );
}
