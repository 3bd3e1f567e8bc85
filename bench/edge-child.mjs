// The edge under test, in its own process (open-file limit raised by the parent): startEdge() with an
// explicit-proxy (CONNECT) listener and an SNI-routed listener on 127.0.0.1, the benchmark's policy, a
// static resolver (api.bench.test -> 127.0.0.1, as the peers' static maps), and audit events written to a
// file through a pino destination, counted at the end so every flow is known to be logged.
// argv[2], JSON: { upstreamPort, eventsFile, events? } where events is 'async' (default: an asynchronous
// pino.destination, as the SDK's own default), 'sync', or 'discard' (no writes: for experiments only).
import dns from 'node:dns';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { startEdge } from '@egress-guard/edge';
import { parsePolicy } from '@egress-guard/policy';
import pino from 'pino';
import { serve } from './lib/rpc.mjs';

// dnsServer (optional, `127.0.0.1:PORT`): the edge's own resolver asks it instead of the static resolver;
// with dnsPerFlow, a fresh c-ares resolver per query, as the edge resolved before its answer cache
// (bench/edge-resolver.mjs: what a resolver query per flow costs, and what the TTL cache saves).
const { upstreamPort, eventsFile, events = 'async', dnsServer, dnsPerFlow } = JSON.parse(process.argv[2]);
const perFlow = (method) => (name, options) => {
  const resolver = new dns.promises.Resolver({ timeout: 2500, tries: 2 });
  resolver.setServers([dnsServer]);
  return resolver[method](name, options);
};
export const NAME = 'api.bench.test';

const policy = parsePolicy(`version: 1
allow:
  - name: bench-upstream
    hosts: [${NAME}]
    schemes: [https, tls]
    ports: [${upstreamPort}]
    privateAddresses: allow
    timeouts: { idle: 1h }
`);
const answer = (family) => async (name) =>
  family === 4 && name.toLowerCase() === NAME ? [{ address: '127.0.0.1', ttl: 3600 }] : [];

closeSync(openSync(eventsFile, 'w'));
const destination =
  events === 'discard'
    ? { write: () => true, flushSync: () => {} }
    : pino.destination({ dest: eventsFile, sync: events === 'sync' });
const edge = await startEdge({
  policy,
  listeners: [
    { kind: 'explicit', host: '127.0.0.1', port: 0 },
    { kind: 'sni', host: '127.0.0.1', port: 0, upstreamPort },
  ],
  ...(dnsServer && dnsPerFlow
    ? { resolver: { resolve4: perFlow('resolve4'), resolve6: perFlow('resolve6') } }
    : dnsServer
      ? { dns: { servers: [dnsServer], hostsFile: false } }
      : { resolver: { resolve4: answer(4), resolve6: answer(6) } }),
  destination,
  watch: false,
  // The benchmark holds 10,000 idle connections from one source address.
  limits: { maxConnections: 30_000, maxConnectionsPerSource: 30_000, idleTimeout: '1h' },
});

function countEvents() {
  destination.flushSync();
  const text = readFileSync(eventsFile, 'utf8');
  const count = (name) => text.split(`"event.name":"${name}"`).length - 1;
  return {
    decisions: count('egress.decision'),
    completions: count('egress.completion'),
    dropped: count('egress.events.dropped'),
  };
}

const [explicit, sni] = edge.listeners;
serve(
  {
    stats: () => ({ ...edge.stats(), memory: process.memoryUsage() }),
    /** A V8 heap snapshot of the edge process, for memory analysis (path returned). */
    heapSnapshot: async ({ file }) => (await import('node:v8')).writeHeapSnapshot(file),
    /** The monotonic clock in µs, as --cpu-prof's sample times: brackets a profiled phase. */
    now: () => Number(process.hrtime.bigint() / 1000n),
    events: async () => {
      await new Promise((r) => setTimeout(r, 100));
      return countEvents();
    },
    exit: async () => {
      await edge.close();
      destination.flushSync();
    },
  },
  { explicitPort: explicit.port, sniPort: sni.port },
);
