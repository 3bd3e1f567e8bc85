import { exportedHosts, joinPlaces, listenerPlace } from './exported-hosts.js';
import { hostMatchKey } from './host-match.js';
import type { ExportRule, Listener, WeakerFinding } from './plan.js';
import type { TargetSemantics } from './target.js';

/**
 * `name-validity` findings, per allow rule, on a target whose wildcards cannot exclude the names our decider
 * refuses as invalid ({@link TargetSemantics.wildcardsRefuseInvalidNames} false: Cilium's `*` and Istio's
 * `*.` take any label characters, so `-a.example.com` or `xn--broken.example.com` passes `*.example.com`).
 * Only for wildcard patterns the export actually carries: an exact name matches only the name the policy
 * file wrote (as on every target), and a pattern the core dropped opens nothing.
 */
export function nameValidityFindings(
  rules: readonly ExportRule[],
  listeners: readonly Listener[],
  sem: TargetSemantics,
): WeakerFinding[] {
  if (sem.wildcardsRefuseInvalidNames) return [];
  const findings: WeakerFinding[] = [];
  for (const rule of rules) {
    const hosts = new Set<string>();
    const where = new Set<string>();
    for (const { host, listener } of exportedHosts(rule, listeners, sem)) {
      if (host.kind === 'exact') continue;
      hosts.add(hostMatchKey(host));
      where.add(listenerPlace(listener));
    }
    if (hosts.size === 0) continue;
    findings.push({
      rule: rule.name,
      dimension: 'name-validity',
      detail: `${[...hosts].join(', ')} on ${joinPlaces(where)} also matches names the policy denies as invalid`,
    });
  }
  return findings;
}
