import type { Decision, Destination } from '../types.js';

/**
 * What the decisions in this folder need of a policy: its decider. A `Policy` is one; taking the
 * interface rather than the class keeps `decide/` below `policy.ts` (no import cycle, not even type-only).
 */
export interface DecisionSource {
  decide(destination: Destination, now?: number): Decision;
}
