import type { WeakerDimension } from './dimensions.js';
import { exportedHosts, joinPlaces, listenerPlace } from './exported-hosts.js';
import { hostMatchKey } from './host-match.js';
import type { ExportRule, Listener, WeakerFinding } from './plan.js';
import type { Destination, TargetSemantics } from './target.js';

/** The weaker dimension an engine's {@link Destination} leaves unenforced, if any. */
const DIMENSION_OF: Readonly<Record<Destination, WeakerDimension | undefined>> = {
  'resolves-name': undefined,
  'client-address': 'destination-binding',
  'resolved-addresses': 'server-name',
};

/**
 * `destination-binding` and `server-name` findings, per allow rule, for the names the export actually
 * carries (after narrowing: a pattern the core dropped opens nothing, so it weakens nothing). Each finding
 * names the rule's exported patterns and where they are allowed (`TLS 443`, `HTTP 80`; `TCP 443` for an
 * address-level engine).
 */
export function destinationFindings(
  rules: readonly ExportRule[],
  listeners: readonly Listener[],
  sem: TargetSemantics,
): WeakerFinding[] {
  const findings: WeakerFinding[] = [];
  for (const rule of rules) {
    const byDimension = new Map<WeakerDimension, { hosts: Set<string>; where: Set<string> }>();
    for (const { host, listener } of exportedHosts(rule, listeners, sem)) {
      const dimension = DIMENSION_OF[sem.destination[host.kind === 'exact' ? 'exact' : 'wildcard']];
      if (dimension === undefined) continue;
      const found = byDimension.get(dimension) ?? { hosts: new Set<string>(), where: new Set<string>() };
      found.hosts.add(hostMatchKey(host));
      // An address-level engine opens the port whatever the transport: say TCP.
      found.where.add(dimension === 'server-name' ? `TCP ${listener.port}` : listenerPlace(listener));
      byDimension.set(dimension, found);
    }
    for (const [dimension, { hosts, where }] of byDimension) {
      const names = [...hosts].join(', ');
      const ports = joinPlaces(where);
      findings.push({
        rule: rule.name,
        dimension,
        detail:
          dimension === 'destination-binding'
            ? `${names} on ${ports} goes to whatever address the client chose`
            : `the addresses of ${names} are open on ${ports} to any protocol and name`,
      });
    }
  }
  return findings;
}
