import { Minimatch } from 'minimatch';
import { type Cidr, parseCidr } from './address/index.js';
import { compileHostPattern, type HostPattern, type Matcher } from './host-pattern.js';
import type { AllowRuleDocument, DenyRuleDocument } from './schema.js';
import {
  DEFAULT_PORTS,
  type EffectiveBreaker,
  type EffectiveTimeouts,
  type EffectiveTls,
  SCHEMES,
  type Scheme,
} from './types.js';

/** Effective settings that an allow rule inherits from `defaults`. */
export interface RuleDefaults {
  tls: EffectiveTls;
  timeouts: EffectiveTimeouts;
  breaker: EffectiveBreaker | false;
  privateAddresses: 'allow' | 'deny';
}

/** A rule ready for the decider: patterns compiled, defaults applied. */
export interface CompiledRule {
  /** Position in file order across allow (or deny) lists: top-level first, then the service's. */
  order: number;
  kind: 'allow' | 'deny';
  name: string;
  service: string | undefined;
  hosts: HostPattern[];
  addresses: Cidr[];
  /** undefined: any scheme (deny rules that name none). */
  schemes: ReadonlySet<Scheme> | undefined;
  /** undefined: the destination scheme's default port (allow) or any port (deny). */
  ports: ReadonlyArray<readonly [number, number]> | undefined;
  methods: ReadonlySet<string> | undefined;
  paths: readonly Matcher[] | undefined;
  settings: RuleDefaults;
  /** Allow rules: the DNS query types its names may be asked for (`dns.types`); undefined: the default set. */
  dnsTypes: ReadonlySet<string> | undefined;
  /** The canonical form, for the policy hash and diffs. */
  canonical: Record<string, unknown>;
}

function portRange(entry: number | string): readonly [number, number] {
  if (typeof entry === 'number') return [entry, entry];
  const [lo, hi] = entry.split('-').map(Number);
  return [lo!, hi!];
}

/** Compiles a rule that passed schema validation. */
export function compileRule(
  doc: AllowRuleDocument | DenyRuleDocument,
  kind: 'allow' | 'deny',
  order: number,
  service: string | undefined,
  defaults: RuleDefaults,
): CompiledRule {
  const hosts: HostPattern[] = [];
  for (const text of doc.hosts ?? []) {
    const compiled = compileHostPattern(text);
    if (compiled.ok) hosts.push(compiled.pattern);
  }
  const addresses = (doc.addresses ?? []).map(parseCidr);
  const schemes = doc.schemes
    ? new Set(doc.schemes)
    : kind === 'allow'
      ? new Set<Scheme>(['https'])
      : undefined;
  const ports = doc.ports?.map(portRange);
  const methods = doc.methods ? new Set(doc.methods.map((m) => m.toUpperCase())) : undefined;
  const paths = doc.paths?.map((p) => {
    // dot: true so that `/admin/**` also covers `/admin/.env` in deny rules, and allow rules behave alike.
    const mm = new Minimatch(p, { dot: true, nocomment: true, nonegate: true });
    return { test: (path: string) => mm.match(path) };
  });

  let settings = defaults;
  const dnsTypes = kind === 'allow' ? (doc as AllowRuleDocument).dns?.types : undefined;
  if (kind === 'allow') {
    const a = doc as AllowRuleDocument;
    settings = {
      tls: { minVersion: a.tls?.minVersion ?? defaults.tls.minVersion, verify: a.tls?.verify ?? true },
      timeouts: { ...defaults.timeouts, ...definedOnly(a.timeouts) },
      breaker:
        a.breaker === false
          ? false
          : a.breaker === undefined
            ? defaults.breaker
            : defaults.breaker === false
              ? { ...DEFAULT_BREAKER, ...definedOnly(a.breaker) }
              : { ...defaults.breaker, ...definedOnly(a.breaker) },
      privateAddresses: a.privateAddresses ?? defaults.privateAddresses,
    };
  }

  const canonical: Record<string, unknown> = {
    name: doc.name,
    hosts: hosts.map((h) => (h.kind === 'exact' ? h.name : h.text.toLowerCase())),
    addresses: addresses.map((c) => c.text),
    schemes: schemes ? [...schemes].sort() : [...SCHEMES].sort(),
    ports: ports ?? 'scheme-default',
    methods: methods ? [...methods].sort() : 'any',
    paths: doc.paths ?? 'any',
    ...(kind === 'allow' ? { settings } : {}),
    // Only when written, so that the hash of every policy without a dns key stays what it was.
    ...(dnsTypes ? { dns: { types: [...new Set(dnsTypes)].sort() } } : {}),
  };
  return {
    order,
    kind,
    name: doc.name,
    service,
    hosts,
    addresses,
    schemes,
    ports,
    methods,
    paths,
    settings,
    dnsTypes: dnsTypes ? new Set(dnsTypes) : undefined,
    canonical,
  };
}

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Defaults when a policy says nothing (policy.md's example values). */
export const DEFAULT_TLS: EffectiveTls = { minVersion: 'TLSv1.2', verify: true };
export const DEFAULT_TIMEOUTS: EffectiveTimeouts = {
  connect: 5000,
  response: 30_000,
  idle: 30_000,
  total: 120_000,
};
export const DEFAULT_BREAKER: EffectiveBreaker = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  resetTimeout: 30_000,
  rollingWindow: 10_000,
};

/** Whether a port is allowed by a rule for a scheme. */
export function portAllowed(rule: CompiledRule, scheme: Scheme, port: number): boolean {
  if (rule.ports === undefined) return rule.kind === 'deny' || DEFAULT_PORTS[scheme] === port;
  for (const [lo, hi] of rule.ports) if (port >= lo && port <= hi) return true;
  return false;
}
