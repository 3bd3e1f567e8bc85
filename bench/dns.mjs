// The DNS guard against dnsmasq and unbound (Debian's packages, bench/install-peers.sh), each configured as
// an allowlisting forwarder (names under allowed.test forwarded, everything else refused), in front of the
// same upstream (bench/dns-upstream.mjs, TTL 0 so nothing is answered from a cache), and against the
// upstream asked directly. Measured side by side in rounds (the order rotates), medians of the rounds:
//   - questions per second with 32 questions in flight over UDP, for allowed names (forwarded) and for
//     refused names (answered by the filter itself);
//   - latency p50/p99 of allowed names, and the latency added over the upstream asked directly.
// The load generator runs in this process; the same one measures every candidate.

import { execFileSync, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as dnsPacket from 'dns-packet';
import { freePort } from './lib/peers.mjs';
import { cpuSecondsOf, sleep, startNode, startPeer } from './lib/proc.mjs';
import { median, pairedDiff, pairedRatio, percentile, rotate } from './lib/stats.mjs';

const here = fileURLToPath(new URL('./', import.meta.url));
const IN_FLIGHT = 32;

/** Whether dnsmasq and unbound are installed (bench/install-peers.sh installs them). */
export function dnsPeersAvailable() {
  const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  return { dnsmasq: has('dnsmasq'), unbound: has('unbound') };
}

/** Versions of the DNS peers, for the report. */
export function dnsPeerVersions() {
  const first = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0];
    } catch (error) {
      return String(error.stdout ?? '').split('\n')[0] || 'unknown';
    }
  };
  return { dnsmasq: first('dnsmasq', ['--version']), unbound: first('unbound', ['-V']) };
}

/**
 * Sends questions for `names(i)` to 127.0.0.1:port for `ms` milliseconds, `IN_FLIGHT` at a time, over one
 * UDP socket. Returns questions answered per second, latencies (ms) of the answered ones, the response
 * codes seen, and how many got no answer within a second (re-asked with a new ID).
 */
function load(port, names, ms) {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const pending = new Map();
    const latencies = [];
    const rcodes = {};
    let next = 0;
    let lost = 0;
    let id = 0;
    const started = performance.now();
    const deadline = started + ms;
    const ask = () => {
      if (performance.now() >= deadline) return;
      id = (id + 1) & 0xffff;
      const q = dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name: names(next++), class: 'IN' }],
      });
      pending.set(id, performance.now());
      socket.send(q, port, '127.0.0.1');
    };
    socket.on('message', (msg) => {
      const at = pending.get(msg.readUInt16BE(0));
      if (at === undefined) return;
      pending.delete(msg.readUInt16BE(0));
      latencies.push(performance.now() - at);
      const rcode = msg.readUInt16BE(2) & 0xf;
      rcodes[rcode] = (rcodes[rcode] ?? 0) + 1;
      ask();
    });
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const [k, at] of pending) {
        if (now - at > 1000) {
          pending.delete(k);
          lost++;
          ask();
        }
      }
    }, 100);
    socket.bind(0, '127.0.0.1', () => {
      for (let i = 0; i < IN_FLIGHT; i++) ask();
    });
    setTimeout(() => {
      clearInterval(sweep);
      socket.close();
      const seconds = (performance.now() - started) / 1000;
      resolve({ qps: latencies.length / seconds, latencies: Float64Array.from(latencies), rcodes, lost });
    }, ms + 50);
  });
}

function render(template, vars, out) {
  let text = readFileSync(join(here, 'peers', template), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{{${k}}}`, String(v));
  writeFileSync(out, text);
  return out;
}

async function startCandidates(upstreamPort, workDir, peers, log) {
  const candidates = [
    { id: 'direct', label: 'upstream asked directly', port: upstreamPort, stop: async () => {} },
  ];
  const edge = await startNode(join(here, 'dns-edge-child.mjs'), {
    args: [JSON.stringify({ upstreamPort, eventsFile: join(workDir, 'dns-events.jsonl') })],
    // BENCH_DNS_PROFILE=1: a CPU profile of the edge process in the run's directory.
    execArgv: process.env.BENCH_DNS_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${workDir}`] : [],
    name: 'dns-edge',
  });
  candidates.push({
    id: 'edge',
    label: 'egress-guard DNS guard',
    port: edge.ready.port,
    stop: () => edge.stop(),
    proc: edge,
    pid: edge.pid,
  });
  if (peers.dnsmasq) {
    const port = await freePort();
    const dnsmasq = await startPeer(
      'dnsmasq',
      'dnsmasq',
      [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--cache-size=0',
        '--dns-forward-max=1000',
        '--pid-file=',
        '--user=root',
        `--server=/allowed.test/127.0.0.1#${upstreamPort}`,
        // Every other name: refused (dnsmasq answers NXDOMAIN for an address=/domain/ with no address).
        '--address=/#/',
      ],
      { port },
    );
    candidates.push({
      id: 'dnsmasq',
      label: 'dnsmasq (allowlist forwarder)',
      port,
      stop: () => dnsmasq.stop(),
      pid: dnsmasq.pid,
    });
  } else log('  dnsmasq not installed: skipped (bench/install-peers.sh)');
  if (peers.unbound) {
    const port = await freePort();
    const dir = join(workDir, 'unbound');
    mkdirSync(dir, { recursive: true });
    const conf = render('unbound.conf', { port, upstreamPort, dir }, join(dir, 'unbound.conf'));
    const unbound = await startPeer('unbound', 'unbound', ['-d', '-c', conf], { port });
    candidates.push({
      id: 'unbound',
      label: 'unbound (allowlist forwarder)',
      port,
      stop: () => unbound.stop(),
      pid: unbound.pid,
    });
  } else log('  unbound not installed: skipped (bench/install-peers.sh)');
  return candidates;
}

/** Runs the DNS benchmark; returns the figures (medians of rounds, paired ratios and differences). */
export async function runDnsBench({ quick = false, workDir, log = console.log }) {
  mkdirSync(workDir, { recursive: true });
  const rounds = quick ? 1 : 5;
  const ms = quick ? 300 : 2500;
  const peers = quick ? { dnsmasq: false, unbound: false } : dnsPeersAvailable();
  const upstream = await startNode(join(here, 'dns-upstream.mjs'), { name: 'dns-upstream' });
  const candidates = await startCandidates(upstream.ready.port, workDir, peers, log);
  const allowed = (i) => `n${i % 1000}.allowed.test`;
  const refused = (i) => `x${i % 1000}.blocked.test`;
  const runs = Object.fromEntries(
    candidates.map((c) => [
      c.id,
      {
        qps: [],
        refusedQps: [],
        p50: [],
        p99: [],
        cpuUs: [],
        refusedCpuUs: [],
        lost: 0,
        rcodes: {},
        refused: 0,
        refusedAtUpstream: 0,
      },
    ]),
  );
  try {
    // Warm-up: every candidate, once, briefly.
    for (const c of candidates) await load(c.port, allowed, 200);
    for (let round = 0; round < rounds; round++) {
      for (const c of rotate(candidates, round)) {
        // The filter's own CPU time (user + system, /proc) per question answered; not for the upstream.
        const cpu = (measure) => async () => {
          if (!c.pid) return { ...(await measure()), cpuUs: Number.NaN };
          const before = cpuSecondsOf(c.pid);
          const out = await measure();
          out.cpuUs = ((cpuSecondsOf(c.pid) - before) * 1e6) / out.latencies.length;
          return out;
        };
        const a = await cpu(() => load(c.port, allowed, ms))();
        const leaked0 = await upstream.call('blocked');
        const r =
          c.id === 'direct' ? undefined : await cpu(() => load(c.port, refused, Math.floor(ms / 2)))();
        const run = runs[c.id];
        // Refused names that reached the upstream while this filter was asked them (the only refused names
        // asked since the count before: the previous filter's were asked a whole allowed load earlier).
        run.refusedAtUpstream += (await upstream.call('blocked')) - leaked0;
        run.cpuUs.push(a.cpuUs);
        run.qps.push(a.qps);
        run.p50.push(percentile(a.latencies, 50));
        run.p99.push(percentile(a.latencies, 99));
        run.lost += a.lost;
        for (const [k, v] of Object.entries(a.rcodes)) run.rcodes[k] = (run.rcodes[k] ?? 0) + v;
        if (r) {
          run.refusedQps.push(r.qps);
          run.refusedCpuUs.push(r.cpuUs);
          run.refused += r.latencies.length;
          run.refusedRcodes ??= {};
          for (const [k, v] of Object.entries(r.rcodes))
            run.refusedRcodes[k] = (run.refusedRcodes[k] ?? 0) + v;
        }
        await sleep(50);
      }
    }
    const edge = candidates.find((c) => c.id === 'edge');
    runs.edge.events = await edge.proc.call('events');
  } finally {
    for (const c of candidates) await c.stop();
    await upstream.stop();
  }
  const figures = candidates.map((c) => {
    const r = runs[c.id];
    return {
      id: c.id,
      label: c.label,
      qps: median(r.qps),
      refusedQps: median(r.refusedQps),
      p50: median(r.p50),
      p99: median(r.p99),
      cpuUsPerQuestion: median(r.cpuUs),
      refusedCpuUsPerQuestion: median(r.refusedCpuUs),
      addedP50: pairedDiff(r.p50, runs.direct.p50),
      qpsVsEdge: pairedRatio(r.qps, runs.edge.qps),
      lost: r.lost,
      rcodes: r.rcodes,
      refusedRcodes: r.refusedRcodes,
      refused: c.id === 'direct' ? undefined : r.refused,
      refusedAtUpstream: c.id === 'direct' ? undefined : r.refusedAtUpstream,
    };
  });
  return {
    rounds,
    ms,
    inFlight: IN_FLIGHT,
    figures,
    // Refused names the upstream saw, whichever filter forwarded them: 0 when every filter refused them.
    refusedAtUpstream: figures.reduce((n, f) => n + (f.refusedAtUpstream ?? 0), 0),
    edgeEvents: runs.edge.events,
    versions: quick ? {} : dnsPeerVersions(),
  };
}

/** Prints the figures as a table. */
export function printDns(d, log = console.log) {
  const f = (x, n = 3) => (Number.isFinite(x) ? x.toFixed(n) : '-');
  log(`  ${d.rounds} rounds of ${d.ms} ms, ${d.inFlight} questions in flight, UDP, medians`);
  log(
    '  candidate                          allowed q/s  refused q/s  p50 ms  p99 ms  added p50 ms  q/s vs edge  lost',
  );
  for (const c of d.figures) {
    log(
      `  ${c.label.padEnd(34)} ${f(c.qps, 0).padStart(11)} ${f(c.refusedQps, 0).padStart(12)} ${f(c.p50).padStart(7)} ${f(c.p99).padStart(7)} ${f(c.addedP50).padStart(13)} ${f(c.qpsVsEdge, 2).padStart(12)} ${String(c.lost).padStart(5)}`,
    );
  }
  const codes = (r) =>
    Object.entries(r ?? {})
      .map(([k, v]) => `${['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'][k] ?? k} ${v}`)
      .join(', ');
  for (const c of d.figures)
    log(
      `  ${c.id}: allowed answered ${codes(c.rcodes)}${c.refusedRcodes ? `; refused answered ${codes(c.refusedRcodes)}, ${c.refusedAtUpstream} reached the upstream` : ''}${Number.isFinite(c.cpuUsPerQuestion) ? `; CPU ${f(c.cpuUsPerQuestion, 0)} µs per allowed question, ${f(c.refusedCpuUsPerQuestion, 0)} per refused` : ''}`,
    );
  log(`  edge events: ${d.edgeEvents} egress.dns events written`);
  for (const [k, v] of Object.entries(d.versions ?? {})) log(`  ${k}: ${v}`);
}

// `node bench/dns.mjs [--quick]`: this part alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick');
  const workDir = join(here, 'results', `dns-${Date.now()}-${process.pid}`);
  const d = await runDnsBench({ quick, workDir });
  printDns(d);
}
