import type { Decision, Destination, Policy } from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';

/**
 * Decisions of one policy, remembered per destination: a service calls the same few endpoints over and
 * over, and a decision is pure but for the clock, which only decides the mode (report until
 * `reportUntil`). An entry is used only while the mode it was made in is still the mode in force; the
 * cache belongs to one policy and is dropped with it. The same Decision object for the same destination
 * also lets the audit log reuse the parts of an event line that depend only on the decision.
 */
export class DecisionCache {
  private readonly entries = new LRUCache<string, Decision>({ max: 4096 });

  constructor(
    readonly policy: Policy,
    private readonly service: string | undefined,
  ) {}

  decide(dest: Omit<Destination, 'service'>, now: number): Decision {
    const key = keyOf(dest);
    const cached = this.entries.get(key);
    if (cached && cached.mode === this.policy.modeAt(now, this.service)) return cached;
    // Frozen: every caller gets the same object, so none may change it for the others.
    const decision = Object.freeze(this.policy.decide({ ...dest, service: this.service }, now));
    this.entries.set(key, decision);
    return decision;
  }
}

// NUL cannot appear in a host, method or path the hooks pass on, so the parts cannot run into each other.
function keyOf(d: Omit<Destination, 'service'>): string {
  return `${d.scheme}\u0000${d.host ?? ''}\u0000${d.port}\u0000${d.address ?? ''}\u0000${d.method ?? ''}\u0000${d.path ?? ''}`;
}
