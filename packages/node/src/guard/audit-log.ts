import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import {
  AllowedTrafficSummary,
  type AuditOptions,
  type CompletionEvent,
  type Decision,
  type DecisionEvent,
  type Destination,
  EgressOptionsError,
  type EventEmitter,
} from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';

/** Extra fields a hook adds to a decision event. */
export interface CheckDetails {
  /** The full URL, for `url.full` (the query string is redacted unless `logQueryStrings`). */
  url?: string | undefined;
}

/** What a decision was recorded as: the decision and the id that ties later events of the request to it. */
export interface Checked {
  decision: Decision;
  id: string;
}

/** A decision held in summary mode until its request completes. */
interface Held {
  event: DecisionEvent;
  json: string | undefined;
  /** Written already (another decision of the same request came first, or it was pushed out). */
  written: boolean;
}

/** The fields of a completion event a hook knows: how it ended and how long it took, plus any others. */
export type CompletionFields = Partial<CompletionEvent> & { outcome: string; durationMs: number };

/**
 * `diagnostics_channel` names on which every SDK decision and completion event is published, as the
 * object written to the audit log, so APM and tracing tools can subscribe without parsing logs.
 */
export const DECISION_CHANNEL = 'egress-guard:decision';
export const COMPLETION_CHANNEL = 'egress-guard:completion';

// Module-level: diagnostics_channel keeps channels by name, and `hasSubscribers` is the cheap check.
const decisionChannel = diagnostics.channel(DECISION_CHANNEL);
const completionChannel = diagnostics.channel(COMPLETION_CHANNEL);

/**
 * Where the SDK's decision and completion events are made and written: the event shape, ids, URL
 * redaction, and the diagnostics channels. The request pipeline is its only caller for requests and
 * connections (`guard.check()` uses it for tools).
 */
export class AuditLog {
  private readonly idPrefix = randomBytes(4).toString('hex');
  private sequence = 0;
  /** Summary mode: allowed traffic counted per rule, origin and outcome instead of a line per request. */
  private readonly summary: AllowedTrafficSummary | undefined;
  /**
   * Summary mode: the allowed decision of each request in flight, held until its completion says whether
   * the request is summarised (then neither line is written) or not (then both are). Bounded: a decision
   * whose completion never comes is written when it is pushed out, so nothing is lost.
   */
  private readonly held: LRUCache<string, Held> | undefined;

  constructor(
    private readonly events: EventEmitter,
    private readonly service: string | undefined,
    private readonly logQueryStrings: boolean,
    audit: AuditOptions = {},
  ) {
    const allowed = audit.allowed ?? 'each';
    if (allowed !== 'each' && allowed !== 'summary')
      throw new EgressOptionsError(`audit.allowed: "${String(allowed)}" is not 'each' or 'summary'`);
    if (allowed === 'summary') {
      this.summary = new AllowedTrafficSummary({
        emit: (event) => events.emit(event),
        source: 'sdk',
        intervalMs: audit.intervalMs,
      });
      this.held = new LRUCache<string, Held>({
        max: 10_000,
        dispose: (held, _id, reason) => {
          if (reason === 'evict' && !held.written) events.emit(held.event, held.json);
        },
      });
    }
  }

  /** Writes what summary mode holds (the open interval, decisions still in flight). */
  close(): void {
    this.summary?.close();
    if (!this.held) return;
    for (const held of this.held.values()) if (!held.written) this.events.emit(held.event, held.json);
    this.held.clear();
  }

  /**
   * Summary mode: holds a request's allowed decision (true), or, for any other decision under the id of a
   * request whose decision is held, writes the held one first so the request's lines stay together.
   */
  private hold(decision: Decision, event: DecisionEvent, json: string | undefined): boolean {
    const held = this.held;
    if (!held) return false;
    const id = event['egress.id'];
    const first = held.get(id);
    if (!first && decision.result === 'allowed') {
      held.set(id, { event, json, written: false });
      return true;
    }
    if (first && !first.written) {
      first.written = true;
      this.events.emit(first.event, first.json);
    }
    return false;
  }

  /** Summary mode: whether the completion was counted in the summary (its held decision is then dropped). */
  private summarised(event: CompletionEvent, decision: Decision): boolean {
    const held = this.held;
    const id = event['egress.id'];
    const first = held?.get(id);
    if (!held || !first) return false;
    held.delete(id);
    if (!first.written && this.summary?.record(event, decision)) return true;
    if (!first.written) this.events.emit(first.event, first.json);
    return false;
  }

  /** A new request id: unique in the process, cheap (a per-guard random prefix and a counter). */
  nextId(): string {
    return `${this.idPrefix}-${++this.sequence}`;
  }

  /** Writes a decision event (and publishes it on `egress-guard:decision`). */
  decision(
    decision: Decision,
    dest: Omit<Destination, 'service'>,
    hook: string,
    id: string,
    details: CheckDetails = {},
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
    const json = Object.isFrozen(decision) ? this.decisionJson(event, decision, dest, hook) : undefined;
    if (!this.hold(decision, event, json)) this.events.emit(event, json);
    if (decisionChannel.hasSubscribers) decisionChannel.publish(event);
  }

  /** Writes a completion event (and publishes it on `egress-guard:completion`). */
  completion(id: string, hook: string, decision: Decision, fields: CompletionFields): void {
    const { outcome, durationMs, ...rest } = fields;
    const event: CompletionEvent = {
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
    };
    if (!this.summarised(event, decision)) {
      const json = Object.isFrozen(decision) ? this.completionJson(event, decision, hook, rest) : undefined;
      this.events.emit(event, json);
    }
    if (completionChannel.hasSubscribers) completionChannel.publish(event);
  }

  // The fields of a line that depend only on the decision (a frozen one, from the guard's decision cache,
  // is the same object for every request to the same destination), the hook and the destination: rendered
  // once as JSON, and only the request's own fields are serialised per event.
  private readonly fixedParts = new WeakMap<Decision, Map<string, string>>();

  private fixedPart(decision: Decision, key: string, render: () => object): string {
    let parts = this.fixedParts.get(decision);
    if (!parts) {
      parts = new Map();
      this.fixedParts.set(decision, parts);
    }
    let fixed = parts.get(key);
    if (fixed === undefined) {
      fixed = JSON.stringify(render()).slice(0, -1);
      parts.set(key, fixed);
    }
    return fixed;
  }

  private decisionJson(
    event: DecisionEvent,
    decision: Decision,
    dest: Omit<Destination, 'service'>,
    hook: string,
  ): string {
    const key = `d\u0000${hook}\u0000${dest.scheme}\u0000${dest.host}\u0000${dest.port}`;
    const fixed = this.fixedPart(decision, key, () => {
      const {
        'egress.id': _id,
        'url.full': _url,
        'url.path': _path,
        'http.request.method': _method,
        ...rest
      } = event;
      return rest;
    });
    const own = JSON.stringify({
      'egress.id': event['egress.id'],
      'url.full': event['url.full'],
      'url.path': event['url.path'],
      'http.request.method': event['http.request.method'],
    });
    return `${fixed},${own.slice(1)}`;
  }

  private completionJson(
    event: CompletionEvent,
    decision: Decision,
    hook: string,
    rest: Partial<CompletionEvent>,
  ): string {
    const fixed = this.fixedPart(decision, `c\u0000${hook}`, () => ({
      'event.name': event['event.name'],
      'egress.schema': event['egress.schema'],
      'egress.source': event['egress.source'],
      'service.name': event['service.name'],
      'egress.hook': hook,
      'egress.rule': event['egress.rule'],
      'egress.policy.hash': event['egress.policy.hash'],
      'server.address': event['server.address'],
      'server.port': event['server.port'],
    }));
    const own = JSON.stringify({
      'egress.id': event['egress.id'],
      'egress.outcome': event['egress.outcome'],
      'egress.duration_ms': event['egress.duration_ms'],
      ...rest,
    });
    return `${fixed},${own.slice(1)}`;
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
}
