import type { Decision, Policy, ReasonCode } from '@egress-guard/policy';
import { destinationLabel } from './format.js';
import type { LoggedDecision } from './read-events.js';

/** What enforcing a policy would have done to the logged traffic of one service. */
export interface ServiceDiff {
  /** The service of the logged decisions (undefined: none). */
  service: string | undefined;
  /** Whether the policy has a section for it (else the top-level rules decided). */
  inPolicy: boolean;
  decisions: number;
  wouldDeny: number;
  /** Per reason: count and the destinations, most frequent first. */
  reasons: Map<ReasonCode, { count: number; destinations: Map<string, number> }>;
}

/** The policy's answer for a logged decision, as if enforced now. */
export function redecide(policy: Policy, d: LoggedDecision, now: number): Decision {
  const service = d.service !== undefined && policy.services.includes(d.service) ? d.service : undefined;
  // A DNS look-up was decided as a look-up: ask the same question again.
  if (d.hook === 'dns' && d.host) return policy.decideLookup(d.host, service, now);
  return policy.decide(
    {
      scheme: d.scheme,
      host: d.host,
      address: d.address,
      port: d.port,
      method: d.method,
      path: d.path,
      service,
    },
    now,
  );
}

/**
 * Re-decides every logged destination with `policy` and collects, per service, what would have been
 * denied. A `reported` answer counts as denied: the question is what enforcing would do. A summary
 * counts as the decisions it stands for; it has no method or path, so only its origin is decided again.
 */
export function diffAgainst(
  policy: Policy,
  decisions: readonly LoggedDecision[],
  now = Date.now(),
): ServiceDiff[] {
  const out = new Map<string | undefined, ServiceDiff>();
  // Identical destinations get identical answers: decide each once.
  const cache = new Map<string, Decision>();
  for (const d of decisions) {
    let s = out.get(d.service);
    if (!s) {
      s = {
        service: d.service,
        inPolicy: d.service === undefined || policy.services.includes(d.service),
        decisions: 0,
        wouldDeny: 0,
        reasons: new Map(),
      };
      out.set(d.service, s);
    }
    s.decisions += d.count;
    const key = [d.service, d.hook === 'dns', d.scheme, d.host, d.address, d.port, d.method, d.path].join(
      '|',
    );
    let decision = cache.get(key);
    if (!decision) {
      decision = redecide(policy, d, now);
      if (cache.size < 100_000) cache.set(key, decision);
    }
    if (decision.result === 'allowed') continue;
    s.wouldDeny += d.count;
    const r = s.reasons.get(decision.reason) ?? { count: 0, destinations: new Map<string, number>() };
    r.count += d.count;
    // The method and path matter only when they are the reason; otherwise one line per destination.
    const detail =
      (decision.reason === 'method_not_allowed' || decision.reason === 'path_not_allowed') && d.method
        ? ` ${d.method}${d.path ? ` ${d.path}` : ''}`
        : '';
    const label =
      d.hook === 'dns'
        ? `dns lookup ${d.host}`
        : `${destinationLabel(d.scheme, d.host ?? d.address ?? '?', d.port)}${detail}`;
    r.destinations.set(label, (r.destinations.get(label) ?? 0) + d.count);
    s.reasons.set(decision.reason, r);
  }
  return [...out.values()].sort((a, b) => (a.service ?? '').localeCompare(b.service ?? ''));
}
