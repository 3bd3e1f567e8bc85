import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { type FSWatcher, watch } from 'node:fs';
import type http from 'node:http';
import type https from 'node:https';
import type { LookupFunction } from 'node:net';
import { basename, dirname } from 'node:path';
import {
  type CompletionEvent,
  createEventEmitter,
  type Decision,
  type DecisionEvent,
  type Destination,
  decideConnection,
  decideInvalid,
  diffPolicies,
  EgressError,
  EgressOptionsError,
  EgressPolicyError,
  type EventEmitter,
  errorForDecision,
  loadPolicyFile,
  loadPolicyFileSync,
  type Policy,
} from '@egress-guard/policy';
import { type BreakerAdmission, BreakerRegistry } from './breakers.js';
import type { ConnectionContext } from './connection-context.js';
import type { GuardOptions } from './guard-options.js';
import { createHttpAgent, createHttpsAgent } from './http-agents.js';
import { GuardedDispatcher, type GuardedDispatcherOptions } from './undici/guarded-dispatcher.js';

// Captured at load, before any patch: the guard resolves names with the real dns.lookup.
const realLookup = dns.lookup.bind(dns) as LookupFunction;

/** Extra fields a hook adds to a decision event. */
export interface CheckDetails {
  /** The full URL, for `url.full` (the query string is redacted unless `logQueryStrings`). */
  url?: string | undefined;
}

/** What a hook got from `check()`: the decision and the id that ties its completion event to it. */
export interface Checked {
  decision: Decision;
  id: string;
}

/**
 * The guard: the current policy, the decisions, the events, the breakers. Hooks (the undici dispatcher,
 * the http/https/http2/net/tls/dns patches) ask it and act on its answer; it never touches a socket.
 */
export class EgressGuard {
  /** The service this process is, if any. */
  readonly service: string | undefined;
  readonly events: EventEmitter;
  /** Resolves names before the guard checks each address. */
  readonly baseLookup: LookupFunction;
  readonly ca: GuardOptions['ca'];
  readonly breakers: BreakerRegistry;

  private current: Policy;
  private readonly file: string | undefined;
  private readonly logQueryStrings: boolean;
  private readonly now: () => number;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private sequence = 0;
  private readonly recent = new Map<string, { scheme: Destination['scheme']; until: number }>();
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  constructor(options: GuardOptions, policy: Policy) {
    this.current = policy;
    this.file = options.policyFile;
    this.service = options.service;
    this.logQueryStrings = options.logQueryStrings ?? false;
    this.now = options.now ?? Date.now;
    this.baseLookup = options.lookup ?? realLookup;
    this.ca = options.ca;
    this.events = createEventEmitter({
      logger: options.logger,
      destination: options.destination,
      format: options.format,
      flushOnExit: options.flushOnExit,
      envelope: options.envelope,
      source: 'sdk',
    });
    this.breakers = new BreakerRegistry((key, rule, state) => {
      // Every event carries the hash of the policy in force, breaker state changes included.
      const policy = { 'egress.policy.hash': this.current.hash };
      this.events.emit({
        'event.name': 'egress.breaker.state',
        'egress.schema': 1,
        'egress.source': 'sdk',
        'service.name': this.service,
        'egress.breaker.state': state,
        'egress.breaker.key': key,
        'egress.rule': rule,
        ...policy,
      });
    });
    if (this.service !== undefined && !policy.services.includes(this.service)) {
      throw new EgressOptionsError(
        `service "${this.service}" is not in the policy (services: ${policy.services.join(', ') || 'none'}); add a services.${this.service} section or fix EGRESS_GUARD_SERVICE`,
      );
    }
    this.emitPolicy('egress.policy.loaded', undefined, policy);
    if (this.file && (options.watch ?? true)) this.watchFile(this.file);
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.current;
  }

  /** Decides without emitting an event (for tools and tests). */
  decide(destination: Omit<Destination, 'service'>): Decision {
    return this.current.decide({ ...destination, service: this.service }, this.now());
  }

  /** Decides and writes the decision event. Every request or raw connection a hook sees calls this once. */
  check(destination: Omit<Destination, 'service'>, hook: string, details: CheckDetails = {}): Checked {
    const decision = this.decide(destination);
    const id = `${this.idPrefix}-${++this.sequence}`;
    this.emitDecision(decision, destination, hook, id, details);
    return { decision, id };
  }

  /** Writes the decision event of a decision a hook made with `decide()` (e.g. after trying alternatives). */
  record(
    decision: Decision,
    destination: Omit<Destination, 'service'>,
    hook: string,
    details: CheckDetails = {},
  ): Checked {
    const id = this.nextId();
    this.emitDecision(decision, destination, hook, id, details);
    return { decision, id };
  }

  /**
   * Decides a DNS look-up of a name (a `dns` call, or a resolver inside a client) before it leaves the
   * process. A look-up of a name no rule lists is denied (DNS is an exfiltration path); a denial, or a
   * would-deny in report mode, is written as a decision event.
   */
  checkLookup(host: string, hook: string): Decision {
    const decision = this.current.decideLookup(host, this.service, this.now());
    if (decision.result !== 'allowed')
      this.emitDecision(decision, { scheme: 'tcp', host, port: 53 }, hook, this.nextId(), {});
    return decision;
  }

  /**
   * Checks an address a connection is about to dial, for a connection whose destination was already
   * decided. Returns the error to fail the connection with, or undefined to go ahead.
   */
  checkDialledAddress(context: ConnectionContext, address: string): Error | undefined {
    const decision = this.current.decide(
      { scheme: context.scheme, host: context.host, port: context.port, address, service: this.service },
      this.now(),
    );
    if (decision.result === 'allowed') return undefined;
    // In report mode, a destination already reported for this reason is not reported again for each address.
    if (
      decision.allowed &&
      context.decision.result === 'reported' &&
      context.decision.reason === decision.reason
    )
      return undefined;
    // A dial-time denial (or would-deny in report mode) is a decision of its own: log it under the request's id.
    this.emitDecision(
      decision,
      { scheme: context.scheme, host: context.host, port: context.port, address },
      `${context.hook}.dial`,
      context.id ?? this.nextId(),
      {},
    );
    return decision.allowed ? undefined : this.errorFor(decision);
  }

  /**
   * Decides a connection whose content is not in view (see `decideConnection`): used where a connection
   * is opened without its request in view; each request on it is decided by the hook that sent it.
   */
  decideTransport(host: string, port: number, tls: boolean): Decision {
    return decideConnection(
      this.current,
      { host, port, transport: tls ? 'tls' : 'plain', service: this.service },
      this.now(),
    );
  }

  /** A destination that could not even be parsed: `invalid_destination`, naming what was seen. */
  invalidDecision(what: string): Decision {
    return decideInvalid(this.current, what, { service: this.service }, this.now());
  }

  /**
   * Remembers that a hook just allowed a request to host:port, so that the socket it causes, opened by
   * a client the guard did not build (a caller's own undici dispatcher or agent), is decided with the
   * request's scheme rather than as a raw connection.
   */
  noteRequest(scheme: Destination['scheme'], host: string, port: number): void {
    if (this.recent.size > 10_000) this.recent.clear();
    this.recent.set(`${host.toLowerCase()}|${port}`, { scheme, until: this.now() + 30_000 });
  }

  /** The scheme of a request allowed to host:port in the last 30 seconds, if any. */
  recentRequest(host: string, port: number): Destination['scheme'] | undefined {
    const entry = this.recent.get(`${host.toLowerCase()}|${port}`);
    return entry && entry.until > this.now() ? entry.scheme : undefined;
  }

  /** The error a hook fails a denied request with: code, reason, rule, host, port, and how to allow it. */
  errorFor(decision: Decision, cause?: unknown): EgressError {
    return errorForDecision(decision, cause);
  }

  /** Admits a call through the breaker of its rule and origin (undefined when the rule has none). */
  admit(decision: Decision, origin: string): BreakerAdmission | undefined {
    if (decision.breaker === false || decision.result !== 'allowed') return undefined;
    return this.breakers.admit(`${decision.rule ?? '-'}|${origin}`, decision.rule, decision.breaker);
  }

  /**
   * An undici dispatcher that decides every request and redirect hop (scheme, host, port, method, path),
   * with the rule's TLS floor, timeouts and breaker: for `setGlobalDispatcher(guard.dispatcher())` or a
   * `dispatcher` option, without `install()`. Give `{ dispatcher }` to wrap one of your own instead.
   */
  dispatcher(options: GuardedDispatcherOptions = {}): GuardedDispatcher {
    return new GuardedDispatcher(this, { hook: 'undici', ...options });
  }

  /**
   * An `http.Agent` that decides each connection it opens, for use without `install()` (see
   * `createHttpAgent`). Connection-level: a rule's `methods` and `paths` need `install()`.
   */
  httpAgent(options?: http.AgentOptions): http.Agent {
    return createHttpAgent(this, options);
  }

  /**
   * An `https.Agent` that decides each connection it opens, with the rule's TLS floor and verification
   * rule, for use without `install()` (see `createHttpsAgent`). Connection-level: a rule's `methods` and
   * `paths` need `install()`.
   */
  httpsAgent(options?: https.AgentOptions): https.Agent {
    return createHttpsAgent(this, options);
  }

  /** Writes the completion event of a request or connection. */
  complete(
    id: string,
    hook: string,
    decision: Decision,
    fields: Partial<CompletionEvent> & { outcome: string; durationMs: number },
  ): void {
    const { outcome, durationMs, ...rest } = fields;
    this.events.emit({
      'event.name': 'egress.completion',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': this.service,
      'egress.id': id,
      'egress.hook': hook,
      'egress.rule': decision.rule,
      'egress.policy.hash': decision.policyHash,
      'egress.outcome': outcome,
      'egress.duration_ms': Math.round(durationMs * 1000) / 1000,
      'server.address': decision.host,
      'server.port': decision.port,
      ...rest,
    });
  }

  /**
   * Loads the policy file again. A valid file replaces the policy (breakers start afresh) and emits a
   * reloaded event with the diff; an invalid one keeps the old policy and emits a rejected event.
   * Resolves to whether the new policy is in force.
   */
  async reload(): Promise<boolean> {
    if (!this.file) throw new EgressOptionsError('reload() needs a policyFile');
    try {
      const next = await loadPolicyFile(this.file);
      const previous = this.current;
      if (next.hash === previous.hash) return true;
      this.current = next;
      this.breakers.clear();
      this.emitPolicy('egress.policy.reloaded', previous, next);
      return true;
    } catch (error) {
      this.events.emit({
        'event.name': 'egress.policy.rejected',
        'egress.schema': 1,
        'egress.source': 'sdk',
        'service.name': this.service,
        'egress.policy.hash': this.current.hash,
        'egress.policy.file': this.file,
        'egress.policy.problems':
          error instanceof EgressPolicyError
            ? error.problems.map((p) => `${p.line}:${p.column} ${p.path} ${p.message}`)
            : [String(error)],
      });
      return false;
    }
  }

  /** Stops watching the file and flushes buffered events. */
  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.reloadTimer);
    this.breakers.clear();
    await this.events.flush();
  }

  /** `url.full` without credentials, and without the query string unless asked. */
  redact(url: string): string {
    // Hot path: URLs the hooks build have no credentials or fragment; most have no query either.
    if (!url.includes('@') && !url.includes('#') && (this.logQueryStrings || !url.includes('?'))) return url;
    try {
      const u = new URL(url);
      u.username = '';
      u.password = '';
      if (!this.logQueryStrings && u.search) u.search = '?REDACTED';
      u.hash = '';
      return u.href;
    } catch {
      return '(unparsable URL)';
    }
  }

  private nextId(): string {
    return `${this.idPrefix}-${++this.sequence}`;
  }

  private emitDecision(
    decision: Decision,
    dest: Omit<Destination, 'service'>,
    hook: string,
    id: string,
    details: CheckDetails,
  ): void {
    const event: DecisionEvent = {
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': this.service,
      'egress.id': id,
      'egress.decision': decision.result,
      'egress.reason': decision.reason,
      'egress.rule': decision.rule,
      'egress.mode': decision.mode,
      'egress.policy.hash': decision.policyHash,
      'egress.hook': hook,
      'url.scheme': dest.scheme,
      'url.full': details.url ? this.redact(details.url) : undefined,
      'url.path': dest.path,
      'server.address': decision.host ?? dest.host,
      'server.port': dest.port,
      'network.peer.address': decision.address,
      'http.request.method': dest.method,
    };
    if (decision.result !== 'allowed') event['egress.message'] = decision.message;
    this.events.emit(event);
  }

  private emitPolicy(
    name: 'egress.policy.loaded' | 'egress.policy.reloaded',
    previous: Policy | undefined,
    next: Policy,
  ): void {
    this.events.emit({
      'event.name': name,
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': this.service,
      'egress.policy.hash': next.hash,
      'egress.policy.previous_hash': previous?.hash,
      'egress.policy.file': next.source.file,
      'egress.policy.diff': diffPolicies(previous, next),
    });
  }

  private watchFile(file: string): void {
    // Watch the directory: editors and ConfigMap updates replace the file rather than write it in place.
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name && name !== basename(file) && !String(name).startsWith('..')) return;
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => void this.reload(), 100);
        this.reloadTimer.unref();
      });
      this.watcher.on('error', () => {});
    } catch {
      // A file that cannot be watched can still be reloaded with reload().
    }
  }
}

/**
 * Creates a guard without patching anything: use its `dispatcher()`, agents and `lookup` explicitly.
 * Throws EgressPolicyError (with every problem) for an invalid policy, EgressOptionsError for bad options.
 */
export function createGuard(options: GuardOptions = {}): EgressGuard {
  const policyFile = options.policyFile ?? (options.policy ? undefined : process.env.EGRESS_GUARD_POLICY);
  const service = options.service ?? process.env.EGRESS_GUARD_SERVICE ?? undefined;
  if (!options.policy && !policyFile) {
    throw new EgressOptionsError(
      'no policy: pass { policy } or { policyFile }, or set EGRESS_GUARD_POLICY=./egress.yaml',
    );
  }
  const policy = options.policy ?? loadPolicyFileSync(policyFile!);
  return new EgressGuard({ ...options, policyFile, service: service || undefined }, policy);
}

export { EgressError };
