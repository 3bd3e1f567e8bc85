/**
 * The entry of a worker process (forked by the primary through node:cluster, see edge-workers.ts). It
 * waits for its configuration, runs one {@link EdgeServer} on the shared listeners without an admin
 * server, a file watch or signal handlers of its own, sends its events to the primary (event-relay.ts),
 * answers metric scrapes and applies the policies the primary sends. It never announces policies: the
 * primary writes one `egress.policy.*` event for the whole edge.
 */
import cluster from 'node:cluster';
import { createEventEmitter, parsePolicy } from '@egress-guard/policy';
import { type EdgeOptions, resolveEdgeOptions } from '../config.js';
import { EdgeServer } from '../edge-server.js';
import { EventRelay } from './event-relay.js';
import type { FromWorker, ToWorker, WorkerConfig } from './messages.js';

if (!cluster.isWorker || typeof process.send !== 'function') {
  throw new Error(
    'edge worker: this file is started by the edge primary (startEdgeWorkers), not run directly',
  );
}

const send = (message: FromWorker, done?: (error: Error | null) => void): boolean =>
  process.send!(message, undefined, {}, done ?? (() => {}));
const relay = new EventRelay(send);
let server: EdgeServer | undefined;
let stopping: Promise<void> | undefined;
/** Settles once `start` has run: a policy sent while the worker starts is applied after it. */
let started: Promise<void> = new Promise(() => {});

/** Ends the worker: drain (or close at once), write every event, leave the channel, exit 0. */
function stop(drainMs: number | undefined): Promise<void> {
  stopping ??= (async () => {
    if (server) {
      if (drainMs !== undefined) await server.drain(drainMs);
      await server.close();
    }
    await relay.drained();
    process.exitCode = 0;
    if (process.connected) process.disconnect();
    // Anything left holding the loop (a stuck socket) must not keep a stopped worker alive.
    setTimeout(() => process.exit(0), 2000).unref();
  })();
  return stopping;
}

async function start(config: WorkerConfig): Promise<void> {
  try {
    const policy = parsePolicy(config.policy.text, { file: config.policy.file });
    const options = resolveEdgeOptions({
      ...(config.options as Partial<EdgeOptions>),
      listeners: config.options.listeners as EdgeOptions['listeners'],
      policy,
      events: createEventEmitter({ destination: relay, source: 'edge' }),
      admin: undefined,
      watch: false,
      signals: false,
      workers: 1,
    });
    server = new EdgeServer(options, policy, 'worker');
    await server.start();
    send({ t: 'ready', listeners: server.listeners });
  } catch (error) {
    send({ t: 'failed', message: (error as Error).message ?? String(error) }, () => process.exit(1));
  }
}

process.on('message', (message: ToWorker) => {
  switch (message?.t) {
    case 'start':
      started = start(message.config);
      return;
    case 'policy': {
      const policy = parsePolicy(message.text, { file: message.file });
      void started.then(async () => {
        await server?.reload(policy);
        // Events decided under the old policy go first: the primary announces the new one after every
        // worker's answer, so a decision written after that announcement carries the new hash.
        relay.flush();
        send({ t: 'policy-applied', seq: message.seq, hash: policy.hash });
      });
      return;
    }
    case 'metrics':
      void started
        .then(async () => (server ? await server.registry.getMetricsAsJSON() : []))
        .then((metrics) => send({ t: 'metrics', id: message.id, metrics: metrics as unknown[] }));
      return;
    case 'drain':
      void stop(message.timeoutMs);
      return;
    case 'close':
      void stop(undefined);
      return;
  }
});

send({ t: 'hello' });

// The primary coordinates: SIGINT (a terminal's Ctrl-C reaches the whole process group) and SIGHUP
// (reload) are its to handle. SIGTERM sent to this worker alone drains it; the primary replaces it.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('SIGTERM', () => void stop(server?.limits.drainTimeout ?? 0));
// The primary is gone: no flow log any more, so stop at once.
process.on('disconnect', () => void stop(undefined));
