import dns from 'node:dns';
import { type FSWatcher, watch } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { basename, dirname } from 'node:path';
import {
  createEventEmitter,
  type Decision,
  type Destination,
  decideConnection,
  decideInvalid,
  diffPolicies,
  type EgressError,
  EgressOptionsError,
  EgressPolicyError,
  type EventEmitter,
  errorForDecision,
  loadPolicyFile,
  type Policy,
} from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';
import { AuditLog, type CheckDetails, type Checked } from './audit-log.js';
import { type BreakerAdmission, BreakerRegistry } from './breakers.js';
import { DecisionCache } from './decision-cache.js';
import type { GuardOptions } from './guard-options.js';

// Captured at load, before any patch: the guard resolves names with the real dns.lookup.
const realLookup = dns.lookup.bind(dns) as LookupFunction;

/**
 * The guard's state: the policy in force, its decisions, the audit log, the breakers. The request
 * pipeline asks it and acts on its answer; it never touches a socket. `EgressGuard` adds the factories of
 * guarded clients (`dispatcher()`, `httpAgent()`, `httpsAgent()`).
 */
export class GuardCore {
  /** The service this process is, if any. */
  readonly service: string | undefined;
  readonly events: EventEmitter;
  /** Resolves names before the guard checks each address. */
  readonly baseLookup: LookupFunction;
  readonly ca: GuardOptions['ca'];
  readonly breakers: BreakerRegistry;
  /** Where decision and completion events are written; the request pipeline is its caller. */
  readonly audit: AuditLog;

  private current: Policy;
  private decisions: DecisionCache;
  private readonly file: string | undefined;
  /** The clock decisions are made at (for `reportUntil`). */
  readonly clock: () => number;
  /** Requests allowed in the last 30 seconds, by host|port; the least recently used go first when full. */
  private readonly recent = new LRUCache<string, { scheme: Destination['scheme']; until: number }>({
    max: 10_000,
  });
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  constructor(options: GuardOptions, policy: Policy) {
    this.current = policy;
    this.decisions = new DecisionCache(policy, options.service);
    this.file = options.policyFile;
    this.service = options.service;
    this.clock = options.now ?? Date.now;
    this.baseLookup = options.lookup ?? realLookup;
    this.ca = options.ca;
    const events = createEventEmitter({
      logger: options.logger,
      destination: options.destination,
      format: options.format,
      flushOnExit: options.flushOnExit,
      envelope: options.envelope,
      source: 'sdk',
    });
    this.events = events;
    this.audit = new AuditLog(events, this.service, options.logQueryStrings ?? false, options.audit);
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
    return this.decisions.decide(destination, this.clock());
  }

  /** Decides and writes the decision event. Every request or raw connection a hook sees calls this once. */
  check(destination: Omit<Destination, 'service'>, hook: string, details: CheckDetails = {}): Checked {
    const decision = this.decide(destination);
    const id = this.audit.nextId();
    this.audit.decision(decision, destination, hook, id, details);
    return { decision, id };
  }

  /**
   * Decides a connection whose content is not in view (see `decideConnection`): used where a connection
   * is opened without its request in view; each request on it is decided by the hook that sent it.
   */
  decideTransport(host: string, port: number, tls: boolean): Decision {
    return decideConnection(
      this.current,
      { host, port, transport: tls ? 'tls' : 'plain', service: this.service },
      this.clock(),
    );
  }

  /** A destination that could not even be parsed: `invalid_destination`, naming what was seen. */
  invalidDecision(what: string): Decision {
    return decideInvalid(this.current, what, { service: this.service }, this.clock());
  }

  /**
   * Remembers that a hook just allowed a request to host:port, so that the socket it causes, opened by
   * a client the guard did not build (a caller's own undici dispatcher or agent), is decided with the
   * request's scheme rather than as a raw connection.
   */
  noteRequest(scheme: Destination['scheme'], host: string, port: number): void {
    this.recent.set(`${host.toLowerCase()}|${port}`, { scheme, until: this.clock() + 30_000 });
  }

  /** The scheme of a request allowed to host:port in the last 30 seconds, if any. */
  recentRequest(host: string, port: number): Destination['scheme'] | undefined {
    const entry = this.recent.get(`${host.toLowerCase()}|${port}`);
    return entry && entry.until > this.clock() ? entry.scheme : undefined;
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
      this.decisions = new DecisionCache(next, this.service);
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
    this.audit.close();
    await this.events.flush();
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
