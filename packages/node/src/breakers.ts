import type { EffectiveBreaker } from '@egress-guard/policy';
import CircuitBreaker from 'opossum';

/** The outcome of one guarded call, reported to its breaker. */
export interface BreakerTicket {
  succeed(): void;
  fail(error: Error): void;
}

/** What the breaker said about a call: go ahead (with a ticket to report the outcome), or it is open. */
export type BreakerAdmission = { admitted: true; ticket: BreakerTicket } | { admitted: false };

/**
 * One opossum breaker per rule and origin. A call is admitted synchronously (opossum runs the action
 * inside `fire()` when the circuit lets it through), so a hook knows before dialling whether to fail fast.
 */
export class BreakerRegistry {
  private readonly breakers = new Map<string, CircuitBreaker>();

  constructor(
    private readonly onState: (
      key: string,
      rule: string | undefined,
      state: 'open' | 'half_open' | 'closed',
    ) => void,
  ) {}

  admit(key: string, rule: string | undefined, settings: EffectiveBreaker): BreakerAdmission {
    let breaker = this.breakers.get(key);
    if (!breaker) {
      breaker = new CircuitBreaker(
        (settle: (t: BreakerTicket) => void) =>
          new Promise<void>((resolve, reject) => settle({ succeed: () => resolve(), fail: reject })),
        {
          timeout: false,
          errorThresholdPercentage: settings.errorThresholdPercentage,
          volumeThreshold: settings.volumeThreshold,
          resetTimeout: settings.resetTimeout,
          rollingCountTimeout: settings.rollingWindow,
          rollingCountBuckets: 10,
        },
      );
      breaker.on('open', () => this.onState(key, rule, 'open'));
      breaker.on('halfOpen', () => this.onState(key, rule, 'half_open'));
      breaker.on('close', () => this.onState(key, rule, 'closed'));
      this.breakers.set(key, breaker);
    }
    let ticket: BreakerTicket | undefined;
    breaker
      .fire((t: BreakerTicket) => {
        ticket = t;
      })
      .catch(() => {
        // Failures are counted by opossum; the caller already has the error.
      });
    return ticket ? { admitted: true, ticket } : { admitted: false };
  }

  /** Current state, for tests and metrics. */
  state(key: string): 'open' | 'half_open' | 'closed' | undefined {
    const b = this.breakers.get(key);
    if (!b) return undefined;
    return b.opened ? 'open' : b.halfOpen ? 'half_open' : 'closed';
  }

  /** Drops every breaker (on policy reload: settings may have changed). */
  clear(): void {
    for (const b of this.breakers.values()) b.shutdown();
    this.breakers.clear();
  }
}
