import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { EffectiveBreaker } from '@egress-guard/policy';
import type CircuitBreaker from 'opossum';

let Opossum: typeof CircuitBreaker | undefined;

/** opossum, loaded with the first breaker (a rule with a breaker, on its first call), not with the SDK. */
function opossum(): typeof CircuitBreaker {
  Opossum ??= createRequire(typeof __filename === 'string' ? __filename : import.meta.url)(
    'opossum',
  ) as typeof CircuitBreaker;
  return Opossum;
}

/** The outcome of one guarded call, reported to its breaker. */
export interface BreakerTicket {
  succeed(): void;
  fail(error: Error): void;
}

/** What the breaker said about a call: go ahead (with a ticket to report the outcome), or it is open. */
export type BreakerAdmission = { admitted: true; ticket: BreakerTicket } | { admitted: false };

type BreakerState = 'open' | 'half_open' | 'closed';

/** Shared: a refusal carries nothing per call, and the open path should not allocate. */
const REFUSED: BreakerAdmission = Object.freeze({ admitted: false as const });

/** Slices of the rolling window, as opossum's default `rollingCountBuckets`. */
const SLICES = 10;

/**
 * opossum's own rolling `Status` is not used (see {@link RollingCounts}); this controller never ticks, so
 * that Status keeps no interval timer of its own per breaker.
 */
const idleRotation = new EventEmitter().setMaxListeners(0);

/**
 * Settled outcomes of admitted calls in a rolling window, rotated by a timer rather than by reading the
 * clock per call (a clock read costs more than the rest of an admission). Fail-fast refusals are never
 * counted here: opossum counts them as fires, which diluted the error rate of the next outage.
 */
class RollingCounts {
  calls = 0;
  failed = 0;
  private readonly successes = new Uint32Array(SLICES);
  private readonly failures = new Uint32Array(SLICES);
  private head = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(windowMs: number) {
    this.timer = setInterval(() => this.rotate(), Math.max(1, Math.floor(windowMs / SLICES)));
    this.timer.unref();
  }

  success(): void {
    this.successes[this.head]!++;
    this.calls++;
  }

  failure(): void {
    this.failures[this.head]!++;
    this.calls++;
    this.failed++;
  }

  reset(): void {
    this.successes.fill(0);
    this.failures.fill(0);
    this.calls = 0;
    this.failed = 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private rotate(): void {
    const next = (this.head + 1) % SLICES;
    this.calls -= this.successes[next]! + this.failures[next]!;
    this.failed -= this.failures[next]!;
    this.successes[next] = 0;
    this.failures[next] = 0;
    this.head = next;
  }
}

/** One call's ticket: reports once, to the period (epoch) of the circuit it was admitted in. */
class Ticket implements BreakerTicket {
  private settled = false;

  constructor(
    private readonly circuit: Circuit,
    private readonly epoch: number,
  ) {}

  succeed(): void {
    if (this.settled) return;
    this.settled = true;
    this.circuit.settle(this.epoch, false);
  }

  fail(_error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.circuit.settle(this.epoch, true);
  }
}

/**
 * One rule and origin. opossum keeps the state machine (open, the resetTimeout timer, half-open, close,
 * and their events); admission and counting are done here, synchronously, without `fire()`, so a closed
 * breaker costs a state check and two increments per call instead of a promise chain.
 */
class Circuit {
  state: BreakerState = 'closed';
  /** Bumped on every state change, so outcomes of calls admitted in an earlier period are ignored. */
  private epoch = 0;
  private probing = false;
  private readonly counts: RollingCounts;
  private readonly breaker: CircuitBreaker;

  constructor(
    private readonly settings: EffectiveBreaker,
    onState: (state: BreakerState) => void,
  ) {
    this.counts = new RollingCounts(settings.rollingWindow);
    this.breaker = new (opossum())(refuseFire, {
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: settings.rollingWindow,
      rollingCountBuckets: SLICES,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: idleRotation,
    });
    this.breaker.on('open', () => this.enter('open', onState));
    this.breaker.on('halfOpen', () => this.enter('half_open', onState));
    this.breaker.on('close', () => this.enter('closed', onState));
  }

  admit(): BreakerAdmission {
    if (this.state === 'closed') return { admitted: true, ticket: new Ticket(this, this.epoch) };
    if (this.state === 'open' || this.probing) return REFUSED;
    this.probing = true;
    return { admitted: true, ticket: new Ticket(this, this.epoch) };
  }

  settle(epoch: number, failed: boolean): void {
    // A call admitted before the last change says nothing about this period: in half-open only the probe
    // (the one ticket of this epoch) decides, and a closed period starts with an empty window.
    if (epoch !== this.epoch) return;
    if (this.state === 'half_open') {
      if (failed) this.breaker.open();
      else this.breaker.close();
    } else if (this.state === 'closed') {
      if (!failed) {
        this.counts.success();
      } else {
        this.counts.failure();
        if (this.tripped()) this.breaker.open();
      }
    }
  }

  /** Drops the breaker: its timers stop and tickets still out no longer count. */
  retire(): void {
    this.epoch++;
    this.counts.stop();
    this.breaker.shutdown();
  }

  /** opossum's rule (volume reached, error rate strictly above the threshold), on settled calls only. */
  private tripped(): boolean {
    const { calls, failed } = this.counts;
    return (
      calls >= this.settings.volumeThreshold && failed * 100 > this.settings.errorThresholdPercentage * calls
    );
  }

  private enter(state: BreakerState, onState: (state: BreakerState) => void): void {
    this.state = state;
    this.epoch++;
    this.probing = false;
    // A recovered origin starts as a fresh breaker: the previous outage's counts must not reopen it early.
    if (state === 'closed') this.counts.reset();
    onState(state);
  }
}

/** opossum's action: never called, since calls are admitted without `fire()`. */
function refuseFire(): Promise<never> {
  return Promise.reject(new Error('egress-guard admits calls without CircuitBreaker.fire()'));
}

/**
 * One breaker per rule and origin. A call is admitted synchronously, so a hook knows before dialling
 * whether to fail fast: closed admits every call, open refuses every call without a connection, half-open
 * admits one probe at a time and its outcome closes or reopens the breaker. Failures open it once at least
 * `volumeThreshold` calls settled in the rolling window and more than `errorThresholdPercentage` of them
 * failed; calls refused while open are not counted, and every close starts a fresh window.
 */
export class BreakerRegistry {
  private readonly circuits = new Map<string, Circuit>();

  /** @param onState called once per state change of a breaker, with its key and rule. */
  constructor(
    private readonly onState: (
      key: string,
      rule: string | undefined,
      state: 'open' | 'half_open' | 'closed',
    ) => void,
  ) {}

  /**
   * Admits a call through the breaker of `key`, created with `settings` on first use. An admitted call
   * must report its outcome once through the ticket (network errors, timeouts and 5xx as failures).
   */
  admit(key: string, rule: string | undefined, settings: EffectiveBreaker): BreakerAdmission {
    let circuit = this.circuits.get(key);
    if (circuit === undefined) {
      circuit = new Circuit(settings, (state) => this.onState(key, rule, state));
      this.circuits.set(key, circuit);
    }
    return circuit.admit();
  }

  /** Current state, for tests and metrics. */
  state(key: string): 'open' | 'half_open' | 'closed' | undefined {
    return this.circuits.get(key)?.state;
  }

  /** Drops every breaker (on policy reload: settings may have changed). */
  clear(): void {
    for (const circuit of this.circuits.values()) circuit.retire();
    this.circuits.clear();
  }
}
