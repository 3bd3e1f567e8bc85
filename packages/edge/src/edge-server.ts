/**
 * The edge server: listeners, connection limits, the policy in force and its reloads, the admin server,
 * signals, drain and close. Flows themselves live in flows/ (tunnels) and http-forwarder.ts (plaintext HTTP).
 */
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import {
  blankDecision,
  createEventEmitter,
  type EventEmitter,
  loadPolicyFile,
  type Policy,
  refineDecision,
} from '@egress-guard/policy';
import type { Registry } from 'prom-client';
import { AdminServer, registrySource } from './admin-server.js';
import { canonicalAddress, ResolverCache, resolverFromLookup } from './claims.js';
import type { EdgeLimits, ListenerKind, ListenerOptions, ResolvedEdgeOptions } from './config.js';
import { Connection } from './connection.js';
import { type BoundDnsListener, DnsService } from './dns/dns-service.js';
import { FlowRecord } from './flow-record.js';
import { HttpForwarder } from './http-forwarder.js';
import { ConnectionLimiter, isRefusal, type LimitRefusal } from './limits.js';
import { connectAfterRequests, handleExplicit } from './listeners/explicit-proxy.js';
import { handleSniRouted } from './listeners/sni-routed.js';
import { handleTransparent } from './listeners/transparent.js';
import { EdgeMetrics } from './metrics.js';
import { assertOriginalDestination } from './original-destination.js';
import { PolicyWatcher } from './policy-watcher.js';
import {
  emitPolicyEvent,
  emitPolicyRejected,
  installSignalHandlers,
  removeSignalHandlers,
} from './process-signals.js';
import { ProxyAuth } from './proxy-auth/index.js';
import { httpError } from './replies.js';
import { SystemResolver } from './resolver.js';
import type { EdgeRuntime } from './runtime.js';

/** A listener as bound (with the real port when 0 was asked for). */
export interface BoundListener {
  kind: ListenerKind;
  host: string;
  port: number;
  /** `sni` listeners: the port dialled upstream. */
  upstreamPort?: number | undefined;
}

/** Counters for tests and status pages. */
export interface EdgeStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted since start (limit refusals included). */
  accepted: number;
  /** Connections closed at accept by a connection limit. */
  limited: number;
  /** Flows that got a decision. */
  flows: number;
  /** The policy in force. */
  policyHash: string;
  draining: boolean;
}

type ResolvedListener = ResolvedEdgeOptions['listeners'][number];

/** `single`: the whole edge in this process. `worker`: one of several, under a primary (workers/). */
export type EdgeRole = 'single' | 'worker';

/**
 * Runs the listeners of one edge. Build it with `startEdge(options)`; `start()` binds the listeners,
 * `reload()` swaps the policy (flows in flight keep theirs), `drain()` stops accepting and waits for
 * flows, `close()` ends everything.
 */
export class EdgeServer implements EdgeRuntime {
  readonly limits: EdgeLimits;
  readonly resolver: ResolverCache;
  /** The built-in resolver (hosts file, DNS, TTL cache); undefined with a custom `resolver` or `lookup`. */
  private readonly names: SystemResolver | undefined;
  readonly proxyAuth: ProxyAuth | undefined;
  readonly metrics: EdgeMetrics;
  readonly events: EventEmitter;
  readonly http: HttpForwarder;
  /** The DNS guard, when `dns.listen` names listeners (single-process edges only). */
  readonly dns: DnsService | undefined;
  private current: Policy;
  private readonly file: string | undefined;
  private readonly limiter: ConnectionLimiter;
  private readonly servers: Array<{ server: net.Server; bound: BoundListener }> = [];
  private readonly connections = new Set<Connection>();
  private emptyWaiters: Array<() => void> = [];
  private readonly idPrefix = randomBytes(4).toString('hex');
  private sequence = 0;
  private accepted = 0;
  private limitedCount = 0;
  private flowCount = 0;
  private started = false;
  private drainingNow = false;
  private closing: Promise<void> | undefined;
  private drainPromise: Promise<void> | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private admin: AdminServer | undefined;
  private adminBound: { host: string; port: number } | undefined;
  private watcher: PolicyWatcher | undefined;
  private readonly signalHandlers: Array<[NodeJS.Signals, () => void]> = [];

  /**
   * @param options Validated options (`resolveEdgeOptions`).
   * @param policy The policy loaded from `options.policy`.
   * @param role `worker` in a worker process: the primary announces policies, so this server does not.
   */
  constructor(
    private readonly options: ResolvedEdgeOptions,
    policy: Policy,
    private readonly role: EdgeRole = 'single',
  ) {
    this.current = policy;
    this.file = typeof options.policy === 'string' ? options.policy : undefined;
    this.limits = options.limits;
    this.limiter = new ConnectionLimiter(
      options.limits.maxConnections,
      options.limits.maxConnectionsPerSource,
    );
    this.events =
      options.events ?? createEventEmitter({ logger: options.logger, destination: options.destination });
    this.metrics = new EdgeMetrics(options.registry, options.defaultMetrics);
    this.metrics.setPolicy(policy.hash);
    this.dns =
      options.dns.listen.length > 0 && this.role === 'single'
        ? new DnsService(
            options.dns,
            this.metrics.registry,
            () => this.current,
            this.events,
            () => this.nextId(),
          )
        : undefined;
    // Read at construction: a secrets file that cannot be used stops the edge before it listens.
    this.proxyAuth = options.proxyAuth
      ? new ProxyAuth(options.proxyAuth, { onRejected: (problems) => this.rejectProxyAuth(problems) })
      : undefined;
    this.names =
      options.resolver || options.lookup
        ? undefined
        : new SystemResolver({
            servers: options.dns.servers,
            hostsFile: options.dns.hostsFile,
            timeoutMs: options.dns.timeout,
            maxAnswers: options.dns.maxNames * 2,
            maxTtlMs: options.dns.maxRetention,
          });
    this.resolver = new ResolverCache({
      bindings: this.dns?.bindings,
      resolver: options.resolver ?? (options.lookup ? resolverFromLookup(options.lookup) : this.names),
      servers: options.dns.servers,
      minRetentionMs: options.dns.minRetention,
      maxRetentionMs: options.dns.maxRetention,
      maxNames: options.dns.maxNames,
      timeoutMs: options.dns.timeout,
    });
    this.http = new HttpForwarder(() => this, options.limits);
    this.http.setConnectHandler((conn, authority, head) => connectAfterRequests(this, conn, authority, head));
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.current;
  }

  /** True once `drain()` or `close()` began. */
  get draining(): boolean {
    return this.drainingNow;
  }

  /** The Prometheus registry holding the edge's metrics. */
  get registry(): Registry {
    return this.metrics.registry;
  }

  /** The listeners as bound, in the order given. */
  get listeners(): BoundListener[] {
    return this.servers.map((s) => ({ ...s.bound }));
  }

  /** The DNS guard's listeners as bound (UDP and TCP on each port). */
  get dnsListeners(): BoundDnsListener[] {
    return this.dns?.bound ?? [];
  }

  /** The admin server's address, when one runs. */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.adminBound ? { ...this.adminBound } : undefined;
  }

  /** Counters for tests and status pages. */
  stats(): EdgeStats {
    return {
      open: this.connections.size,
      accepted: this.accepted,
      limited: this.limitedCount,
      flows: this.flowCount,
      policyHash: this.current.hash,
      draining: this.drainingNow,
    };
  }

  /** A new flow record for a flow on `conn` (one decision event, one completion event). */
  newFlow(conn: Connection): FlowRecord {
    this.flowCount++;
    return new FlowRecord(this.nextId(), conn.listener, conn.source, this.events, this.metrics);
  }

  /**
   * Binds the listeners (default: those of the options), the admin server, the file watch and the signal
   * handlers. On a bind failure everything bound so far is closed and the error is thrown.
   */
  async start(listeners: readonly ListenerOptions[] = this.options.listeners): Promise<void> {
    if (this.started) throw new Error('the edge server is already started');
    // Refuse at start, with the reason (not Linux, koffi not installed), rather than deny every connection.
    if (listeners.some((l) => l.kind === 'transparent' && l.originalDestination === undefined)) {
      assertOriginalDestination();
    }
    this.started = true;
    try {
      for (const l of listeners) await this.listen(l as ResolvedListener);
      await this.dns?.start();
      if (this.options.admin) {
        this.admin = new AdminServer(
          registrySource(this.metrics.registry),
          () => this.started && !this.drainingNow && !this.closing,
        );
        this.adminBound = await this.admin.listen(this.options.admin.host, this.options.admin.port);
      }
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.file && this.options.watch) {
      this.watcher = new PolicyWatcher(this.file, this.options.watchDebounce, () => {
        this.reload().catch(() => {});
      });
    }
    if (this.options.signals) this.installSignals();
    if (this.role === 'single') this.emitPolicy('egress.policy.loaded', undefined, this.current);
  }

  /**
   * Replaces the policy: with `next`, or by reading the policy file again. An invalid file keeps the
   * policy in force and writes an `egress.policy.rejected` event; a valid one writes
   * `egress.policy.reloaded` with both hashes and the rules added, removed and changed. Flows in flight
   * keep the decision they got. Resolves to whether the new policy is in force (true when unchanged).
   */
  reload(next?: Policy): Promise<boolean> {
    const run = this.reloadChain.then(() => this.reloadNow(next));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(next?: Policy): Promise<boolean> {
    // A reload is when an operator expects the edge to look again: DNS answers and the hosts file too.
    this.names?.clear();
    this.reloadProxyAuth();
    let candidate = next;
    if (!candidate) {
      if (!this.file)
        throw new Error('reload() without a policy needs the edge to be started with a policy file');
      try {
        candidate = await loadPolicyFile(this.file);
      } catch (error) {
        this.metrics.reloads.inc({ result: 'rejected' });
        emitPolicyRejected(this.events, this.file, this.current, error);
        return false;
      }
    }
    if (candidate.hash === this.current.hash) {
      this.metrics.reloads.inc({ result: 'unchanged' });
      return true;
    }
    const previous = this.current;
    this.current = candidate;
    this.metrics.setPolicy(candidate.hash);
    this.metrics.reloads.inc({ result: 'reloaded' });
    if (this.role === 'single') this.emitPolicy('egress.policy.reloaded', previous, candidate);
    return true;
  }

  /**
   * Stops accepting (listeners closed, `/readyz` 503), closes idle keep-alive connections, waits up to
   * `timeoutMs` (default `limits.drainTimeout`) for open flows to end, then ends the rest.
   */
  drain(timeoutMs: number = this.limits.drainTimeout): Promise<void> {
    this.drainPromise ??= this.drainNow(timeoutMs);
    return this.drainPromise;
  }

  private async drainNow(timeoutMs: number): Promise<void> {
    this.drainingNow = true;
    this.metrics.draining.set(1);
    const listenersClosed = this.stopListening();
    this.http.closeIdle();
    for (const conn of this.connections) if (conn.idle) conn.abort('drain');
    // Keep-alive connections that go idle while draining are closed as they do.
    const sweep = setInterval(() => {
      for (const conn of this.connections) if (conn.idle) conn.abort('drain');
    }, 100);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.whenEmpty(),
        new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
    } finally {
      clearInterval(sweep);
      if (timer) clearTimeout(timer);
    }
    for (const conn of this.connections) conn.abort('drain_timeout');
    await Promise.all([...this.connections].map((c) => c.closed));
    await Promise.all(listenersClosed);
  }

  /** Resolves once no connection is open. */
  private whenEmpty(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  /** Ends everything now: listeners, connections (close reason `shutdown`), admin server, watch, signals. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    this.drainingNow = true;
    this.watcher?.close();
    removeSignalHandlers(this.signalHandlers);
    const listenersClosed = this.stopListening();
    for (const conn of this.connections) conn.abort('shutdown');
    await Promise.all([...this.connections].map((c) => c.closed));
    await Promise.all(listenersClosed);
    this.http.close();
    await this.dns?.close();
    await this.admin?.close();
    await this.events.flush();
  }

  /**
   * Stops accepting on every listener. Resolves once the listening sockets are closed; the promises in
   * `listenersClosed` resolve later, when the connections each listener accepted have ended too.
   */
  private stopListening(): Promise<void>[] {
    return this.servers.map(
      ({ server }) =>
        new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          // The callback waits for every accepted connection to end; callers wait for it only after
          // ending the connections themselves.
          server.close(() => resolve());
        }),
    );
  }

  private listen(l: ResolvedListener): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const bound: BoundListener = { kind: l.kind, host: l.host, port: l.port, upstreamPort: l.upstreamPort };
    server.on('connection', (socket: net.Socket) => this.accept(l, bound, socket));
    // Accept errors (EMFILE and the like) must not take the process down.
    server.on('error', () => {});
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new Error(`cannot listen on ${l.host}:${l.port} (${l.kind}): ${err.code ?? err.message}`, {
            cause: err,
          }),
        );
      };
      server.once('error', onError);
      server.listen(l.port, l.host, () => {
        server.off('error', onError);
        bound.port = (server.address() as AddressInfo).port;
        this.servers.push({ server, bound });
        resolve();
      });
    });
  }

  private accept(l: ResolvedListener, bound: BoundListener, socket: net.Socket): void {
    // Every socket has an error handler from its first moment: bad input never takes the process down.
    socket.on('error', () => {});
    this.accepted++;
    if (this.drainingNow) {
      socket.destroy();
      return;
    }
    const source = socket.remoteAddress ?? 'unknown';
    const slot = this.limiter.acquire(canonicalSource(source));
    if (isRefusal(slot)) {
      this.refuseAtLimit(l, bound, socket, slot);
      return;
    }
    const conn = new Connection(socket, l.kind, bound.port, this.limits.helloTimeout, slot);
    this.connections.add(conn);
    const counts = this.metrics.forListener(l.kind);
    counts.accepted.inc();
    counts.active.inc();
    void conn.closed.then(() => {
      this.connections.delete(conn);
      counts.active.dec();
      if (this.connections.size === 0) {
        for (const wake of this.emptyWaiters.splice(0)) wake();
      }
    });
    const run =
      l.kind === 'explicit'
        ? handleExplicit(this, conn)
        : l.kind === 'sni'
          ? handleSniRouted(this, conn, l.upstreamPort ?? bound.port)
          : handleTransparent(this, conn, l.originalDestination);
    run.catch((error: unknown) => {
      // Flows are written never to throw; if one does, the connection goes, the process stays.
      this.events.logger.error({ err: error, 'egress.source': 'edge' }, 'egress edge: flow failed');
      conn.abort('internal_error');
    });
  }

  private refuseAtLimit(
    l: ResolvedListener,
    bound: BoundListener,
    socket: net.Socket,
    refusal: LimitRefusal,
  ): void {
    this.limitedCount++;
    this.metrics.forListener(l.kind).accepted.inc();
    this.metrics.limited.inc({ listener: l.kind, scope: refusal.scope });
    const source = canonicalSource(socket.remoteAddress ?? 'unknown');
    const flow = new FlowRecord(this.nextId(), l.kind, source, this.events, this.metrics);
    this.flowCount++;
    const policy = this.current;
    const base = blankDecision(policy, policy.serviceForAddress(source), bound.port);
    const how =
      refusal.scope === 'total'
        ? `the edge already holds ${refusal.limit} connections (limits.maxConnections)`
        : `${source} already holds ${refusal.limit} connections (limits.maxConnectionsPerSource)`;
    const d = refineDecision(base, 'connection_limit', how, true);
    flow.decide(d);
    if (l.kind === 'explicit') socket.end(httpError(503, d.reason, d.message));
    const timer = setTimeout(() => socket.destroy(), l.kind === 'explicit' ? 500 : 0);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    flow.complete('denied', 'connection_limit');
  }

  private nextId(): string {
    return `edge-${this.idPrefix}-${++this.sequence}`;
  }

  /**
   * Reads the proxy credentials again with the policy (they are also read when the file changes). A file
   * that cannot be used keeps the credentials in force and writes `egress.policy.rejected` naming the
   * secrets file (its problems never quote a token).
   */
  private reloadProxyAuth(): void {
    const result = this.proxyAuth?.reload();
    if (result && !result.ok) this.rejectProxyAuth(result.problems);
  }

  private rejectProxyAuth(problems: readonly string[]): void {
    this.events.emit({
      'event.name': 'egress.policy.rejected',
      'egress.schema': 1,
      'egress.source': 'edge',
      'egress.policy.hash': this.current.hash,
      'egress.policy.file': this.proxyAuth!.file,
      'egress.policy.problems': [...problems],
    });
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

function canonicalSource(address: string): string {
  return canonicalAddress(address) ?? address;
}
