import {
  CONNECTION_SCHEMES,
  DEFAULT_PORTS,
  type Policy,
  type PolicyDocument,
  type Scheme,
  TLS_SCHEMES,
  type TlsVersion,
} from '@egress-guard/policy';
import { destinationFindings } from './destination.js';
import { WEAKER_DIMENSIONS, type WeakerDimension } from './dimensions.js';
import { ExportError, type ExportProblem } from './export-error.js';
import {
  describeHostMatch,
  type HostMatch,
  hostMatchesMayOverlap,
  hostMatchFromText,
  hostMatchKey,
} from './host-match.js';
import { hostMatchRegex, WILDCARD_GUARDS } from './host-regex.js';
import { nameValidityFindings } from './name-validity.js';
import type { ExportTarget, Transport } from './target.js';

/** An inclusive port range. */
export type PortRange = readonly [number, number];

/** Everything an engine needs to know about one rule, with its exact meaning. */
export interface ExportRule {
  name: string;
  kind: 'allow' | 'deny';
  /** The services section it comes from; undefined: top level. */
  service: string | undefined;
  hosts: HostMatch[];
  /** CIDRs as written (canonical text). */
  addresses: string[];
  /** Schemes it applies to; deny rules without `schemes` apply to every scheme. */
  schemes: Scheme[];
  /** Port ranges; `undefined`: each scheme's default port (allow) or any port (deny). */
  ports: PortRange[] | undefined;
  methods: string[] | undefined;
  paths: string[] | undefined;
  /** Allow rules: the TLS floor in force for it (rule, else defaults). */
  tlsMinVersion: TlsVersion | undefined;
  /** Allow rules: whether names resolving to special-purpose addresses are refused. */
  privateAddresses: 'allow' | 'deny' | undefined;
}

/** One line of an ordered engine's first-match list. */
export interface MatchEntry {
  action: 'allow' | 'deny';
  /** The rule it comes from; undefined for a wildcard guard. */
  rule: string | undefined;
  /** The host pattern as normalised (`*.example.com`), or the guard's name. */
  pattern: string;
  /** Anchored regex, lower case: match it case-insensitively. */
  regex: string;
  /** Why the line is there, for the comment next to it. */
  comment: string;
  /**
   * Allow entries on a TLS listener: the TLS floor the client must offer. The highest floor of every allow
   * rule here whose names may overlap this entry's, since the decider applies the floor of whichever of
   * them it picks first: never lower than the policy's, sometimes higher (narrower).
   */
  tlsMinVersion?: TlsVersion | undefined;
}

/** An allowed pattern, for `patterns` targets. */
export interface AllowedHost {
  rule: string;
  match: HostMatch;
}

/** One place the engine listens: a transport on a port. */
export interface Listener {
  transport: Transport;
  port: number;
  /** `ordered-regex` targets: first match wins; no match: deny. */
  entries: MatchEntry[];
  /** `patterns` targets: the allowed patterns after narrowing, sorted. */
  allowed: AllowedHost[];
  /** `patterns` targets with deny precedence: the denied patterns that apply here. */
  denied: AllowedHost[];
  /** Rules contributing to this listener, in file order. */
  rules: string[];
}

/** A note for the operator (printed on stderr and as a comment in the output). */
export interface ExportWarning {
  rule: string | undefined;
  message: string;
}

/** A dimension a rule uses that the target does not enforce (accepted by `--allow-weaker`). */
export interface WeakerFinding {
  rule: string | undefined;
  dimension: WeakerDimension;
  detail: string;
}

/** The analysis a target renders. Deterministic: built from the policy in file order. */
export interface ExportPlan {
  target: string;
  policyHash: string;
  /** The services section exported, if `--service` was given. */
  service: string | undefined;
  /** The mode as written for the exported scope (report is rendered as enforce: see warnings). */
  mode: 'enforce' | 'report';
  /** Applicable rules in file order: top level, then the service's. */
  rules: ExportRule[];
  /** Sorted by transport (tls, then http) and port. */
  listeners: Listener[];
  warnings: ExportWarning[];
  /** Every dimension not enforced, each accepted by `--allow-weaker`. */
  weaker: WeakerFinding[];
}

export interface PlanOptions {
  service?: string | undefined;
  allowWeaker?: ReadonlySet<WeakerDimension> | undefined;
}

/** Port ranges wider than this are refused rather than expanded into one listener per port. */
export const MAX_PORTS_PER_RULE = 64;

/**
 * Which allow rules open a listener: a TLS listener carries https, wss and tls (the ClientHello does not say
 * which: a connection is allowed when any of them is, as `decideConnection(transport: 'tls')` decides at the
 * edge); a plain HTTP listener reads Host on requests, which `http` rules allow. A `ws`-only rule is not
 * exported (the engine cannot tell an upgrade from a request: narrower).
 */
export const TRANSPORT_SCHEMES: Readonly<Record<Transport, readonly Scheme[]>> = {
  tls: CONNECTION_SCHEMES.tls,
  http: ['http'],
};

/** Which deny rules hold a listener: on plain HTTP a `ws` deny holds every request (narrower). */
export const TRANSPORT_DENY_SCHEMES: Readonly<Record<Transport, readonly Scheme[]>> = {
  tls: CONNECTION_SCHEMES.tls,
  http: ['http', 'ws'],
};

/**
 * Translates a policy for a target: per-rule facts, per-listener match lists, warnings for every narrowing,
 * and the dimensions the target leaves unenforced. Throws {@link ExportError} (rule, reason, choices) when a
 * rule cannot be exported without widening it, or when a weaker dimension is not accepted by `allowWeaker`.
 */
export function buildExportPlan(policy: Policy, target: ExportTarget, options: PlanOptions = {}): ExportPlan {
  const problems: ExportProblem[] = [];
  const warnings: ExportWarning[] = [];
  const weaker: WeakerFinding[] = [];
  const sem = target.semantics;
  const doc = policy.document;
  const service = options.service;
  if (service !== undefined && !policy.services.includes(service)) {
    throw new ExportError([
      {
        rule: undefined,
        reason: `the policy has no service "${service}"`,
        choices: [`one of: ${policy.services.join(', ') || '(no services)'}`, 'omit --service'],
      },
    ]);
  }

  const rules: ExportRule[] = [
    ...rulesOf(doc.allow, 'allow', undefined, doc),
    ...rulesOf(doc.deny, 'deny', undefined, doc),
  ];
  if (service !== undefined) {
    const svc = doc.services?.[service];
    rules.push(...rulesOf(svc?.allow, 'allow', service, doc), ...rulesOf(svc?.deny, 'deny', service, doc));
  }

  const weak = (rule: string | undefined, dimension: WeakerDimension, detail: string) => {
    if (!(sem.enforces as readonly WeakerDimension[]).includes(dimension)) {
      weaker.push({ rule, dimension, detail });
    }
  };

  // Policy-level dimensions.
  const mode = (service !== undefined ? doc.services?.[service]?.mode : undefined) ?? doc.mode ?? 'enforce';
  if (mode === 'report') {
    if (sem.auditMode) {
      warnings.push({ rule: undefined, message: `report mode: rendered in ${target.name}'s audit mode` });
    } else {
      weak(
        undefined,
        'report-mode',
        `the policy is in report mode; ${target.name} has no audit mode, so this configuration enforces`,
      );
    }
  }
  if (policy.services.length > 0) {
    weak(
      undefined,
      'services',
      service === undefined
        ? `the policy has services (${policy.services.join(', ')}); only the top-level rules are exported, and ${target.name} cannot tell callers apart`
        : `exported for service "${service}" only: run this configuration only for that service's sources`,
    );
  }

  // Rule-level dimensions and per-rule narrowing.
  for (const rule of rules) {
    if (rule.methods) weak(rule.name, 'methods', `methods ${rule.methods.join(', ')}`);
    if (rule.paths) weak(rule.name, 'paths', `paths ${rule.paths.join(', ')}`);
    if (rule.kind === 'allow') {
      if (rule.schemes.some((s) => TLS_SCHEMES.has(s)) && rule.hosts.length > 0) {
        weak(rule.name, 'tls-floor', `TLS floor ${rule.tlsMinVersion}`);
      }
      if (rule.privateAddresses === 'deny' && rule.hosts.length > 0) {
        weak(rule.name, 'private-addresses', 'names resolving to special-purpose addresses are not refused');
      }
      if (rule.addresses.length > 0) {
        warnings.push({
          rule: rule.name,
          message: `addresses ${rule.addresses.join(', ')} not exported: ${target.name} matches names (narrower)`,
        });
      }
      const unseen = rule.schemes.filter(
        (s) => !sem.transports.some((t) => TRANSPORT_SCHEMES[t].includes(s)),
      );
      if (unseen.length > 0 && rule.hosts.length > 0) {
        warnings.push({
          rule: rule.name,
          message: `schemes ${unseen.join(', ')} not exported: ${target.name} cannot tell them apart on the wire (tcp, ssh: no name; ws: an upgrade) (narrower)`,
        });
      }
    } else {
      if (rule.addresses.length > 0)
        weak(rule.name, 'addresses', `deny addresses ${rule.addresses.join(', ')}`);
      if (rule.schemes.includes('ws') && !rule.schemes.includes('http') && sem.transports.includes('http')) {
        warnings.push({
          rule: rule.name,
          message: `denies ws: ${target.name} cannot tell a WebSocket upgrade from plain HTTP, so it denies both (narrower)`,
        });
      }
    }
    for (const range of rule.ports ?? []) {
      if (range[1] - range[0] + 1 > MAX_PORTS_PER_RULE) {
        problems.push({
          rule: rule.name,
          reason: `port range ${range[0]}-${range[1]} needs ${range[1] - range[0] + 1} listeners (at most ${MAX_PORTS_PER_RULE})`,
          choices: ['list the ports the service uses', 'split the range into the ports in use'],
        });
      }
    }
    if (sem.hostMatching === 'ordered-regex') {
      for (const host of rule.hosts) {
        const r = hostMatchRegex(host);
        if (!r.ok) {
          if (rule.kind === 'allow') problems.push({ rule: rule.name, reason: r.reason, choices: r.choices });
          else
            problems.push({
              rule: rule.name,
              reason: `${r.reason}; a deny rule cannot be narrowed (that would widen the policy)`,
              choices: r.choices,
            });
        }
      }
    }
  }
  if (problems.length > 0) throw new ExportError(problems);

  const listeners = listenersOf(rules, target, warnings);
  weaker.push(...destinationFindings(rules, listeners, sem), ...nameValidityFindings(rules, listeners, sem));
  // Each rule's findings together, in file order (policy-level ones first): a stable sort.
  const order = (rule: string | undefined) =>
    rule === undefined ? -1 : rules.findIndex((r) => r.name === rule);
  weaker.sort((a, b) => order(a.rule) - order(b.rule));

  const accepted = options.allowWeaker ?? new Set<WeakerDimension>();
  const refused = weaker.filter((w) => !accepted.has(w.dimension));
  if (refused.length > 0) {
    const dims = [...new Set(refused.map((w) => w.dimension))].sort();
    throw new ExportError(
      refused.map((w) => ({
        rule: w.rule,
        reason: `${WEAKER_DIMENSIONS[w.dimension]}: not enforced by ${target.name} (${w.detail})`,
        choices: [
          `accept it: --allow-weaker ${dims.join(',')}`,
          'enforce it elsewhere (the SDK or egress-guard edge), or use a target that enforces it (docs/export.md)',
        ],
      })),
    );
  }
  return {
    target: target.name,
    policyHash: policy.hash,
    service,
    mode,
    rules,
    listeners,
    warnings: dedupeWarnings(warnings),
    weaker,
  };
}

function rulesOf(
  list: PolicyDocument['allow'] | PolicyDocument['deny'],
  kind: 'allow' | 'deny',
  service: string | undefined,
  doc: PolicyDocument,
): ExportRule[] {
  return (list ?? []).map((r) => {
    const allow = kind === 'allow' ? (r as NonNullable<PolicyDocument['allow']>[number]) : undefined;
    const hosts: HostMatch[] = [];
    for (const text of r.hosts ?? []) {
      const m = hostMatchFromText(text);
      if (m) hosts.push(m);
    }
    return {
      name: r.name,
      kind,
      service,
      hosts,
      addresses: [...(r.addresses ?? [])],
      schemes: r.schemes ? [...r.schemes] : kind === 'allow' ? ['https'] : [...CONNECTION_SCHEMES.any],
      ports: r.ports?.map(portRange),
      methods: r.methods?.map((m) => m.toUpperCase()),
      paths: r.paths ? [...r.paths] : undefined,
      tlsMinVersion: allow
        ? (allow.tls?.minVersion ?? doc.defaults?.tls?.minVersion ?? 'TLSv1.2')
        : undefined,
      privateAddresses: allow
        ? (allow.privateAddresses ?? doc.defaults?.privateAddresses ?? 'deny')
        : undefined,
    };
  });
}

function portRange(entry: number | string): PortRange {
  if (typeof entry === 'number') return [entry, entry];
  const [lo, hi] = entry.split('-').map(Number);
  return [lo!, hi!];
}

/** The ports an allow rule opens for one scheme. */
function allowPorts(rule: ExportRule, scheme: Scheme): number[] {
  if (rule.ports === undefined) {
    const p = DEFAULT_PORTS[scheme];
    return p === undefined ? [] : [p];
  }
  const out: number[] = [];
  for (const [lo, hi] of rule.ports) for (let p = lo; p <= hi; p++) out.push(p);
  return out;
}

/** Whether a deny rule holds connections of a listener (same test as the decider at connection level). */
function denyApplies(rule: ExportRule, transport: Transport, port: number): boolean {
  if (!rule.schemes.some((s) => TRANSPORT_DENY_SCHEMES[transport].includes(s))) return false;
  if (rule.ports && !rule.ports.some(([lo, hi]) => port >= lo && port <= hi)) return false;
  // The decider: a deny rule naming methods or paths cannot match where they are not in view (it is
  // enforced on the requests themselves). The engine does not read them either: reported as weaker.
  return rule.methods === undefined && rule.paths === undefined;
}

function listenersOf(rules: ExportRule[], target: ExportTarget, warnings: ExportWarning[]): Listener[] {
  const sem = target.semantics;
  const keys = new Map<string, { transport: Transport; port: number }>();
  for (const rule of rules) {
    if (rule.kind !== 'allow' || rule.hosts.length === 0) continue;
    for (const transport of sem.transports) {
      for (const scheme of rule.schemes) {
        if (!TRANSPORT_SCHEMES[transport].includes(scheme)) continue;
        for (const port of allowPorts(rule, scheme)) keys.set(`${transport}:${port}`, { transport, port });
      }
    }
  }
  const sorted = [...keys.values()].sort((a, b) =>
    a.transport === b.transport ? a.port - b.port : a.transport === 'tls' ? -1 : 1,
  );
  return sorted.map(({ transport, port }) => listenerOf(rules, target, transport, port, warnings));
}

function listenerOf(
  rules: ExportRule[],
  target: ExportTarget,
  transport: Transport,
  port: number,
  warnings: ExportWarning[],
): Listener {
  const sem = target.semantics;
  const allows = rules.filter(
    (r) =>
      r.kind === 'allow' &&
      r.schemes.some((s) => TRANSPORT_SCHEMES[transport].includes(s) && allowPorts(r, s).includes(port)),
  );
  const denies = rules.filter((r) => r.kind === 'deny' && denyApplies(r, transport, port));
  const where = `${transport === 'tls' ? 'TLS (SNI)' : 'plain HTTP (Host)'} port ${port}`;

  const entries: MatchEntry[] = [];
  const allowed: AllowedHost[] = [];
  const denied: AllowedHost[] = [];
  if (sem.hostMatching === 'ordered-regex') {
    for (const r of denies) for (const h of r.hosts) entries.push(entry('deny', r, h, 'deny always wins'));
    const exact = allows.flatMap((r) => r.hosts.filter((h) => h.kind === 'exact').map((h) => ({ r, h })));
    const wild = allows.flatMap((r) => r.hosts.filter((h) => h.kind !== 'exact').map((h) => ({ r, h })));
    const floor = (h: HostMatch, r: ExportRule) => {
      if (transport !== 'tls') return undefined;
      const f = tlsFloor(allows, r, h);
      if (f !== r.tlsMinVersion && sem.enforces.includes('tls-floor')) {
        warnings.push({
          rule: r.name,
          message: `${where}: "${hostMatchKey(h)}" needs ${f}, the floor of another rule whose names overlap it (narrower)`,
        });
      }
      return f;
    };
    for (const { r, h } of exact) entries.push(entry('allow', r, h, describeHostMatch(h), floor(h, r)));
    if (wild.length > 0) {
      for (const g of WILDCARD_GUARDS) {
        entries.push({ action: 'deny', rule: undefined, pattern: g.name, regex: g.regex, comment: g.why });
      }
    }
    for (const { r, h } of wild) entries.push(entry('allow', r, h, describeHostMatch(h), floor(h, r)));
  } else {
    for (const r of denies) for (const h of r.hosts) denied.push({ rule: r.name, match: h });
    for (const r of allows) {
      for (const h of r.hosts) {
        const unsupported =
          (h.kind === 'one-label' &&
            (h.labelGlob === undefined ? !sem.constructs.oneLabel : !sem.constructs.labelGlob)) ||
          (h.kind === 'multi-label' && !sem.constructs.multiLabel);
        if (unsupported) {
          warnings.push({
            rule: r.name,
            message: `${where}: "${hostMatchKey(h)}" dropped: ${target.name} has no exact form of ${describeHostMatch(h)} (narrower; list the names instead)`,
          });
          continue;
        }
        if (!sem.denyPrecedence) {
          const carving = denied.find((d) => hostMatchesMayOverlap(h, d.match));
          if (carving) {
            warnings.push({
              rule: r.name,
              message: `${where}: "${hostMatchKey(h)}" dropped: deny rule "${carving.rule}" carves "${hostMatchKey(carving.match)}" out of it and ${target.name} cannot express "allow except" (narrower; list the allowed names instead)`,
            });
            continue;
          }
        }
        allowed.push({ rule: r.name, match: h });
      }
    }
  }
  return {
    transport,
    port,
    entries,
    allowed,
    denied: sem.denyPrecedence ? denied : [],
    rules: [...allows, ...denies].map((r) => r.name),
  };
}

/** What a match entry is for, in one line for a comment: `rule "x" (allow): api.example.com (exactly)`. */
export function describeEntry(e: MatchEntry): string {
  return e.rule === undefined
    ? `guard ${e.pattern}: ${e.comment}`
    : `rule "${e.rule}" (${e.action}): ${e.comment}`;
}

const TLS_RANK: Readonly<Record<TlsVersion, number>> = { 'TLSv1.2': 0, 'TLSv1.3': 1 };

/** The highest floor among the allow rules that may decide a name this pattern matches. */
function tlsFloor(allows: ExportRule[], rule: ExportRule, host: HostMatch): TlsVersion {
  let floor: TlsVersion = rule.tlsMinVersion ?? 'TLSv1.2';
  for (const other of allows) {
    const f = other.tlsMinVersion ?? 'TLSv1.2';
    if (TLS_RANK[f] > TLS_RANK[floor] && other.hosts.some((o) => hostMatchesMayOverlap(o, host))) floor = f;
  }
  return floor;
}

function entry(
  action: 'allow' | 'deny',
  rule: ExportRule,
  host: HostMatch,
  comment: string,
  tlsMinVersion?: TlsVersion,
): MatchEntry {
  const r = hostMatchRegex(host);
  // buildExportPlan refused untranslatable patterns before listeners are built.
  if (!r.ok) throw new Error(`internal: untranslatable pattern ${host.text} reached a listener`);
  return { action, rule: rule.name, pattern: hostMatchKey(host), regex: r.regex, comment, tlsMinVersion };
}

function dedupeWarnings(warnings: ExportWarning[]): ExportWarning[] {
  const seen = new Set<string>();
  return warnings.filter((w) => {
    const key = `${w.rule ?? ''}\u0000${w.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
