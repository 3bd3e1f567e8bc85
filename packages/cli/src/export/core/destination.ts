import type { WeakerDimension } from './dimensions.js';
import { type HostMatch, hostMatchKey } from './host-match.js';
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
    if (rule.kind !== 'allow') continue;
    const byDimension = new Map<WeakerDimension, { hosts: Set<string>; where: Set<string> }>();
    for (const listener of listeners) {
      for (const host of rule.hosts) {
        if (!exported(listener, rule.name, host, sem)) continue;
        const dimension = DIMENSION_OF[sem.destination[host.kind === 'exact' ? 'exact' : 'wildcard']];
        if (dimension === undefined) continue;
        const found = byDimension.get(dimension) ?? { hosts: new Set<string>(), where: new Set<string>() };
        found.hosts.add(hostMatchKey(host));
        // An address-level engine opens the port whatever the transport: say TCP.
        const transport = dimension === 'server-name' ? 'TCP' : listener.transport === 'tls' ? 'TLS' : 'HTTP';
        found.where.add(`${transport} ${listener.port}`);
        byDimension.set(dimension, found);
      }
    }
    for (const [dimension, { hosts, where }] of byDimension) {
      const names = [...hosts].join(', ');
      const ports = [...where].sort(byTransportThenPort).join(', ');
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

/** Whether a listener carries this host of this rule (the core may have dropped it there). */
function exported(listener: Listener, rule: string, host: HostMatch, sem: TargetSemantics): boolean {
  const key = hostMatchKey(host);
  return sem.hostMatching === 'ordered-regex'
    ? listener.entries.some((e) => e.action === 'allow' && e.rule === rule && e.pattern === key)
    : listener.allowed.some((a) => a.rule === rule && hostMatchKey(a.match) === key);
}

const TRANSPORT_ORDER = ['TLS', 'HTTP', 'TCP'];

/** `TLS 443` before `HTTP 80`; `TCP 80` before `TCP 443`. */
function byTransportThenPort(a: string, b: string): number {
  const [ta = '', pa = ''] = a.split(' ');
  const [tb = '', pb = ''] = b.split(' ');
  return TRANSPORT_ORDER.indexOf(ta) - TRANSPORT_ORDER.indexOf(tb) || Number(pa) - Number(pb);
}
