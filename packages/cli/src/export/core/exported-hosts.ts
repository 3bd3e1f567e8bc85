import { type HostMatch, hostMatchKey } from './host-match.js';
import type { ExportRule, Listener } from './plan.js';
import type { TargetSemantics } from './target.js';

/** One pattern of an allow rule that a listener carries after narrowing. */
export interface ExportedHost {
  host: HostMatch;
  listener: Listener;
}

/**
 * The patterns of an allow rule the export actually carries, per listener (the core may have dropped a
 * pattern everywhere or on some ports only: a dropped pattern opens nothing, so it weakens nothing).
 * Findings built from it name only what the engine will really allow.
 */
export function exportedHosts(
  rule: ExportRule,
  listeners: readonly Listener[],
  sem: TargetSemantics,
): ExportedHost[] {
  const out: ExportedHost[] = [];
  if (rule.kind !== 'allow') return out;
  for (const listener of listeners) {
    for (const host of rule.hosts) {
      if (carries(listener, rule.name, host, sem)) out.push({ host, listener });
    }
  }
  return out;
}

/** Whether a listener carries this host of this rule. */
function carries(listener: Listener, rule: string, host: HostMatch, sem: TargetSemantics): boolean {
  const key = hostMatchKey(host);
  return sem.hostMatching === 'ordered-regex'
    ? listener.entries.some((e) => e.action === 'allow' && e.rule === rule && e.pattern === key)
    : listener.allowed.some((a) => a.rule === rule && hostMatchKey(a.match) === key);
}

const TRANSPORT_ORDER = ['TLS', 'HTTP', 'TCP'];

/** Places such as `TLS 443`, `HTTP 80`, `TCP 443` in one list: TLS before HTTP, then by port. */
export function joinPlaces(places: Iterable<string>): string {
  return [...places].sort(byTransportThenPort).join(', ');
}

function byTransportThenPort(a: string, b: string): number {
  const [ta = '', pa = ''] = a.split(' ');
  const [tb = '', pb = ''] = b.split(' ');
  return TRANSPORT_ORDER.indexOf(ta) - TRANSPORT_ORDER.indexOf(tb) || Number(pa) - Number(pb);
}

/** `TLS 443` or `HTTP 80`: where a listener reads names. */
export function listenerPlace(listener: Listener): string {
  return `${listener.transport === 'tls' ? 'TLS' : 'HTTP'} ${listener.port}`;
}
