import {
  type Decision,
  decideDnsAnswerAddress,
  decideDnsQuestion,
  type Policy,
  type ReasonCode,
} from '@egress-guard/policy';
import { destinationLabel } from './format.js';
import { isLookup, type LoggedDecision } from './read-events.js';

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
  // A DNS look-up was decided as a look-up: ask the same question again (the edge's with its type and
  // the addresses it answered, as the DNS guard decides them).
  if (d.hook === 'edge.dns' && d.host) {
    const question = decideDnsQuestion(policy, { name: d.host, type: d.dnsType ?? 'A', service }, now);
    if (question.result !== 'allowed') return question;
    for (const address of d.answers ?? []) {
      const answer = decideDnsAnswerAddress(policy, question, address);
      if (answer.result !== 'allowed') return answer;
    }
    return question;
  }
  if (isLookup(d) && d.host) return policy.decideLookup(d.host, service, now);
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
    const key = [
      d.service,
      isLookup(d) ? d.hook : '',
      d.scheme,
      d.host,
      d.address,
      d.port,
      d.method,
      d.path,
      d.dnsType,
      d.answers?.join(','),
    ].join('|');
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
    // A dial-time refusal names the address dialled: that is what a rule must allow.
    const at = decision.reason === 'private_address' && d.host && d.address ? ` at ${d.address}` : '';
    const label = isLookup(d)
      ? `dns lookup ${d.host}${d.dnsType ? ` ${d.dnsType}` : ''}`
      : `${destinationLabel(d.scheme, d.host ?? d.address ?? '?', d.port)}${detail}${at}`;
    r.destinations.set(label, (r.destinations.get(label) ?? 0) + d.count);
    s.reasons.set(decision.reason, r);
  }
  return [...out.values()].sort((a, b) => (a.service ?? '').localeCompare(b.service ?? ''));
}
