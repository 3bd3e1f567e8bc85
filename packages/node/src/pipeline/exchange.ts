import { type Decision, type Destination, decideCircuitOpen } from '@egress-guard/policy';
import type { CheckDetails, Checked, CompletionFields } from '../guard/audit-log.js';
import type { BreakerAdmission } from '../guard/breakers.js';
import type { GuardCore } from '../guard/guard-core.js';
import { errorType, outcomeOf } from './outcome.js';
import { decideAndRecord, recordCompletion } from './record.js';

/** How an exchange ended, as far as the hook saw it. */
export interface Ending {
  /** The outcome to record; default: from `error`, else `error` for a 5xx, else `ok`. */
  outcome?: string | undefined;
  error?: Error | undefined;
  status?: number | undefined;
  /** Other completion fields (bytes, TLS version). */
  fields?: Omit<CompletionFields, 'outcome' | 'durationMs'> | undefined;
}

/**
 * One request's life, from decision to completion: decide (and record the decision), admit through the
 * rule's breaker, settle the breaker with the outcome, record the completion exactly once. Hooks start an
 * exchange for each request and report what they see; they never write events or build decisions.
 */
export class Exchange {
  readonly started = performance.now();
  private admission: BreakerAdmission | undefined;
  private ended = false;

  constructor(
    readonly guard: GuardCore,
    private readonly checked: Checked,
    readonly hook: string,
  ) {}

  /** Decides a destination and records the decision: the start of a request's life. */
  static begin(
    guard: GuardCore,
    dest: Omit<Destination, 'service'>,
    hook: string,
    details?: CheckDetails,
  ): Exchange {
    return new Exchange(guard, decideAndRecord(guard, dest, hook, details), hook);
  }

  get decision(): Decision {
    return this.checked.decision;
  }

  get id(): string {
    return this.checked.id;
  }

  /** Whether the request may go ahead (`allowed`, or `reported` in report mode). */
  get allowed(): boolean {
    return this.checked.decision.allowed;
  }

  /** Ends a refused request: records `denied` and returns the error to fail it with. */
  refuse(decision: Decision = this.decision): Error {
    this.end({ outcome: 'denied', fields: { 'error.type': decision.reason } });
    return this.guard.errorFor(decision);
  }

  /**
   * Admits the request through the breaker of its rule and `origin`. Returns the error to fail fast with
   * when the circuit is open (the request is then ended, `circuit_open`), or undefined to go ahead.
   */
  admit(origin: string): Error | undefined {
    const admission = this.guard.admit(this.decision, origin);
    if (!admission || admission.admitted) {
      this.admission = admission;
      return undefined;
    }
    this.end({ outcome: 'circuit_open', fields: { 'error.type': 'circuit_open' } });
    return this.guard.errorFor(decideCircuitOpen(this.decision, origin));
  }

  /** Whether the request has ended (its completion is recorded). */
  get done(): boolean {
    return this.ended;
  }

  /**
   * Ends the request: settles the breaker (network errors, timeouts and 5xx fail it; the caller's own
   * abort and policy refusals do not) and records the completion. Later calls do nothing.
   */
  end(ending: Ending = {}): void {
    if (this.ended) return;
    this.ended = true;
    const { error, status = 0 } = ending;
    this.settle(error, status);
    recordCompletion(this.guard, this.id, this.hook, this.decision, {
      outcome: ending.outcome ?? (error ? outcomeOf(error) : status >= 500 ? 'error' : 'ok'),
      durationMs: performance.now() - this.started,
      'http.response.status_code': status || undefined,
      'error.type': error ? errorType(error) : undefined,
      ...ending.fields,
    });
  }

  private settle(error: Error | undefined, status: number): void {
    const admission = this.admission;
    if (!admission?.admitted) return;
    const code = (error as { code?: string } | undefined)?.code;
    if (error && code !== 'EGRESS_ERR_DENIED' && code !== 'ABORT_ERR') admission.ticket.fail(error);
    else if (status >= 500) admission.ticket.fail(new Error(`HTTP ${status}`));
    else admission.ticket.succeed();
  }
}
