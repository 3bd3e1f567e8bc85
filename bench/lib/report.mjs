// docs/benchmarks.md, written by `pnpm bench` from the figures of the run (never by hand): the machine,
// the method, every target met or missed and by how much, the tables, the CPU profiles where a target is
// missed, and the analysis of those profiles (bench/findings.md, kept by hand beside the harness).
import { fmt, mdTable } from './stats.mjs';
import { cpuPerConnectionVsNginx, EDGE_GOALS, evaluateTargets, targetStatus } from './targets.mjs';

const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const mib = (x) => (Number.isFinite(x) ? `${(x / 2 ** 20).toFixed(0)}` : 'n/a');
const mb = (x) => (Number.isFinite(x) ? `${(x / 2 ** 20).toFixed(1)} MB` : 'n/a');
const int = fmt.int;

export function renderMarkdown(r, { findings = '' } = {}) {
  const out = [];
  const m = r.machine;
  out.push(
    '# Benchmarks',
    '',
    `Written by \`pnpm bench\` (bench/run.mjs) on ${r.startedAt.slice(0, 10)}, from the figures of that run; do not edit by hand (the analysis at the end comes from [bench/findings.md](../bench/findings.md)). The run took ${r.seconds < 120 ? `${Math.round(r.seconds)} seconds` : `${Math.round(r.seconds / 60)} minutes`}.`,
    '',
    '## Machine',
    '',
    `- ${m.cores} cores (${m.model}), ${m.memoryGiB.toFixed(0)} GiB memory, ${m.os}`,
    `- Node ${m.node}`,
    `- load average ${m.load.join(' ')} at the start, ${m.loadAfter?.join(' ') ?? 'n/a'} at the end (a shared machine: other work ran beside the benchmark)`,
    `- open files: ${m.nofile.soft} (hard limit ${m.nofile.hard}${m.nofile.hard < 65536 ? ', and it cannot be raised here: the container has no CAP_SYS_RESOURCE' : ''})`,
  );
  if (r.peerVersions && r.edge?.peers)
    out.push(
      `- peers (Debian packages): ${r.peerVersions.nginx} with libnginx-mod-stream, ${r.peerVersions.haproxy}, ${r.peerVersions.sniproxy}`,
    );
  out.push(
    '',
    'Absolute figures from this machine mean little: it is shared and noisy. Every comparison is a ratio (or a',
    'difference) of runs measured next to each other, in one run of the script, and every figure is a median.',
    '',
  );

  if (r.quick)
    out.push(
      '**A quick run** (`--quick`): tiny counts and no peers, a harness check; its figures are not meaningful.',
      '',
    );
  if (r.merged?.length)
    out.push(
      `Parts measured in separate runs and merged (\`--merge\`): ${r.merged.map((x) => `${x.parts.join(', ')} on ${x.startedAt.replace('T', ' ').slice(0, 16)} UTC`).join('; ')}. Every comparison is still within one part's run.`,
      '',
    );
  const notRun = PARTS.filter((p) => !r[p.key]);
  if (notRun.length)
    out.push(
      `Not run in this run (no figures, so no rows below): ${notRun.map((p) => p.name).join('; ')}.`,
      '',
    );
  out.push(
    '## Targets',
    '',
    'From the design (`benchmarks.md` in the design notes) and the issues that restate them (issue 10: the edge; issue 11: the DNS guard). "Not measured" means the run had no figure for it.',
    '',
    mdTable(
      ['what', 'figure', 'target', 'from', 'met / missed'],
      evaluateTargets(r).map((t) => [t.what, t.value, t.target, t.source, targetStatus(t)]),
    ),
    '',
  );

  out.push(...methodSection(r));
  if (r.decider) out.push(...deciderSection(r.decider));
  if (r.sdk) out.push(...sdkSection(r.sdk));
  if (r.edge) out.push(...edgeSection(r.edge));
  if (r.workers) out.push(...workersSection(r.workers));
  if (r.resolver) out.push(...resolverSection(r.resolver));
  if (r.dns) out.push(...dnsSection(r.dns));
  const analysis = findings.replace(/<!--[\s\S]*?-->/g, '').trim();
  if (analysis) out.push('## Where the time goes, and what would close the gaps', '', analysis, '');
  return `${out.join('\n')}\n`;
}

/** The parts of a run (the keys of report.json and the names `--only` takes), in the document's order. */
const PARTS = [
  { key: 'decider', name: 'decider (`decider`)' },
  { key: 'sdk', name: 'SDK overhead (`sdk`)' },
  { key: 'edge', name: 'edge against nginx, HAProxy and sniproxy (`edge`)' },
  { key: 'workers', name: 'edge workers, 2 vs 1 (`workers`)' },
  { key: 'resolver', name: 'edge resolver, cached vs a query per flow (`resolver`)' },
  { key: 'dns', name: 'DNS guard against dnsmasq and unbound (`dns`)' },
];
export const PART_KEYS = PARTS.map((p) => p.key);

/** bench/edge-workers.mjs: connections per second with 2 workers against 1, per round and as a median ratio. */
function workersSection(w) {
  const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
  return [
    '## Edge workers',
    '',
    `\`--workers 2\` against \`--workers 1\` (bench/edge-workers.mjs): ${w.plan.rounds} interleaved rounds of ${w.plan.cps.ms / 1000} s, ${w.plan.cps.concurrency} connections at a time, each a plain TCP \`CONNECT\` through the explicit listener and one byte each way (bench/edge-workers-load.mjs, one process, on the same two cores). The ratio is the median of the per-round ratios; CPU is the edge's whole process tree (primary and workers) from /proc.`,
    '',
    mdTable(
      [
        'workers',
        'conn/s per round',
        'median conn/s',
        'edge CPU µs/conn (median)',
        'decisions / completions logged',
      ],
      [1, 2].map((n) => [
        String(n),
        w.cps[n].map(int).join(', '),
        int(w.median[n]),
        int(w.cpu[n]),
        `${int(w.logging[n]?.decisions)} / ${int(w.logging[n]?.completions)}`,
      ]),
    ),
    '',
    `Median ratio: **x${w.ratio.toFixed(2)}**.${w.errors ? ` ${w.errors} connections failed.` : ''} The load generator itself used ${int(w.loadCpu)} µs of CPU per connection on the same two cores, and the one-worker run already kept ${w.coresUsed1?.toFixed(2) ?? 'n/a'} of the 2 cores busy (the edge's main thread and its helper threads, plus the load), so on this machine the ratio cannot exceed about x${w.ceiling.toFixed(2)} (2 / cores busy with one worker), however well the workers scale. Target (issue 10): 2 workers ≥ ${EDGE_GOALS.workersRatio}x one worker: ${w.ratio >= EDGE_GOALS.workersRatio ? 'met' : '**missed**'}.`,
    '',
  ];
}

const signedUs = (x) => (Number.isFinite(x) ? `${x < 0 ? '−' : '+'}${int(Math.abs(x))} µs` : 'n/a');

/** bench/edge-resolver.mjs: the edge's name resolution, answers cached for their TTL vs a query per flow. */
function resolverSection(x) {
  const c = x.candidates;
  const labels = {
    static: 'static resolver (no DNS): the floor',
    cached: 'built-in resolver, answers cached for their TTL (now)',
    'per-flow': 'a query per flow, A and AAAA (before the cache)',
  };
  const p = x.plan;
  return [
    '## Edge resolver',
    '',
    `One edge configuration three ways (bench/edge-resolver.mjs): the explicit proxy (\`CONNECT\`, new TLS connection + small request, as in the edge's connections per second), resolving the upstream's name through a loopback DNS server (TTL 3600) with the cache, with a fresh c-ares resolver per flow, or not at all. ${p.runs} interleaved rounds of ${p.cps.ms / 1000} s, ${p.cps.concurrency} connections in flight; medians; edge CPU is user + system time from /proc per connection. The "vs" columns are ratios of the medians.`,
    '',
    mdTable(
      [
        'resolver',
        'connections/s',
        'vs static',
        'edge CPU µs per connection',
        'vs static',
        'vs a query per flow',
        'DNS questions / connections',
      ],
      ['static', 'cached', 'per-flow']
        .filter((id) => c[id])
        .map((id) => [
          labels[id] + (c[id].errors ? ` (${c[id].errors} errors)` : ''),
          int(c[id].cps),
          f2(c[id].cps / c.static?.cps),
          int(c[id].cpuUsPerConnection),
          f2(c[id].cpuUsPerConnection / c.static?.cpuUsPerConnection),
          f2(c[id].cpuUsPerConnection / c['per-flow']?.cpuUsPerConnection),
          id === 'static' ? '- (no DNS)' : `${int(x.dnsQuestions[id])} / ${int(c[id].connections)}`,
        ]),
    ),
    '',
    `${x.cacheSavesUs >= 0 ? `The cache saves **${int(x.cacheSavesUs)} µs** of edge CPU per connection` : `The cache saved no edge CPU in this run (**${int(-x.cacheSavesUs)} µs more** per connection with it: noise larger than the difference)`} (cached / per-flow x${f2(x.cachedVsUncachedCpu)}); the cached resolver against no DNS at all: ${signedUs(x.cachedOverStaticUs)} per connection${x.cachedOverStaticUs < 0 ? ' (below zero: the noise of this machine is larger than its cost)' : ''}. The resolution alone, in a process of its own (bench/edge-resolver-child.mjs, ${int(p.alone.count)} resolutions ${p.alone.concurrency} at a time, same DNS server): ${f2(x.alone.cachedUs)} µs of CPU per resolution cached, ${f2(x.alone.perFlowUs)} µs with a query per flow (x${f2(x.alone.ratio)}). No target of its own: caching answers for their TTL is one of the means issue 10 names for the CPU per connection target above.`,
    '',
  ];
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const rcodes = (r) =>
  Object.entries(r ?? {})
    .map(([k, v]) => `${RCODES[k] ?? k} ${int(v)}`)
    .join(', ') || '-';

/** bench/dns.mjs: the DNS guard against dnsmasq and unbound as allowlisting forwarders. */
function dnsSection(d) {
  const by = Object.fromEntries(d.figures.map((f) => [f.id, f]));
  const peers = ['dnsmasq', 'unbound'].filter((p) => by[p]);
  const missing = ['dnsmasq', 'unbound'].filter((p) => !by[p]);
  // dns.mjs gives each candidate's q/s over the edge's (median of per-round ratios); against a peer, the
  // ratio of those (exact for an odd number of rounds, where the median of the reciprocals is the
  // reciprocal of the median).
  const vsPeer = (f, p) => (f.id === 'direct' ? Number.NaN : f.qpsVsEdge / by[p].qpsVsEdge);
  const cpu = (x) => (Number.isFinite(x) ? int(x) : '-');
  return [
    '## DNS guard',
    '',
    `The edge's DNS guard (bench/dns-edge-child.mjs: \`startEdge()\` with a DNS listener, names under \`allowed.test\` allowed, events to a file) against dnsmasq and unbound (Debian packages), each an allowlisting forwarder (names under \`allowed.test\` forwarded, every other name refused), in front of the same upstream (bench/dns-upstream.mjs, TTL 0, so nothing is answered from a cache), and the upstream asked directly. ${d.rounds} rounds of ${d.ms / 1000} s (refused names: half that), order rotated, ${d.inFlight} questions in flight over UDP from one load generator; medians of the rounds. Added latency = p50 − the upstream's p50 of the same round. CPU is the filter's user + system time (/proc) per question answered.${missing.length ? ` **${missing.join(' and ')} not run** in this run (not installed, or a quick run): no figures for them.` : ''}`,
    '',
    mdTable(
      [
        'candidate',
        'allowed q/s',
        ...peers.map((p) => `vs ${p}`),
        'CPU µs per allowed question',
        'refused q/s',
        'CPU µs per refused question',
        'p50 ms',
        'p99 ms',
        'added p50 ms',
        ...peers.map((p) => `added p50 vs ${p}'s`),
        'unanswered',
      ],
      d.figures.map((f) => [
        f.label,
        int(f.qps),
        ...peers.map((p) => (f.id === 'direct' ? '-' : f2(vsPeer(f, p)))),
        cpu(f.cpuUsPerQuestion),
        f.id === 'direct' ? '-' : int(f.refusedQps),
        cpu(f.refusedCpuUsPerQuestion),
        f3(f.p50),
        f3(f.p99),
        f.id === 'direct' ? '-' : f3(f.addedP50),
        ...peers.map((p) =>
          f.id === 'direct' || !(by[p].addedP50 > 0) ? '-' : `${f2(f.addedP50 / by[p].addedP50)}x`,
        ),
        int(f.lost),
      ]),
    ),
    '',
    mdTable(
      ['candidate', 'answers to allowed names', 'answers to refused names', 'refused names at the upstream'],
      d.figures.map((f) => [
        f.label,
        rcodes(f.rcodes),
        f.id === 'direct' ? '-' : rcodes(f.refusedRcodes),
        f.id === 'direct' || f.refusedAtUpstream === undefined ? '-' : int(f.refusedAtUpstream),
      ]),
    ),
    '',
    `The DNS guard wrote ${int(d.edgeEvents)} \`egress.dns\` events over the run, warm-up included.${
      Object.keys(d.versions ?? {}).length
        ? ` Versions: ${Object.entries(d.versions)
            .map(([k, v]) => `${k} ${v.match(/\d+(\.\d+)+/)?.[0] ?? v}`)
            .join(', ')}.`
        : ''
    }`,
    '',
  ];
}

function methodSection(r) {
  const s = r.sdk?.plan;
  const e = r.edge?.plan;
  const lines = ['## Method', ''];
  if (!s && !e) return [];
  if (s) {
    lines.push(
      `- **SDK.** A Node HTTP server (bench/sdk-server.mjs) answers \`200 ok\` on 127.0.0.1 in its own process. Each client (global \`fetch\`, \`undici.request\` from npm undici, \`http.request\` with a keep-alive \`http.Agent\`) runs in a fresh child process per run (bench/sdk-client.mjs): it is the load generator, and \`install()\` patches never leak from one variant to another. **Guarded** = \`install()\` with a policy allowing \`localhost\` on the server's port (\`privateAddresses: allow\`), events to a \`pino.destination\` file (asynchronous), counted afterwards: every request must have one decision and one completion event. **Unguarded** = the same client, no install. **request-filtering-agent** = its \`RequestFilteringHttpAgent\` (\`allowPrivateIPAddress: true\`) with \`http.request\`. Also shown: the explicit, uninstalled guard (\`guard.dispatcher()\`, \`guard.httpAgent()\`).`,
      `- Each run: warm-up (${s.warmup.ms} ms), then throughput with ${s.load.concurrency} requests in flight for ${s.load.ms} ms (at most ${int(s.load.count)} requests), with the client's CPU time per request; then latency, one request at a time for ${s.latency.ms} ms (at most ${int(s.latency.count)}): p50 and p99. **Keep-alive** reuses connections; **new connection** has the server answer \`Connection: close\`, so every request dials. ${s.runs} runs per variant, interleaved (A B C, B C A, ...); ratios are medians of per-run ratios against the unguarded run of the same round.`,
    );
  }
  if (e) {
    lines.push(
      `- **Edge.** An upstream TLS server (bench/edge-upstream.mjs, certificate from a throw-away CA made with openssl at bench time) answers a small HTTP request with 2 bytes, or \`/bulk/<n>\` with n bytes. A load generator in another process (bench/edge-client.mjs) reaches it directly, through the edge (bench/edge-child.mjs: \`startEdge()\` with an explicit-proxy listener, where the client sends \`CONNECT\` then TLS, and an SNI-routed listener; events to a file, counted), and through nginx stream \`ssl_preread\`, HAProxy \`req.ssl_sni\` and sniproxy, configured from bench/peers/ on 127.0.0.1, each with one worker/thread like the edge's one Node thread. Every connection is a full TLS 1.3 handshake with certificate verification, no session resumption.`,
      `- Per round (${e.runs} rounds, order rotated): latency, one connection at a time for up to ${int(e.latency.count)} connections or ${e.latency.ms} ms (new TLS connection + one small request, until the server closes); bulk, ${e.bulk1.bytes / 2 ** 20} MiB over 1 connection and over 64; connections per second, ${e.cps.concurrency} in flight for ${e.cps.ms} ms. "Added" latency = candidate p50 − direct p50 of the same round, median over rounds. Memory: each proxy started afresh, ${int(e.idle.count)} TLS connections opened through it and left idle, RSS (the process and its children, from /proc) read ${e.idle.settleMs} ms later.`,
    );
    if (e.idle.count < 10_000)
      lines.push(
        `- **10,000 idle connections:** a proxy holds two sockets per connection, and this machine's open-file limit is ${r.machine.nofile.hard} and cannot be raised (no CAP_SYS_RESOURCE in the container; \`prlimit\` is refused), so ${int(e.idle.count)} is the most a proxy can hold here. The RSS at 10,000 is extrapolated from the measured per-connection slope (${int(10_000 - e.idle.count)} more connections). On a machine where \`prlimit --nofile=65536\` works, the script raises the limit (its own and the children's) and measures 10,000.`,
      );
  }
  lines.push('');
  return lines;
}

function deciderSection(d) {
  return [
    '## Decider',
    '',
    mdTable(
      ['policy', 'one decision (median)', 'vs 10 rules'],
      [
        ['10 rules', `${d.smallNs.toFixed(0)} ns`, '1.00'],
        ['10,000 rules (exact, wildcard, CIDR mix)', `${d.largeNs.toFixed(0)} ns`, f2(d.ratio)],
      ],
    ),
    '',
    `Median of ${d.runs} runs of ${int(d.iterations)} decisions each.`,
    '',
  ];
}

function sdkSection(s) {
  const out = ['## SDK overhead', ''];
  for (const mode of ['ka', 'new']) {
    out.push(`### ${mode === 'ka' ? 'Keep-alive' : 'New connection per request'}`, '');
    const rows = [];
    for (const k of s.cases.filter((c) => c.mode === mode)) {
      for (const [v, x] of Object.entries(k.variants)) {
        const u = x.vsUnguarded;
        rows.push([
          k.label,
          x.label,
          int(x.rps),
          u ? f3(u.rps) : '1',
          f3(x.p50),
          f3(x.p99),
          u ? f3(u.p99) : '1',
          int(x.cpuUs),
          u ? f2(u.cpu) : '1',
          x.vsPeer ? `${f3(x.vsPeer.rps)} / ${f3(x.vsPeer.p99)}` : v === 'rfa' ? '1 / 1' : '',
        ]);
        if (x.errors) rows[rows.length - 1][1] += ` (${x.errors} errors: ${x.firstError})`;
      }
    }
    out.push(
      mdTable(
        [
          'client',
          'variant',
          'req/s',
          'req/s vs unguarded',
          'p50 ms',
          'p99 ms',
          'p99 vs unguarded',
          'client CPU µs/req',
          'CPU vs unguarded',
          'vs request-filtering-agent (req/s / p99)',
        ],
        rows,
      ),
      '',
    );
  }
  out.push('### Every request logged', '');
  const rows = [];
  for (const k of s.cases)
    for (const l of k.logging)
      rows.push([
        k.label,
        k.mode === 'ka' ? 'keep-alive' : 'new connection',
        k.variants[l.variant].label,
        int(l.requests),
        int(l.decisions),
        int(l.completions),
        int(l.dropped),
        l.connectionLevel ? 'connection-level (one decision per connection)' : l.ok ? 'yes' : '**no**',
      ]);
  out.push(
    mdTable(
      [
        'client',
        'mode',
        'variant',
        'requests',
        'decision events',
        'completion events',
        'dropped',
        'every request logged',
      ],
      rows,
    ),
    '',
  );

  if (s.profiles?.length) {
    out.push(
      '### Profiles (SDK)',
      '',
      'Where a target is missed, the guarded and the unguarded client were run again under `node --cpu-prof` (throughput phase only, same load; one run each). Self time per request, by area, then the top functions of the guarded client (built files mapped back to their TypeScript source). The profiler samples wall-clock time on the main thread: on this shared machine a process that loses its core mid-syscall charges the wait to that function (socket and file writes look dearer than they are), so read the areas and the functions in JavaScript, and take the CPU time row as the cost.',
      '',
    );
    for (const p of s.profiles) {
      out.push(`#### ${p.label}, ${p.mode === 'ka' ? 'keep-alive' : 'new connection per request'}`, '');
      const areas = new Set([
        ...p.guarded.summary.areas.map((a) => a.area),
        ...p.unguarded.summary.areas.map((a) => a.area),
      ]);
      const per = (x, area) => {
        const a = x.summary.areas.find((y) => y.area === area);
        return a ? (a.selfMs * 1000) / x.requests : 0;
      };
      const rowsA = [...areas]
        .map((a) => [a, per(p.unguarded, a), per(p.guarded, a)])
        .filter(([, u, g]) => u >= 0.5 || g >= 0.5)
        .sort((x, y) => y[2] - x[2]);
      const totU = (p.unguarded.summary.busyMs * 1000) / p.unguarded.requests;
      const totG = (p.guarded.summary.busyMs * 1000) / p.guarded.requests;
      out.push(
        mdTable(
          ['area', 'unguarded µs/req', 'guarded µs/req', 'added µs/req'],
          [
            ...rowsA.map(([a, u, g]) => [a, u.toFixed(1), g.toFixed(1), (g - u).toFixed(1)]),
            ['**all (busy)**', totU.toFixed(1), totG.toFixed(1), (totG - totU).toFixed(1)],
            [
              'CPU time of that run (process.cpuUsage)',
              p.unguarded.cpuUsPerRequest.toFixed(1),
              p.guarded.cpuUsPerRequest.toFixed(1),
              (p.guarded.cpuUsPerRequest - p.unguarded.cpuUsPerRequest).toFixed(1),
            ],
          ],
        ),
        '',
        mdTable(
          ['self %', 'µs/req', 'function', 'where'],
          p.guarded.summary.functions
            .slice(0, 15)
            .map((f) => [
              f.pct.toFixed(1),
              ((f.selfMs * 1000) / p.guarded.requests).toFixed(1),
              `\`${f.name}\``,
              f.where || '(native)',
            ]),
        ),
        '',
      );
    }
  }
  return out;
}

function edgeSection(e) {
  const out = ['## Edge', ''];
  const L = e.metrics.latency;
  const label = (id) => e.candidates.find((c) => c.id === id).label;
  out.push(
    '### New TLS connection plus one small request',
    '',
    mdTable(
      ['candidate', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', "added p50 vs nginx's"],
      e.candidates.map((c) => {
        const l = L[c.id];
        return [
          c.label + (l.errors ? ` (${l.errors} errors: ${l.firstError})` : ''),
          f3(l.p50),
          f3(l.p99),
          c.id === 'direct' ? '-' : f3(l.addedP50),
          c.id === 'direct' ? '-' : f3(l.addedP99),
          c.id === 'direct' || !Number.isFinite(l.addedVsNginx) ? '-' : `${f2(l.addedVsNginx)}x`,
        ];
      }),
    ),
    '',
    '### Bulk transfer',
    '',
    mdTable(
      [
        'candidate',
        '1 connection MiB/s',
        'vs direct',
        'vs nginx',
        '64 connections MiB/s',
        'vs direct',
        'vs nginx',
        'proxy CPU µs per MiB (1 / 64 connections)',
      ],
      e.candidates.map((c) => {
        const b1 = e.metrics.bulk1[c.id];
        const b64 = e.metrics.bulk64[c.id];
        return [
          label(c.id),
          mib(b1.bytesPerSec) + (b1.incomplete ? ` (${b1.incomplete} incomplete)` : ''),
          f2(b1.vsDirect),
          f2(b1.vsNginx),
          mib(b64.bytesPerSec) + (b64.incomplete ? ` (${b64.incomplete} incomplete)` : ''),
          f2(b64.vsDirect),
          f2(b64.vsNginx),
          c.id === 'direct' ? '-' : `${int(b1.cpuUsPerMiB)} / ${int(b64.cpuUsPerMiB)}`,
        ];
      }),
    ),
    '',
    '### Connections per second',
    '',
    mdTable(
      [
        'candidate',
        'connections/s',
        'vs direct',
        'vs nginx',
        'proxy CPU µs per connection',
        "CPU vs nginx's",
      ],
      e.candidates.map((c) => {
        const cps = e.metrics.cps[c.id];
        return [
          label(c.id),
          int(cps.cps) + (cps.errors ? ` (${cps.errors} errors)` : ''),
          f2(cps.vsDirect),
          f2(cps.vsNginx),
          c.id === 'direct' ? '-' : int(cps.cpuUsPerConnection),
          c.id === 'direct' || !e.metrics.cps.nginx ? '-' : `${f2(cpuPerConnectionVsNginx(e, c.id))}x`,
        ];
      }),
    ),
    '',
    `Bulk and connections per second load every process at once (load generator, upstream, proxy) on a 2-core machine: the proxy competes for the cores with both ends, so a proxy that costs more CPU per byte or per connection also slows the endpoints down. Proxy CPU is user + system time of the proxy's processes (from /proc) over the run, divided by what it relayed: the figure least disturbed by the other processes. "CPU vs nginx's" is the median of the per-round ratios (target: ≤ ${EDGE_GOALS.cpuVsNginx}x, issue 10).`,
    '',
  );
  const mem = e.memorySummary ?? {};
  const first = Object.values(mem)[0];
  if (first) {
    out.push(
      `### Memory at ${int(first.count)} idle spliced connections`,
      '',
      mdTable(
        [
          'candidate',
          'RSS at rest',
          `RSS with ${int(first.count)} idle`,
          'per connection',
          'RSS at 10,000 (extrapolated)',
          'connections alive',
        ],
        Object.values(mem).map((x) => [
          x.label,
          mb(x.rss0),
          mb(x.rss),
          `${(x.perConnection / 1024).toFixed(1)} KiB`,
          first.count >= 10_000 ? mb(x.rss) : mb(x.at10k),
          `${int(x.alive)} / ${int(x.count)}`,
        ]),
      ),
      '',
    );
  }
  out.push('### Every flow logged', '');
  out.push(
    mdTable(
      ['edge', 'flows', 'decision events', 'completion events', 'dropped', 'every flow logged'],
      e.logging.map((l) => [
        l.what,
        int(l.flows),
        int(l.decisions),
        int(l.completions),
        int(l.dropped),
        l.ok ? 'yes' : '**no**',
      ]),
    ),
    '',
  );
  if (e.profiles?.length) {
    out.push(
      '### Profiles (edge)',
      '',
      'The edge process under `node --cpu-prof`, over the measured phase only (one run each). Wall-clock samples of the main thread: time the process spent waiting for a core inside a syscall is charged to that call (socket and file writes look dearer than they are); the CPU time is the cost.',
      '',
    );
    for (const p of e.profiles) {
      const n = p.result.connections ?? p.result.expected;
      const unit = p.result.connections !== undefined ? 'connection' : 'MiB';
      const perUnit = p.result.connections !== undefined ? p.result.connections : p.result.expected / 2 ** 20;
      out.push(
        `#### ${p.what}`,
        '',
        `${p.result.connections !== undefined ? `${int(n)} connections at ${int(p.result.cps)}/s` : `${mib(p.result.expected)} MiB at ${mib(p.result.bytesPerSec)} MiB/s`}; the edge's main thread was sampled busy ${p.summary.busyMs.toFixed(0)} ms (${((p.summary.busyMs * 1000) / perUnit).toFixed(0)} µs per ${unit}); its CPU time (/proc, all threads) was ${(p.cpuS * 1000).toFixed(0)} ms (${((p.cpuS * 1e6) / perUnit).toFixed(0)} µs per ${unit}).`,
        '',
        `Self time by area: ${p.summary.areas
          .filter((a) => a.pct >= 1)
          .map((a) => `${a.area} ${a.pct.toFixed(0)}%`)
          .join(', ')}`,
        '',
        mdTable(
          ['self %', `µs per ${unit}`, 'function', 'where'],
          p.summary.functions
            .slice(0, 15)
            .map((f) => [
              f.pct.toFixed(1),
              ((f.selfMs * 1000) / perUnit).toFixed(1),
              `\`${f.name}\``,
              f.where || '(native)',
            ]),
        ),
        '',
      );
    }
  }
  return out;
}
