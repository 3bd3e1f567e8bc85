/**
 * The flow log: exactly one decision event and one completion event per flow (a tunnelled connection,
 * or one plaintext HTTP request), in the audit schema the SDK writes, with `egress.source: edge`.
 */
import { performance } from 'node:perf_hooks';
import type { CompletionEvent, Decision, DecisionEvent, EventEmitter } from '@egress-guard/policy';
import type { ListenerKind } from './config.js';
import type { EdgeMetrics } from './metrics.js';
import { tlsVersionName } from './tls-wire.js';

/** The `egress.hook` of each listener kind. */
export const HOOKS: Readonly<Record<ListenerKind, 'edge.explicit' | 'edge.transparent' | 'edge.sni'>> = {
  explicit: 'edge.explicit',
  transparent: 'edge.transparent',
  sni: 'edge.sni',
};

/**
 * How a flow ended. `ok`: closed by either side; `denied`: refused (at decision, or after it, e.g. the
 * ServerHello below the floor); `timeout`: a time limit elapsed; `error`: the upstream could not be reached
 * or a socket failed; `tls`: the upstream refused the handshake with an alert.
 */
export type FlowOutcome = 'ok' | 'denied' | 'timeout' | 'error' | 'tls';

/** What the flow learnt from the wire, for its events. */
export interface FlowFacts {
  serverName?: string | undefined;
  alpn?: string[] | undefined;
  /** Highest TLS version the client offered (wire value). */
  clientVersion?: number | undefined;
  /** TLS version the upstream selected (wire value). */
  serverVersion?: number | undefined;
  method?: string | undefined;
  /** Path without the query string. */
  path?: string | undefined;
  /** Scheme, host, port and path; never the query. */
  url?: string | undefined;
  statusCode?: number | undefined;
  /** Report mode: why the upstream's answer would have been refused (e.g. its TLS version). */
  reportedServerVersion?: string | undefined;
}

/** One flow's bookkeeping and its two events. */
export class FlowRecord {
  readonly started = performance.now();
  readonly facts: FlowFacts = {};
  decision: Decision | undefined;
  /** Bytes from the client delivered upstream. */
  sent = 0;
  /** Bytes read from the upstream. */
  received = 0;
  private completed = false;
  /** True while {@link FlowRecord.decision} is held, not yet written. */
  private held = false;

  constructor(
    readonly id: string,
    readonly listener: ListenerKind,
    /** The client's address (canonical). */
    readonly source: string,
    private readonly events: EventEmitter,
    private readonly metrics: EdgeMetrics,
  ) {}

  /** Whether the completion event was written. */
  get done(): boolean {
    return this.completed;
  }

  /**
   * Holds `decision` as the flow's decision without writing it yet: a flow whose upstream's first answer
   * is still to be checked (the ServerHello's version, the second ClientHello, the SSH banner) may still be
   * refused, and its one decision event must then say so. The next {@link FlowRecord.decide} (with the
   * final decision) or {@link FlowRecord.complete} writes it.
   */
  hold(decision: Decision): void {
    if (this.decision) return;
    this.decision = decision;
    this.held = true;
  }

  /**
   * Writes the decision event. Only the first call writes; later ones are ignored, except that a held
   * decision is replaced by the one given.
   */
  decide(decision: Decision): void {
    if (this.decision && !this.held) return;
    this.held = false;
    this.decision = decision;
    const f = this.facts;
    const event: DecisionEvent = {
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': decision.service,
      'egress.id': this.id,
      'egress.decision': decision.result,
      'egress.reason': decision.reason,
      'egress.rule': decision.rule,
      'egress.mode': decision.mode,
      'egress.policy.hash': decision.policyHash,
      'egress.hook': HOOKS[this.listener],
      'url.scheme': decision.scheme,
      'url.full': f.url,
      'url.path': f.path,
      'server.address': decision.host,
      'server.port': decision.port,
      'network.peer.address': decision.address,
      'http.request.method': f.method,
      'client.address': this.source,
      'tls.client.server_name': f.serverName,
    };
    if (decision.result !== 'allowed') event['egress.message'] = decision.message;
    this.events.emit(event);
    this.metrics.forListener(this.listener).decided(decision.result, decision.reason);
  }

  /**
   * Writes the completion event (once) with bytes each way, duration, close reason, TLS versions and ALPN.
   * A flow that never got a decision gets none here: callers decide first.
   */
  complete(outcome: FlowOutcome, closeReason: string, errorType?: string): void {
    if (this.completed) return;
    if (this.held && this.decision) this.decide(this.decision);
    this.completed = true;
    const d = this.decision;
    const f = this.facts;
    const durationMs = performance.now() - this.started;
    const event: CompletionEvent = {
      'event.name': 'egress.completion',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': d?.service,
      'egress.id': this.id,
      'egress.hook': HOOKS[this.listener],
      'egress.rule': d?.rule,
      'egress.policy.hash': d?.policyHash ?? '',
      'egress.outcome': outcome,
      'egress.duration_ms': Math.round(durationMs * 1000) / 1000,
      'server.address': d?.host,
      'server.port': d?.port,
      'http.response.status_code': f.statusCode,
      'tls.protocol.version': f.serverVersion !== undefined ? tlsVersionName(f.serverVersion) : undefined,
      'tls.client.alpn': f.alpn && f.alpn.length > 0 ? f.alpn.join(',') : undefined,
      'egress.bytes.sent': this.sent,
      'egress.bytes.received': this.received,
      'egress.close_reason': closeReason,
      'error.type':
        errorType ??
        (f.reportedServerVersion ? `tls_version (report mode): ${f.reportedServerVersion}` : undefined),
      'client.address': this.source,
      'egress.tls.client_max_version':
        f.clientVersion !== undefined ? tlsVersionName(f.clientVersion) : undefined,
      'tls.client.server_name': f.serverName,
    };
    this.events.emit(event);
    this.metrics
      .forListener(this.listener)
      .closed(outcome, closeReason, durationMs / 1000, this.sent, this.received);
  }
}
