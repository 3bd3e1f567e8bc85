// The edge's DNS guard under test, in its own process: startEdge() with a DNS listener on 127.0.0.1
// forwarding to the benchmark's upstream, the benchmark's policy (names under allowed.test allowed), a
// rate limit out of the way, and audit events written to a file through an asynchronous pino destination,
// counted at the end so every question is known to be logged. argv[2], JSON: { upstreamPort, eventsFile }.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { startEdge } from '@egress-guard/edge';
import { parsePolicy } from '@egress-guard/policy';
import pino from 'pino';
import { serve } from './lib/rpc.mjs';

const { upstreamPort, eventsFile } = JSON.parse(process.argv[2]);
const policy = parsePolicy('version: 1\nallow:\n  - name: bench\n    hosts: ["**.allowed.test"]\n');
closeSync(openSync(eventsFile, 'w'));
const destination = pino.destination({ dest: eventsFile, sync: false });
const edge = await startEdge({
  policy,
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  dns: {
    listen: ['127.0.0.1:0'],
    servers: [`127.0.0.1:${upstreamPort}`],
    rateLimit: 10_000_000,
    timeout: '2s',
  },
  destination,
  watch: false,
  defaultMetrics: false,
});
serve(
  {
    events: async () => {
      await new Promise((r) => setTimeout(r, 100));
      destination.flushSync();
      return readFileSync(eventsFile, 'utf8').split('"event.name":"egress.dns"').length - 1;
    },
    exit: async () => {
      await edge.close();
      destination.flushSync();
    },
  },
  { port: edge.dnsListeners[0].port },
);
