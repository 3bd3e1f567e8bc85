/**
 * The edge on every core: one primary process and N worker processes (node:cluster) on the same
 * listeners. The primary holds what must be one: the policy (it reads and validates the file, sends the
 * same text to every worker, and announces a reload once every worker runs it), the flow log (workers
 * send whole lines over IPC; the primary writes them to its one destination), `/metrics` (every worker's
 * registry aggregated with its own) and `/healthz`/`/readyz`. A worker that dies is replaced and its
 * death is an `egress.worker.exited` event. See docs/edge.md, "Workers".
 *
 * Listening sockets: Node 20 has no `reusePort`, so the listeners are node:cluster's. The primary binds
 * each one once; with `SCHED_NONE` the listening socket is shared and every worker accepts on it itself
 * (the kernel hands each connection to one of them), so an accepted socket is the worker's own: a
 * transparent listener's `SO_ORIGINAL_DST` is read from it as in one process.
 */
import cluster, { type Worker } from 'node:cluster';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createEventEmitter,
  type EventEmitter,
  loadPolicyFile,
  type Policy,
  parsePolicy,
} from '@egress-guard/policy';
import pino, { type DestinationStream } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { AdminServer } from '../admin-server.js';
import { BoundCounter, BoundGauge } from '../bound-metrics.js';
import {
  EdgeConfigError,
  type EdgeOptions,
  type ResolvedEdgeOptions,
  resolveEdgeOptions,
} from '../config.js';
import type { BoundListener } from '../edge-server.js';
import { METRIC_NAMES } from '../metrics.js';
import { PolicyWatcher } from '../policy-watcher.js';
import {
  emitPolicyEvent,
  emitPolicyRejected,
  installSignalHandlers,
  removeSignalHandlers,
} from '../process-signals.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { type FromWorker, isWorkerMessage, type ToWorker, type WorkerConfig } from './messages.js';

/** Bounds of the primary's coordination. */
export const WORKER_LIMITS = {
  /** Time for a worker to start listening (or for every worker to apply a new policy) before it is killed. */
  startTimeoutMs: 15_000,
  /** A worker that ran for less than this before dying counts as a crash loop: replacements back off. */
  crashLoopMs: 5_000,
  /** Longest wait before starting a replacement (the backoff doubles from 100 ms up to this). */
  maxBackoffMs: 5_000,
  /** After a drain or close asked of the workers, time given to exit before they are killed. */
  exitGraceMs: 5_000,
} as const;

/** Names of the primary's own metrics. */
export const WORKER_METRIC_NAMES = {
  workers: 'egress_edge_workers',
  exits: 'egress_edge_worker_exits_total',
} as const;

/** Options that cannot cross to a worker process: a function or an object of this process. */
const IN_PROCESS_ONLY = ['events', 'logger', 'resolver', 'lookup', 'registry'] as const;

interface WorkerState {
  worker: Worker;
  startedAt: number;
  ready: boolean;
}

/** Counters for tests and status pages. */
export interface EdgeWorkersStats {
  /** Workers running (started or starting). */
  workers: number;
  /** Workers replaced after dying. */
  replaced: number;
  policyHash: string;
  draining: boolean;
}

/**
 * Lists why `options` cannot run with workers (empty when they can): the policy must be a file (every
 * worker parses the same text), and options that are functions or objects of this process cannot cross.
 */
export function workerOptionProblems(options: ResolvedEdgeOptions): string[] {
  const problems: string[] = [];
  if (typeof options.policy !== 'string') {
    problems.push(
      'policy: with workers > 1 the policy must be a file path (every worker reads the same text)',
    );
  }
  for (const key of IN_PROCESS_ONLY) {
    if (options[key] !== undefined) {
      problems.push(
        `${key}: cannot be used with workers > 1 (it lives in this process; workers are other processes)${
          key === 'events' || key === 'logger'
            ? ': give a destination, which the primary writes every event to'
            : ''
        }`,
      );
    }
  }
  options.listeners.forEach((l, i) => {
    if (l.originalDestination !== undefined) {
      problems.push(
        `listeners[${i}].originalDestination: cannot be used with workers > 1 (a function of this process); workers read SO_ORIGINAL_DST themselves`,
      );
    }
  });
  return problems;
}

/** The worker entry next to this module: `dist/edge-worker.{js,cjs}` when built, else the TypeScript source. */
function workerScript(): string {
  const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
  const ext = extname(here);
  const built = join(dirname(here), `edge-worker${ext}`);
  return existsSync(built) ? built : join(dirname(here), `worker-main${ext}`);
}

/**
 * A running edge with worker processes. Build it with {@link startEdgeWorkers}; `reload()` reads the
 * policy file again and puts it in force in every worker, `drain()` and `close()` end the workers and
 * then the primary.
 */
export class EdgeWorkers {
  private current: Policy;
  private text: string;
  private readonly file: string;
  private readonly states = new Map<number, WorkerState>();
  private bound: BoundListener[] = [];
  private admin: AdminServer | undefined;
  private adminBound: { host: string; port: number } | undefined;
  private watcher: PolicyWatcher | undefined;
  private readonly signalHandlers: Array<[NodeJS.Signals, () => void]> = [];
  private stopping = false;
  /** Every first worker listens: from now on a worker that dies is replaced. */
  private running = false;
  private drainingNow = false;
  private drainPromise: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private readonly acks = new Map<number, { waiting: Set<number>; done: () => void }>();
  private replaced = 0;
  private quickDeaths = 0;
  private readonly destination: DestinationStream;
  private readonly events: EventEmitter;
  private readonly registry = new Registry();
  private readonly reloads: BoundCounter<'result'>;
  private readonly workerCount: BoundGauge;
  private readonly exits: BoundCounter;
  private readonly metrics: ClusterMetrics;
  private readonly exitWaiters: Array<() => void> = [];

  /**
   * @param options Validated options with `workers` > 1 and a policy file.
   * @param policy The policy parsed from `text`.
   * @param text The policy file's text.
   */
  constructor(
    private readonly options: ResolvedEdgeOptions,
    policy: Policy,
    text: string,
  ) {
    this.current = policy;
    this.text = text;
    this.file = options.policy as string;
    this.destination = options.destination ?? pino.destination({ dest: 1, sync: false });
    // The primary's own events and the workers' lines go through one write-through stream, in the order
    // they reach the primary, to the one destination.
    const destination = this.destination;
    this.events = createEventEmitter({
      destination: { write: (line: string) => destination.write(line) },
      source: 'edge',
    });
    const registers = [this.registry];
    this.reloads = new BoundCounter({
      name: METRIC_NAMES.reloads,
      help: 'Policy reload attempts: reloaded, unchanged (same hash) or rejected (old policy kept).',
      labelNames: ['result'],
      registers,
    });
    this.workerCount = new BoundGauge({
      name: WORKER_METRIC_NAMES.workers,
      help: 'Worker processes running.',
      registers,
    });
    this.exits = new BoundCounter({
      name: WORKER_METRIC_NAMES.exits,
      help: 'Worker processes that died while the edge ran (each replaced).',
      registers,
    });
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'egress_edge_' });
    this.metrics = new ClusterMetrics(
      () => [...this.states.values()].map((s) => s.worker),
      this.registry,
      new Set([METRIC_NAMES.reloads]),
    );
  }

  /** The policy in force in every worker. */
  get policy(): Policy {
    return this.current;
  }

  /** True once `drain()` or `close()` began. */
  get draining(): boolean {
    return this.drainingNow;
  }

  /** The listeners as bound (shared by every worker), in the order given. */
  get listeners(): BoundListener[] {
    return this.bound.map((l) => ({ ...l }));
  }

  /** The admin server's address, when one runs. */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.adminBound ? { ...this.adminBound } : undefined;
  }

  /** Process ids of the workers running now. */
  get workerPids(): number[] {
    return [...this.states.values()].map((s) => s.worker.process.pid!).filter((pid) => pid !== undefined);
  }

  stats(): EdgeWorkersStats {
    return {
      workers: this.states.size,
      replaced: this.replaced,
      policyHash: this.current.hash,
      draining: this.drainingNow,
    };
  }

  /** Starts the workers and waits until every one listens; then the admin server, file watch and signals. */
  async start(): Promise<void> {
    // Each worker accepts on the shared listening socket itself: no hop through the primary per
    // connection (node:cluster's default round-robin accepts in the primary and passes each socket on).
    // NODE_CLUSTER_SCHED_POLICY (Node's own variable: `rr` or `none`) still chooses when set.
    if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
    // `advanced`: V8's serializer copies the event lines as they are; JSON would escape every quote of
    // every line on the worker's side and unescape it on the primary's.
    cluster.setupPrimary({ exec: workerScript(), args: [], serialization: 'advanced' });
    try {
      const started = Array.from({ length: this.options.workers }, () => this.fork());
      const listeners = await Promise.all(started);
      this.bound = listeners[0]!;
      this.running = true;
      if (this.options.admin) {
        // Ready while accepting: not draining, and at least one worker listening (not all being replaced).
        this.admin = new AdminServer(
          this.metrics,
          () => !this.drainingNow && !this.stopping && [...this.states.values()].some((w) => w.ready),
        );
        this.adminBound = await this.admin.listen(this.options.admin.host, this.options.admin.port);
      }
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.options.watch) {
      this.watcher = new PolicyWatcher(this.file, this.options.watchDebounce, () => {
        this.reload().catch(() => {});
      });
    }
    if (this.options.signals) this.installSignals();
    this.emitPolicy('egress.policy.loaded', undefined, this.current);
  }

  /**
   * Reads the policy file again. Invalid: `egress.policy.rejected`, the policy in force stays. Valid and
   * changed: every worker gets the same text, and once each runs it the primary writes one
   * `egress.policy.reloaded` (so every decision written after it carries the new hash). Resolves to
   * whether the new policy is in force (true when unchanged).
   */
  reload(): Promise<boolean> {
    const run = this.reloadChain.then(() => this.reloadNow());
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(): Promise<boolean> {
    let text: string;
    let next: Policy;
    try {
      text = await readFile(this.file, 'utf8');
      next = parsePolicy(text, { file: this.file });
    } catch (error) {
      this.reloads.inc({ result: 'rejected' });
      // The policy stays, but the workers still look again (DNS answers, hosts file, proxy credentials).
      await this.broadcastPolicy(this.text);
      emitPolicyRejected(this.events, this.file, this.current, error);
      return false;
    }
    if (next.hash === this.current.hash) {
      // Same policy: the workers still look again, as a single-process edge does on every reload.
      await this.broadcastPolicy(this.text);
      this.reloads.inc({ result: 'unchanged' });
      return true;
    }
    const previous = this.current;
    // Replacements started from now on run the new text.
    this.current = next;
    this.text = text;
    await this.broadcastPolicy(text);
    this.reloads.inc({ result: 'reloaded' });
    this.emitPolicy('egress.policy.reloaded', previous, next);
    return true;
  }

  /** Sends the policy to every worker and waits for each to run it (or to die, or to time out and be killed). */
  private broadcastPolicy(text: string): Promise<void> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const waiting = new Set<number>();
      const timer = setTimeout(() => {
        // A worker that cannot apply a policy in time is not trusted to run it: replaced, with it.
        for (const id of waiting) this.states.get(id)?.worker.process.kill('SIGKILL');
        done();
      }, WORKER_LIMITS.startTimeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        this.acks.delete(seq);
        resolve();
      };
      this.acks.set(seq, { waiting, done });
      for (const [id, s] of this.states) {
        if (!s.worker.isConnected()) continue;
        waiting.add(id);
        this.send(s.worker, { t: 'policy', seq, text, file: this.file });
      }
      if (waiting.size === 0) done();
    });
  }

  /** Drains every worker (they stop accepting and wait up to `timeoutMs` for their flows), then closes. */
  drain(timeoutMs: number = this.options.limits.drainTimeout): Promise<void> {
    this.drainPromise ??= (async () => {
      this.drainingNow = true;
      await this.stopWorkers({ t: 'drain', timeoutMs }, timeoutMs + WORKER_LIMITS.exitGraceMs);
    })();
    return this.drainPromise;
  }

  /** Ends every worker now (their flows close with `shutdown`), then the admin server and the flow log. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.drainingNow = true;
      this.watcher?.close();
      removeSignalHandlers(this.signalHandlers);
      await this.stopWorkers({ t: 'close' }, WORKER_LIMITS.exitGraceMs);
      await this.admin?.close();
      await this.events.flush();
      await flushDestination(this.destination);
    })();
    return this.closing;
  }

  /** Asks every worker to stop, waits for them to exit (killing any still there after `graceMs`). */
  private async stopWorkers(message: ToWorker, graceMs: number): Promise<void> {
    this.stopping = true;
    for (const s of this.states.values()) if (s.worker.isConnected()) this.send(s.worker, message);
    if (this.states.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.exitWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    for (const s of this.states.values()) s.worker.process.kill('SIGKILL');
    if (this.states.size > 0) await new Promise<void>((resolve) => this.exitWaiters.push(resolve));
  }

  /** Forks one worker; resolves with its listeners once it listens, rejects if it cannot. */
  private fork(): Promise<BoundListener[]> {
    const worker = cluster.fork();
    const state: WorkerState = { worker, startedAt: Date.now(), ready: false };
    this.states.set(worker.id, state);
    this.workerCount.set(this.states.size);
    const config: WorkerConfig = {
      options: crossable(this.options),
      policy: { text: this.text, file: this.file },
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.process.kill('SIGKILL');
        reject(
          new Error(
            `edge worker ${worker.id} did not start listening within ${WORKER_LIMITS.startTimeoutMs} ms`,
          ),
        );
      }, WORKER_LIMITS.startTimeoutMs);
      timer.unref();
      worker.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.t === 'hello') this.send(worker, { t: 'start', config });
        else if (message.t === 'ready') {
          clearTimeout(timer);
          state.ready = true;
          resolve(message.listeners);
        } else if (message.t === 'failed') {
          clearTimeout(timer);
          reject(new Error(message.message));
        } else this.onMessage(worker, message);
      });
      worker.on('error', () => {});
      worker.once('exit', (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        if (!state.ready)
          reject(new Error(`edge worker ${worker.id} exited before listening (${signal ?? `code ${code}`})`));
        this.exited(state, code, signal);
      });
    });
  }

  private onMessage(worker: Worker, message: FromWorker): void {
    switch (message.t) {
      case 'events':
        this.destination.write(message.lines);
        return;
      case 'metrics':
        this.metrics.answered(worker, message.id, message.metrics);
        return;
      case 'policy-applied':
        this.acked(message.seq, worker.id);
        return;
    }
  }

  private acked(seq: number, workerId: number): void {
    const ack = this.acks.get(seq);
    if (ack?.waiting.delete(workerId) && ack.waiting.size === 0) ack.done();
  }

  private exited(state: WorkerState, code: number | null, signal: string | null): void {
    const { worker } = state;
    this.states.delete(worker.id);
    this.workerCount.set(this.states.size);
    this.metrics.gone(worker);
    for (const seq of [...this.acks.keys()]) this.acked(seq, worker.id);
    // While the edge starts, a worker that dies fails the start; once it runs, every death is replaced,
    // a replacement that dies before it listens too (with the crash-loop backoff).
    if (this.stopping || !this.running) {
      if (this.states.size === 0) for (const wake of this.exitWaiters.splice(0)) wake();
      return;
    }
    const uptime = Date.now() - state.startedAt;
    this.quickDeaths = uptime < WORKER_LIMITS.crashLoopMs ? this.quickDeaths + 1 : 0;
    const delay =
      this.quickDeaths === 0 ? 0 : Math.min(WORKER_LIMITS.maxBackoffMs, 100 * 2 ** (this.quickDeaths - 1));
    this.replaced++;
    this.exits.inc({});
    this.events.emit({
      'event.name': 'egress.worker.exited',
      'egress.schema': 1,
      'egress.source': 'edge',
      'egress.worker.id': worker.id,
      'process.pid': worker.process.pid ?? 0,
      'process.exit.code': signal ? undefined : (code ?? undefined),
      'egress.worker.signal': signal ?? undefined,
      'egress.worker.uptime_ms': uptime,
      'egress.worker.replaced_in_ms': delay,
      'egress.policy.hash': this.current.hash,
    });
    const timer = setTimeout(() => {
      if (this.stopping) return;
      this.fork().catch(() => {
        // A replacement that cannot start dies, and is replaced in turn (with a longer backoff).
      });
    }, delay);
    timer.unref();
  }

  private send(worker: Worker, message: ToWorker): void {
    try {
      worker.send(message);
    } catch {
      // The worker is exiting; its exit handler takes over.
    }
  }

  private emitPolicy(
    name: 'egress.policy.loaded' | 'egress.policy.reloaded',
    previous: Policy | undefined,
    next: Policy,
  ): void {
    emitPolicyEvent(this.events, name, this.file, previous, next);
  }

  private installSignals(): void {
    this.signalHandlers.push(...installSignalHandlers(this));
  }
}

/** Writes out what the destination holds (sonic-boom's buffer), bounded. */
function flushDestination(destination: DestinationStream): Promise<void> {
  const d = destination as DestinationStream & { flush?: (cb: (err?: Error | null) => void) => void };
  const flush = d.flush;
  if (typeof flush !== 'function') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, WORKER_LIMITS.exitGraceMs);
    timer.unref();
    try {
      flush.call(d, () => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/**
 * Options the primary keeps: what it runs itself (the policy file and its watch, the admin server,
 * signals), and what lives in this process (checked by {@link workerOptionProblems}).
 */
const PRIMARY_ONLY = new Set<string>([
  'policy',
  'admin',
  'watch',
  'watchDebounce',
  'signals',
  'workers',
  'destination',
  ...IN_PROCESS_ONLY,
]);

/**
 * The options a worker runs with: every other option, as validated here (the worker validates them
 * again). Everything is sent, so an option added to the edge reaches the workers without a change here;
 * one that cannot be copied to another process makes the fork fail loudly (structured clone), never
 * silently dropped.
 */
function crossable(o: ResolvedEdgeOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) if (!PRIMARY_ONLY.has(key)) out[key] = value;
  out.listeners = o.listeners.map(({ originalDestination: _refused, ...plain }) => plain);
  return out;
}

/**
 * Validates `options` (with `workers` > 1), reads and validates the policy file, starts the workers and
 * resolves once every one listens. Throws `EdgeConfigError` for invalid options (including those that
 * cannot cross to a worker), `EgressPolicyError` for an invalid policy file, and an Error naming the
 * address for a listener that cannot bind.
 */
export async function startEdgeWorkers(options: EdgeOptions): Promise<EdgeWorkers> {
  const resolved = resolveEdgeOptions(options);
  const problems = workerOptionProblems(resolved);
  if (problems.length > 0) throw new EdgeConfigError(problems);
  const file = resolved.policy as string;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    // The policy package's own error (file not found, with its hint).
    await loadPolicyFile(file);
    throw new Error(`cannot read ${file}`);
  }
  const edge = new EdgeWorkers(resolved, parsePolicy(text, { file }), text);
  await edge.start();
  return edge;
}
