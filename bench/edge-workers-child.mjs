// The edge under the workers benchmark, in its own process: `startEdge()` (workers: 1, one process, as
// the command with --workers 1) or `startEdgeWorkers()` (a primary and N worker processes), with one
// explicit-proxy listener, the policy file given, and audit events written to a file through an
// asynchronous pino destination (the primary's, for workers), counted at the end.
// argv[2], JSON: { workers, policyFile, eventsFile }
import { closeSync, openSync, readFileSync } from 'node:fs';
import { startEdge, startEdgeWorkers } from '@egress-guard/edge';
import pino from 'pino';
import { serve } from './lib/rpc.mjs';

const { workers, policyFile, eventsFile } = JSON.parse(process.argv[2]);
closeSync(openSync(eventsFile, 'w'));
const destination = pino.destination({ dest: eventsFile, sync: false });
const options = {
  policy: policyFile,
  workers,
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  destination,
  watch: false,
  limits: { maxConnections: 30_000, maxConnectionsPerSource: 30_000 },
};
const edge = workers > 1 ? await startEdgeWorkers(options) : await startEdge(options);

serve(
  {
    events: async () => {
      await new Promise((r) => setTimeout(r, 200));
      destination.flushSync();
      const text = readFileSync(eventsFile, 'utf8');
      const count = (name) => text.split(`"event.name":"${name}"`).length - 1;
      return { decisions: count('egress.decision'), completions: count('egress.completion') };
    },
    exit: async () => {
      await edge.close();
      destination.flushSync();
    },
  },
  { port: edge.listeners[0].port },
);
