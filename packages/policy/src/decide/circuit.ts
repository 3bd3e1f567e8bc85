import type { Decision } from '../types.js';
import { refineDecision } from './refine.js';

/**
 * A call refused because the circuit breaker of its rule and origin is open: it fails fast, without a
 * connection. Refused in report mode too: the breaker protects the service from an outage, it is not a
 * policy that report mode relaxes.
 */
export function decideCircuitOpen(decision: Decision, origin: string): Decision {
  const retry = decision.breaker === false ? 0 : decision.breaker.resetTimeout;
  return refineDecision(
    decision,
    'circuit_open',
    `the circuit breaker for rule "${decision.rule}" and ${origin} is open after repeated failures; it retries after ${retry} ms (breaker settings are in the rule's breaker or in defaults.breaker)`,
    true,
  );
}
