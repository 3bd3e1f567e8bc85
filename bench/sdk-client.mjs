// One SDK benchmark client, in its own process so that install()'s patches never leak into another
// variant: the process is the load generator (it is the client being measured), the server is another
// process (sdk-server.mjs). Started by sdk.mjs through lib/proc.mjs; `run` measures, in order:
//   warm-up; throughput (`concurrency` requests in flight, bounded by time and count, with the client's
//   CPU time per request); latency (one request at a time, bounded by time and count: p50/p99);
// then, for guarded variants, flushes the audit events and counts them in the events file.
//
// config (argv[2], JSON): { client: fetch|undici|http, variant: unguarded|guarded|explicit|rfa,
//   mode: ka|new, port, eventsFile, warmup: {ms, count}, load: {ms, count, concurrency}, latency: {ms, count} }
import { closeSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { serve } from './lib/rpc.mjs';
import { latencySummary } from './lib/stats.mjs';

const config = JSON.parse(process.argv[2]);
const { client, variant, mode, port } = config;
const host = 'localhost';
const url = `http://${host}:${port}/${mode === 'ka' ? 'ka' : 'close'}/bench`;

/** The policy: the loopback server, by name, with special-purpose addresses allowed. */
export const POLICY_YAML = (p) => `version: 1
allow:
  - name: bench-server
    hosts: [localhost]
    schemes: [http]
    ports: [${p}]
    privateAddresses: allow
`;

let guard;
let destination;
let closeGuard = async () => {};
if (variant === 'guarded' || variant === 'summary' || variant === 'explicit') {
  const { parsePolicy } = await import('@egress-guard/policy');
  const pino = (await import('pino')).default;
  closeSync(openSync(config.eventsFile, 'w'));
  destination = pino.destination({ dest: config.eventsFile, sync: false });
  const options = { policy: parsePolicy(POLICY_YAML(port)), destination, watch: false };
  const sdk = await import('@egress-guard/node');
  if (variant === 'guarded' || variant === 'summary') {
    // summary: allowed traffic as one summary event per rule, origin and outcome per interval.
    guard = sdk.install(variant === 'summary' ? { ...options, audit: { allowed: 'summary' } } : options);
    closeGuard = () => sdk.uninstall();
  } else {
    guard = sdk.createGuard(options);
    closeGuard = () => guard.close();
  }
}

/** `send()`: one request, body consumed; resolves when the response has ended. */
async function makeSender() {
  if (client === 'fetch') {
    if (variant === 'explicit' || variant === 'rfa') throw new Error(`fetch has no ${variant} variant`);
    return async () => {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
    };
  }
  if (client === 'undici') {
    const undici = await import('undici');
    if (variant === 'rfa') throw new Error('undici has no rfa variant');
    const opts = variant === 'explicit' ? { dispatcher: guard.dispatcher() } : {};
    return async () => {
      const res = await undici.request(url, opts);
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    };
  }
  if (client === 'http') {
    let agent;
    if (variant === 'rfa') {
      const { RequestFilteringHttpAgent } = await import('request-filtering-agent');
      agent = new RequestFilteringHttpAgent({ keepAlive: true, allowPrivateIPAddress: true });
    } else if (variant === 'explicit') {
      agent = guard.httpAgent({ keepAlive: true });
    } else {
      agent = new http.Agent({ keepAlive: true });
    }
    return () =>
      new Promise((resolve, reject) => {
        const req = http.request(url, { agent }, (res) => {
          res.on('data', () => {});
          res.on('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
          );
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
  }
  throw new Error(`unknown client ${client}`);
}

let firstError;
let total = 0;

async function load(send, { ms, count, concurrency }) {
  let started = 0;
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const cpu0 = process.cpuUsage();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const worker = async () => {
    while (started < count && performance.now() < end) {
      started++;
      try {
        await send();
        done++;
      } catch (error) {
        errors++;
        firstError ??= String(error?.cause ?? error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  total += started;
  const window = [fromUs, Number(process.hrtime.bigint() / 1000n)];
  return {
    requests: done,
    errors,
    secs,
    rps: done / secs,
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, done),
    window,
  };
}

async function latency(send, { ms, count }) {
  const samples = new Float64Array(count);
  let n = 0;
  let errors = 0;
  const end = performance.now() + ms;
  while (n < count && performance.now() < end) {
    const t = performance.now();
    try {
      await send();
      samples[n++] = performance.now() - t;
    } catch (error) {
      errors++;
      firstError ??= String(error?.cause ?? error);
      if (errors > 100) break;
    }
  }
  total += n + errors;
  return { ...latencySummary(samples.subarray(0, n)), errors };
}

async function countEvents() {
  if (!guard) return undefined;
  await closeGuard();
  destination.flushSync?.();
  await new Promise((r) => setTimeout(r, 50));
  const text = readFileSync(config.eventsFile, 'utf8');
  const count = (name) => text.split(`"event.name":"${name}"`).length - 1;
  // Requests counted in summary events stand for a decision and a completion each.
  let summarised = 0;
  for (const line of text.split('\n')) {
    if (line.includes('"event.name":"egress.summary"'))
      summarised += JSON.parse(line)['egress.summary.count'];
  }
  return {
    requests: total,
    summarised,
    decisions: count('egress.decision') + summarised,
    completions: count('egress.completion') + summarised,
    dropped: count('egress.events.dropped'),
    lines: text.split('\n').filter(Boolean).length,
  };
}

const send = await makeSender();
serve({
  async run() {
    await load(send, { ...config.warmup, concurrency: config.load.concurrency });
    const throughput = await load(send, config.load);
    const lat = await latency(send, config.latency);
    const events = await countEvents();
    return { throughput, latency: lat, events, firstError };
  },
});
