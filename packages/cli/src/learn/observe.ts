import {
  isSpecialPurpose,
  parseIpLiteral,
  type ReasonCode,
  type Scheme,
  unmapIpv4,
} from '@egress-guard/policy';
import { destinationLabel } from './format.js';
import { isLookup, type LoggedDecision } from './read-events.js';

/** Paths kept per destination: enough to see its prefixes, bounded for logs with unique ids in paths. */
export const MAX_PATHS = 1000;

/**
 * What was seen on one origin (scheme and port) of a destination. Rules are learned per origin: a method
 * or path seen on one scheme or port is never allowed on another.
 */
export interface OriginSeen {
  scheme: Scheme;
  port: number;
  /** Per method seen in requests (`''`: a request whose method was not logged), its paths. */
  requests: Map<string, { paths: Set<string>; pathless: boolean }>;
  /** Decisions with neither method nor path in view: connections (SNI, CONNECT, raw flows, TLS at the edge). */
  connections: number;
  /** Requests seen only in `egress.summary` events: their methods and paths are unknown. */
  summarised: number;
}

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
  /** Per `scheme:port`; DNS look-ups add none (a name looked up is not a connection). */
  origins: Map<string, OriginSeen>;
  /** Distinct paths kept over all origins (bounded by {@link MAX_PATHS}). */
  pathCount: number;
  pathsCapped: boolean;
  /** DNS query types the edge's DNS guard was asked for the name (`egress.dns`). */
  dnsTypes: Set<string>;
  /** Special-purpose addresses the name was dialled at (a rule for it needs `privateAddresses: allow`). */
  privateAddresses: Set<string>;
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

/** A destination the policy in force refused: never learned by default, listed for the reviewer. */
export interface Refused {
  service: string | undefined;
  /** `scheme://host:port`, with the method and path when they were in view (or `dns lookup host`). */
  label: string;
  count: number;
  last: number | undefined;
  reasons: Set<ReasonCode>;
  rules: Set<string>;
}

/** What `observe` found. */
export interface Observation {
  /** Per service (undefined: no service), per target. */
  services: Map<string | undefined, Map<string, Observed>>;
  /** Destinations an explicit deny rule of the policy in force refused: never learned as allowed. */
  explicitlyDenied: Observed[];
  /** Requests the policy in force denied in enforce mode: left out unless `includeDenied`. */
  denied: Refused[];
  /** Decisions about destinations that were not valid (no host to allow). */
  invalid: number;
  decisions: number;
  first: number | undefined;
  last: number | undefined;
}

/** How `observe` treats what the policy in force denied. */
export interface ObserveOptions {
  /** Learn requests the policy in force denied in enforce mode too (explicit deny rules still win). */
  includeDenied?: boolean | undefined;
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
    origins: new Map(),
    dnsTypes: new Set(),
    pathCount: 0,
    pathsCapped: false,
    privateAddresses: new Set(),
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

function originOf(o: Observed, scheme: Scheme, port: number): OriginSeen {
  const key = `${scheme}:${port}`;
  let origin = o.origins.get(key);
  if (!origin) {
    origin = { scheme, port, requests: new Map(), connections: 0, summarised: 0 };
    o.origins.set(key, origin);
  }
  return origin;
}

/** Adds a path under a method of an origin, within the destination's bound on distinct paths. */
function addPath(o: Observed, seen: { paths: Set<string> }, path: string): void {
  if (seen.paths.has(path)) return;
  if (o.pathCount >= MAX_PATHS) {
    o.pathsCapped = true;
    return;
  }
  seen.paths.add(path);
  o.pathCount++;
}

function special(address: string): boolean {
  const ip = parseIpLiteral(address.startsWith('[') ? address.slice(1, -1) : address);
  return ip !== undefined && isSpecialPurpose(unmapIpv4(ip));
}

/**
 * The special-purpose addresses a name was dialled at (a dial-time record) or answered with (the edge's
 * DNS guard refuses those too, unless the rule says `privateAddresses: allow`).
 */
function specialAddresses(d: LoggedDecision): string[] {
  if (d.host === undefined || parseIpLiteral(d.host)) return [];
  return [...(d.address === undefined ? [] : [d.address]), ...(d.answers ?? [])].filter(special);
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
  for (const address of specialAddresses(d)) {
    o.privateAddress = true;
    o.privateAddresses.add(address);
  }
  if (d.dnsType) o.dnsTypes.add(d.dnsType);
  if (isLookup(d)) return;
  const origin = originOf(o, d.scheme, d.port);
  if (d.summary) origin.summarised += d.count;
  else if (d.method === undefined && d.path === undefined) origin.connections += d.count;
  else {
    const key = d.method ?? '';
    const seen = origin.requests.get(key) ?? { paths: new Set<string>(), pathless: false };
    origin.requests.set(key, seen);
    if (d.path === undefined) seen.pathless = true;
    else addPath(o, seen, d.path);
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
  for (const theirs of b.origins.values()) {
    const mine = originOf(a, theirs.scheme, theirs.port);
    mine.connections += theirs.connections;
    mine.summarised += theirs.summarised;
    for (const [method, seen] of theirs.requests) {
      const into = mine.requests.get(method) ?? { paths: new Set<string>(), pathless: false };
      mine.requests.set(method, into);
      into.pathless ||= seen.pathless;
      for (const p of seen.paths) addPath(a, into, p);
    }
  }
  a.pathsCapped ||= b.pathsCapped;
  a.privateAddress ||= b.privateAddress;
  for (const t of b.dnsTypes) a.dnsTypes.add(t);
  for (const p of b.privateAddresses) a.privateAddresses.add(p);
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

/** How a refused request is listed: its origin, with the method and path when they were in view. */
function refusedLabel(d: LoggedDecision, target: string): string {
  if (isLookup(d)) return `dns lookup ${target}${d.dnsType ? ` ${d.dnsType}` : ''}`;
  const request = d.method ? ` ${d.method}${d.path ? ` ${d.path}` : ''}` : '';
  return `${destinationLabel(d.scheme, target, d.port)}${request}`;
}

function addRefused(into: Map<string, Refused>, d: LoggedDecision, target: string): void {
  const label = refusedLabel(d, target);
  const key = `${d.service ?? ''}|${label}`;
  let r = into.get(key);
  if (!r) {
    r = { service: d.service, label, count: 0, last: undefined, reasons: new Set(), rules: new Set() };
    into.set(key, r);
  }
  r.count += d.count;
  r.last = maxTime(r.last, d.time);
  r.reasons.add(d.reason);
  if (d.rule) r.rules.add(d.rule);
}

/**
 * Groups decisions by service and destination; a summary counts as the decisions it stands for. What an
 * explicit deny rule refused is never learned; what the policy in force denied in enforce mode is left
 * out unless `includeDenied` (the policy in force meant it: learning must not undo an enforced decision).
 */
export function observe(decisions: readonly LoggedDecision[], options: ObserveOptions = {}): Observation {
  const out: Observation = {
    services: new Map(),
    explicitlyDenied: [],
    denied: [],
    invalid: 0,
    decisions: decisions.reduce((n, d) => n + d.count, 0),
    first: undefined,
    last: undefined,
  };
  const explicit = new Map<string, Observed>();
  const denied = new Map<string, Refused>();
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
      const o = explicit.get(key) ?? emptyObserved(d.service, t.target, t.kind);
      explicit.set(key, o);
      addDecision(o, d);
      continue;
    }
    if (d.result === 'denied' && !options.includeDenied) {
      addRefused(denied, d, t.target);
      continue;
    }
    const targets = out.services.get(d.service) ?? new Map<string, Observed>();
    out.services.set(d.service, targets);
    const o = targets.get(t.target) ?? emptyObserved(d.service, t.target, t.kind);
    targets.set(t.target, o);
    addDecision(o, d);
  }
  out.explicitlyDenied = [...explicit.values()];
  out.denied = [...denied.values()];
  return out;
}
