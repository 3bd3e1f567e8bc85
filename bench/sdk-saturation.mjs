// Audit under saturation: a guarded service at its maximum (100 requests in flight) for N seconds, its
// events going to a file, to stdout piped to a reader, or to a reader slower than the service. Reports
// the requests made, the event lines that arrived (each line parsed), the emitter's stats, the loss, the
// client's peak RSS (sampled every 250 ms) and its CPU.
//
//   node bench/sdk-saturation.mjs [--seconds 60] [--sink file|stdout|slow] [--concurrency 100]
//        [--client undici|fetch] [--slow-rate 262144] [--runs 1] [--json] [--trace] [--node-arg=--heap-prof ...]
//        [--dist packages/node/dist]
//
// Three processes, so that the figures are the client's alone: this one (the orchestrator, and the
// reader of the client's stdout for `stdout` and `slow`), the loopback keep-alive server, and the client,
// which runs install() from the built packages/node/dist with a policy allowing 127.0.0.1 by an
// `addresses` rule. `slow`: during the load the reader takes at most --slow-rate bytes per second
// (default 256 KiB/s, far below what the service produces), as a log shipper that cannot keep up; then
// it catches up, so that the backlog and the loss report arrive. --trace: the client's emitter stats,
// what its destination holds and its memory, once a second on stderr.
// Needs `npx pnpm@10.34.8 build` (or at least the policy and node packages built).
import { fork } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const self = fileURLToPath(import.meta.url);
const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    seconds: { type: 'string', default: '60' },
    sink: { type: 'string', default: 'file' },
    concurrency: { type: 'string', default: '100' },
    client: { type: 'string', default: 'undici' },
    'slow-rate': { type: 'string', default: String(256 * 1024) },
    runs: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true, default: [] },
    port: { type: 'string' },
    file: { type: 'string' },
    dist: { type: 'string', default: new URL('../packages/node/dist/', import.meta.url).pathname },
  },
});

// ---------------------------------------------------------------------------------------------------
// The loopback server: a 2-byte answer on a kept-alive connection.

async function server() {
  const body = Buffer.from('ok');
  const srv = http.createServer(
    { keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 0 },
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end(body);
    },
  );
  srv.keepAliveTimeout = 60_000;
  srv.maxRequestsPerSocket = 0;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  process.send({ port: srv.address().port });
  process.on('message', (m) => {
    if (m === 'exit') srv.close(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------
// The client: the guarded service. Its stdout is the event destination for `stdout` and `slow`, so
// everything it reports goes over IPC.

async function client() {
  const port = Number(args.port);
  const seconds = Number(args.seconds);
  const concurrency = Number(args.concurrency);
  const pino = (await import('pino')).default;
  const sdk = await import(pathToFileURL(join(args.dist, 'index.js')).href);
  // By name, as the SDK imports it (so that a resolve hook given with --node-arg applies to both).
  const { parsePolicy } = await import('@egress-guard/policy');
  const policy = parsePolicy(`version: 1
allow:
  - name: loopback
    addresses: [127.0.0.1]
    schemes: [http]
    ports: [${port}]
`);
  const destination = args.file
    ? pino.destination({ dest: args.file, sync: false })
    : pino.destination({ dest: 1, sync: false });
  await new Promise((r) => destination.once('ready', r));
  const guard = sdk.install({ policy, destination, watch: false });

  const url = `http://127.0.0.1:${port}/saturation`;
  let send;
  if (args.client === 'fetch') {
    send = async () => {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
    };
  } else {
    const undici = await import('undici');
    send = async () => {
      const res = await undici.request(url);
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    };
  }

  // RSS every 250 ms, and the worst event-loop delay between samples (backpressure must never block).
  let peakRss = process.memoryUsage.rss();
  let peakHeap = 0;
  let maxTickGap = 0;
  let last = performance.now();
  const sampler = setInterval(() => {
    const now = performance.now();
    maxTickGap = Math.max(maxTickGap, now - last - 250);
    last = now;
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  }, 250);
  const rssBefore = process.memoryUsage.rss();
  // --trace: once a second on stderr, the emitter's stats, what the destination really holds, memory.
  const tracer = args.trace
    ? setInterval(() => {
        const m = process.memoryUsage();
        process.stderr.write(
          `${JSON.stringify({ t: Math.round(performance.now() - t0), ...guard.events.stats(), destLen: destination._len, destBufs: destination._bufs?.length, rss: m.rss >> 20, heap: m.heapUsed >> 20, ext: m.external >> 20, ab: m.arrayBuffers >> 20 })}\n`,
        );
      }, 1000)
    : undefined;

  let requests = 0;
  let errors = 0;
  let firstError;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const worker = async () => {
    while (performance.now() < end) {
      try {
        await send();
        requests++;
      } catch (error) {
        errors++;
        firstError ??= String(error?.cause ?? error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const loadSecs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const atEnd = guard.events.stats();
  process.send({ phase: 'loaded' });
  const f0 = performance.now();
  await guard.events.flush(60_000);
  const flushMs = performance.now() - f0;
  clearInterval(sampler);
  clearInterval(tracer);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  const stats = guard.events.stats();
  process.send({
    requests,
    errors,
    firstError,
    loadSecs,
    cpuSecs: (cpu.user + cpu.system) / 1e6,
    rssBefore,
    peakRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    peakHeap,
    maxTickGap,
    atEnd,
    stats,
    flushMs,
  });
  await sdk.uninstall();
  destination.flushSync?.();
  destination.end?.();
  process.disconnect();
}

// ---------------------------------------------------------------------------------------------------
// The orchestrator.

function forkRole(role, extra, options = {}) {
  return fork(self, ['--role', role, ...extra], { ...options, execArgv: options.execArgv ?? [] });
}

function once(child, event) {
  return new Promise((resolve) => child.once(event, resolve));
}

/** Counts the events in a JSON-lines file, parsing each line. */
function countLines(file) {
  const counts = {
    lines: 0,
    unparsable: 0,
    decision: 0,
    completion: 0,
    dropReports: 0,
    droppedReported: 0,
    other: 0,
  };
  const text = readFileSync(file, 'utf8');
  let start = 0;
  while (start < text.length) {
    let nl = text.indexOf('\n', start);
    if (nl === -1) nl = text.length;
    const line = text.slice(start, nl);
    start = nl + 1;
    if (!line) continue;
    counts.lines++;
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      counts.unparsable++;
      continue;
    }
    const name = event['event.name'];
    if (name === 'egress.decision') counts.decision++;
    else if (name === 'egress.completion') counts.completion++;
    else if (name === 'egress.events.dropped') {
      counts.dropReports++;
      counts.droppedReported += event['egress.events.dropped'];
    } else counts.other++;
  }
  return counts;
}

async function runOnce(dir, run) {
  const srv = forkRole('server', []);
  const { port } = await once(srv, 'message');
  const eventsFile = join(dir, `events-${run}.jsonl`);
  const clientArgs = [
    ...(args.trace ? ['--trace'] : []),
    '--dist',
    args.dist,
    '--port',
    String(port),
    '--seconds',
    args.seconds,
    '--concurrency',
    args.concurrency,
    '--client',
    args.client,
  ];
  const sink = args.sink;
  if (sink === 'file') clientArgs.push('--file', eventsFile);
  const child = forkRole('client', clientArgs, {
    execArgv: args['node-arg'],
    stdio: ['ignore', sink === 'file' ? 'inherit' : 'pipe', 'inherit', 'ipc'],
  });

  // Peak RSS of the client, from /proc, every 250 ms (the client samples too: its loop may lag).
  let procPeak = 0;
  const readRss = () => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) procPeak = Math.max(procPeak, Number(m[1]) * 1024);
    } catch {}
  };
  const sampler = setInterval(readRss, 250);

  let readerDone = Promise.resolve();
  if (sink !== 'file') {
    // The reader of the client's stdout: a log shipper, as fast as it can (`stdout`) or rate-limited (`slow`).
    const out = createWriteStream(eventsFile);
    let rate = Number(args['slow-rate']);
    let budget = rate / 10;
    let outBlocked = false;
    // After the load the shipper catches up: the backlog is written and the loss report arrives.
    child.on('message', (m) => {
      if (m?.phase === 'loaded') {
        rate = Number.POSITIVE_INFINITY;
        budget = rate;
        maybeResume();
      }
    });
    const maybeResume = () => {
      if (!outBlocked && (sink !== 'slow' || budget > 0)) child.stdout.resume();
    };
    if (sink === 'slow') {
      const refill = setInterval(() => {
        budget = rate / 10;
        maybeResume();
      }, 100);
      child.stdout.on('end', () => clearInterval(refill));
    }
    child.stdout.on('data', (chunk) => {
      if (!out.write(chunk)) {
        outBlocked = true;
        child.stdout.pause();
        out.once('drain', () => {
          outBlocked = false;
          maybeResume();
        });
      }
      if (sink === 'slow') {
        budget -= chunk.length;
        if (budget <= 0) child.stdout.pause();
      }
    });
    readerDone = new Promise((resolve) => child.stdout.on('end', () => out.end(resolve)));
  }

  const result = await new Promise((resolve) => {
    const onMessage = (m) => {
      if (m?.phase) return;
      child.off('message', onMessage);
      resolve(m);
    };
    child.on('message', onMessage);
  });
  await once(child, 'exit');
  clearInterval(sampler);
  await readerDone;
  srv.send('exit');
  await once(srv, 'exit');
  const lines = countLines(eventsFile);
  rmSync(eventsFile, { force: true });
  return { ...result, procPeakRss: procPeak, lines };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const MB = 1024 * 1024;

function summarise(r) {
  const expected = r.stats.emitted - r.lines.dropReports;
  return {
    requests: r.requests,
    errors: r.errors,
    'req/s': Math.round(r.requests / r.loadSecs),
    emitted: r.stats.emitted,
    written: r.stats.written,
    dropped: r.stats.dropped,
    'lines (decision+completion)': r.lines.decision + r.lines.completion,
    'lines total': r.lines.lines,
    'lost %': +((100 * r.stats.dropped) / Math.max(1, r.stats.emitted)).toFixed(2),
    'drop reports': r.lines.dropReports,
    'dropped reported': r.lines.droppedReported,
    'unaccounted (emitted - lines - dropped)':
      r.stats.emitted - (r.lines.lines - r.lines.dropReports) - r.stats.dropped,
    'rss before MB': +(r.rssBefore / MB).toFixed(0),
    'peak RSS MB': +(Math.max(r.peakRss, r.procPeakRss) / MB).toFixed(0),
    'maxRSS (getrusage) MB': +(r.maxRss / MB).toFixed(0),
    'peak heap MB': +(r.peakHeap / MB).toFixed(0),
    'cpu s': +r.cpuSecs.toFixed(1),
    'cpu % of a core': Math.round((100 * r.cpuSecs) / r.loadSecs),
    'max loop stall ms': Math.round(r.maxTickGap),
    'flush ms': Math.round(r.flushMs),
    'buffered at end': r.atEnd.bufferedBytes,
    'state at end': r.atEnd.state,
    expected,
    ...(r.firstError ? { firstError: r.firstError } : {}),
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'egress-saturation-'));
  const runs = Number(args.runs);
  const results = [];
  try {
    for (let i = 0; i < runs; i++) {
      const r = summarise(await runOnce(dir, i));
      results.push(r);
      if (!args.json) {
        console.log(
          `run ${i + 1}/${runs}: sink=${args.sink}, ${args.seconds} s, ${args.concurrency} in flight, ${args.client}`,
        );
        console.table(r);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const numeric = Object.keys(results[0]).filter((k) => typeof results[0][k] === 'number');
  const med = Object.fromEntries(numeric.map((k) => [k, median(results.map((r) => r[k]))]));
  if (args.json)
    console.log(
      JSON.stringify({ sink: args.sink, seconds: Number(args.seconds), runs: results, median: med }),
    );
  else if (runs > 1) {
    console.log(`median of ${runs} runs:`);
    console.table(med);
  }
}

if (args.role === 'server') await server();
else if (args.role === 'client') await client();
else await main();
