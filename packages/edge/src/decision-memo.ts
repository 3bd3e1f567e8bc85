/**
 * Decisions of one compiled policy, remembered per destination: the edge sees
 * the same few (service, host, port, scheme) over and over, and the decider is pure but for the clock,
 * which only sets the mode (report until `reportUntil`). An entry is used only while the mode it was made
 * in is still the mode in force. Each policy object has its own memo, so a reload (a new policy object)
 * starts from nothing and the old memo goes with the old policy.
 */
import type { Decision, DecisionSource, Destination, Policy } from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';

/** Entries kept per policy; beyond it the least recently used goes (a flood of names cannot grow it). */
const MAX_ENTRIES = 4096;

/** The decider of one policy, with its answers remembered. */
export class DecisionMemo implements DecisionSource {
  private readonly decisions = new LRUCache<string, Decision>({ max: MAX_ENTRIES });

  constructor(readonly policy: Policy) {}

  /** `policy.decide(dest, now)`, remembered. The decision is frozen: every flow gets the same object. */
  decide(dest: Destination, now: number = Date.now()): Decision {
    const key = keyOf(dest);
    const hit = this.decisions.get(key);
    if (hit !== undefined && hit.mode === this.policy.modeAt(now, dest.service)) return hit;
    const decision = Object.freeze(this.policy.decide(dest, now));
    this.decisions.set(key, decision);
    return decision;
  }
}

const memos = new WeakMap<Policy, DecisionMemo>();

/** The memo of `policy` (made on first use, dropped with the policy). */
export function decisionsFor(policy: Policy): DecisionMemo {
  let memo = memos.get(policy);
  if (memo === undefined) {
    memo = new DecisionMemo(policy);
    memos.set(policy, memo);
  }
  return memo;
}

// NUL cannot appear in a host, method, path or service name, so the parts cannot run into each other.
function keyOf(d: Destination): string {
  return `${d.scheme}\u0000${d.host ?? ''}\u0000${d.port}\u0000${d.address ?? ''}\u0000${d.service ?? ''}\u0000${d.method ?? ''}\u0000${d.path ?? ''}`;
}
