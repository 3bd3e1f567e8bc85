import { parseIpLiteral, type ReasonCode, type Scheme } from '@egress-guard/policy';
import type { LoggedDecision } from './read-events.js';

/** Paths kept per destination: enough to see its prefixes, bounded for logs with unique ids in paths. */
export const MAX_PATHS = 1000;

/** Everything seen for one destination (a host name, a wildcard of names, or an address) of one service. */
export interface Observed {
  service: string | undefined;
  /** The host name, `*.parent` once grouped, or the canonical IP address. */
  target: string;
  kind: 'host' | 'wildcard' | 'address';
  /** The names merged into a wildcard (or the one name). */
  names: Set<string>;
  count: number;
  first: number | undefined;
  last: number | undefined;
  results: { allowed: number; denied: number; reported: number };
  /** Reasons of the denied and reported decisions. */
  reasons: Map<ReasonCode, number>;
  sources: Set<'sdk' | 'edge'>;
  hooks: Set<string>;
  /** Ports seen per scheme; DNS look-ups add none (they name a host, not a service). */
  ports: Map<Scheme, Set<number>>;
  methods: Set<string>;
  paths: Set<string>;
  pathsCapped: boolean;
  /** A decision said the name resolved to a special-purpose address. */
  privateAddress: boolean;
  /** Edge: the client addresses that reached it. */
  clients: Set<string>;
  /** Rules of the policy in force that decided. */
  rules: Set<string>;
  /** Of `count`, the requests seen only in `egress.summary` events: their methods and paths are unknown. */
  summarised: number;
  /** Why this name was left out of a wildcard, for the reviewer. */
  ungrouped?: string | undefined;
}

/** What `observe` found. */
export interface Observation {
  /** Per service (undefined: no service), per target. */
  services: Map<string | undefined, Map<string, Observed>>;
  /** Destinations an explicit deny rule of the policy in force refused: never learned as allowed. */
  explicitlyDenied: Observed[];
  /** Decisions about destinations that were not valid (no host to allow). */
  invalid: number;
  decisions: number;
  first: number | undefined;
  last: number | undefined;
}

/** An observation with nothing seen yet. */
export function emptyObserved(service: string | undefined, target: string, kind: Observed['kind']): Observed {
  return {
    service,
    target,
    kind,
    names: new Set(kind === 'host' ? [target] : []),
    count: 0,
    first: undefined,
    last: undefined,
    results: { allowed: 0, denied: 0, reported: 0 },
    reasons: new Map(),
    sources: new Set(),
    hooks: new Set(),
    ports: new Map(),
    methods: new Set(),
    paths: new Set(),
    pathsCapped: false,
    privateAddress: false,
    clients: new Set(),
    rules: new Set(),
    summarised: 0,
  };
}

function minTime(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

function maxTime(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/** Adds one decision (or a summary, standing for `d.count` decisions) to an observation. */
export function addDecision(o: Observed, d: LoggedDecision): void {
  o.count += d.count;
  o.first = minTime(o.first, d.time);
  o.last = maxTime(o.last, d.time);
  o.results[d.result] += d.count;
  if (d.summary) o.summarised += d.count;
  if (d.result !== 'allowed') o.reasons.set(d.reason, (o.reasons.get(d.reason) ?? 0) + d.count);
  o.sources.add(d.source);
  if (d.hook && !d.summary) o.hooks.add(d.hook);
  if (d.rule) o.rules.add(d.rule);
  if (d.client) o.clients.add(d.client);
  if (d.reason === 'private_address') o.privateAddress = true;
  if (d.hook === 'dns') return;
  const ports = o.ports.get(d.scheme) ?? new Set<number>();
  o.ports.set(d.scheme, ports);
  ports.add(d.port);
  if (d.method) o.methods.add(d.method);
  if (d.path) {
    if (o.paths.size < MAX_PATHS) o.paths.add(d.path);
    else if (!o.paths.has(d.path)) o.pathsCapped = true;
  }
}

/** Merges `b` into `a` (for wildcards). */
export function mergeInto(a: Observed, b: Observed): void {
  a.count += b.count;
  a.first = minTime(a.first, b.first);
  a.last = maxTime(a.last, b.last);
  a.results.allowed += b.results.allowed;
  a.results.denied += b.results.denied;
  a.results.reported += b.results.reported;
  for (const [r, n] of b.reasons) a.reasons.set(r, (a.reasons.get(r) ?? 0) + n);
  for (const s of b.sources) a.sources.add(s);
  for (const h of b.hooks) a.hooks.add(h);
  for (const [scheme, ports] of b.ports) {
    const mine = a.ports.get(scheme) ?? new Set<number>();
    for (const p of ports) mine.add(p);
    a.ports.set(scheme, mine);
  }
  for (const m of b.methods) a.methods.add(m);
  for (const p of b.paths) if (a.paths.size < MAX_PATHS) a.paths.add(p);
  a.pathsCapped ||= b.pathsCapped || a.paths.size >= MAX_PATHS;
  a.privateAddress ||= b.privateAddress;
  for (const c of b.clients) a.clients.add(c);
  for (const r of b.rules) a.rules.add(r);
  for (const n of b.names) a.names.add(n);
  a.summarised += b.summarised;
}

/** The target of a decision: the host name, or the address for IP literals and name-less connections. */
function targetOf(d: LoggedDecision): { target: string; kind: 'host' | 'address' } | undefined {
  const host = d.host;
  if (host !== undefined) {
    const ip = parseIpLiteral(host);
    return ip ? { target: host, kind: 'address' } : { target: host, kind: 'host' };
  }
  return d.address !== undefined ? { target: d.address, kind: 'address' } : undefined;
}

/** Groups decisions by service and destination; a summary counts as the decisions it stands for. */
export function observe(decisions: readonly LoggedDecision[]): Observation {
  const out: Observation = {
    services: new Map(),
    explicitlyDenied: [],
    invalid: 0,
    decisions: decisions.reduce((n, d) => n + d.count, 0),
    first: undefined,
    last: undefined,
  };
  const denied = new Map<string, Observed>();
  for (const d of decisions) {
    out.first = minTime(out.first, d.time);
    out.last = maxTime(out.last, d.time);
    const t = targetOf(d);
    if (!t || d.reason === 'invalid_destination') {
      out.invalid += d.count;
      continue;
    }
    if (d.reason === 'explicit_deny') {
      const key = `${d.service ?? ''}|${t.target}`;
      const o = denied.get(key) ?? emptyObserved(d.service, t.target, t.kind);
      denied.set(key, o);
      addDecision(o, d);
      continue;
    }
    const targets = out.services.get(d.service) ?? new Map<string, Observed>();
    out.services.set(d.service, targets);
    const o = targets.get(t.target) ?? emptyObserved(d.service, t.target, t.kind);
    targets.set(t.target, o);
    addDecision(o, d);
  }
  out.explicitlyDenied = [...denied.values()];
  return out;
}
