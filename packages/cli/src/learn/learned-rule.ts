import {
  DEFAULT_DNS_TYPES,
  DEFAULT_PORTS,
  HTTP_SCHEMES,
  REASON_DESCRIPTIONS,
  type ReasonCode,
  SCHEMES,
  type Scheme,
} from '@egress-guard/policy';
import { formatCount, formatTime, plural } from './format.js';
import { MAX_PATHS, type Observed, type OriginSeen } from './observe.js';

/** Path prefixes kept per rule; beyond, the rule does not restrict paths (and says so). */
export const MAX_PATH_PATTERNS = 20;

/** One allow rule of a learned policy, with the comments that justify it. */
export interface LearnedRule {
  name: string;
  hosts?: string[];
  addresses?: string[];
  schemes?: Scheme[];
  ports?: number[];
  methods?: string[];
  paths?: string[];
  privateAddresses?: 'allow';
  /** The DNS query types the edge's DNS guard may forward, when others than the default were asked. */
  dns?: { types: string[] };
  /** Comment lines written above the rule. */
  comments: string[];
}

/**
 * The path patterns that cover what was seen, one per first segment: `/v1/**` for `/v1/charges`,
 * `/health` for `/health` itself, `/` for the root. Undefined when nothing was seen, or when there are
 * so many prefixes (ids in the first segment) that listing them would not make a reviewable rule.
 */
export function pathPatterns(paths: Iterable<string>, max = MAX_PATH_PATTERNS): string[] | undefined {
  const patterns = new Set<string>();
  for (const path of paths) {
    if (!path.startsWith('/')) continue;
    const rest = path.slice(1);
    const slash = rest.indexOf('/');
    const first = slash === -1 ? rest : rest.slice(0, slash);
    // A glob character in a logged path would become a pattern: escape-free paths only.
    if (/[*?[\]{}!]/.test(first)) return undefined;
    if (first === '') patterns.add('/');
    else if (slash === -1) patterns.add(`/${first}`);
    else patterns.add(`/${first}/**`);
    if (patterns.size > max) return undefined;
  }
  return patterns.size > 0 ? [...patterns].sort() : undefined;
}

/** What a rule allows of an origin's requests: methods and path patterns (undefined: not restricted). */
interface RequestProfile {
  methods: string[] | undefined;
  paths: string[] | undefined;
  /** Why the profile is wider than the requests seen (comment lines). */
  notes: string[];
}

const OPEN: RequestProfile = { methods: undefined, paths: undefined, notes: [] };

/**
 * The request profiles that cover what was seen on one origin, each allowing only combinations seen:
 * methods that share the same path patterns share a profile, so `GET /a` and `POST /b` never become
 * `POST /a`. Connections (no method or path in view) need no profile of their own when requests were
 * seen: an allow rule's methods and paths do not hold where they cannot be seen (policy.md).
 */
function profilesOf(origin: OriginSeen): RequestProfile[] {
  if (!HTTP_SCHEMES.has(origin.scheme)) return [OPEN];
  if (origin.summarised > 0)
    return [
      { ...OPEN, notes: ['methods and paths not restricted: summaries (egress.summary) do not log them'] },
    ];
  if (origin.requests.size === 0) return [OPEN];
  const byPaths = new Map<string, RequestProfile>();
  for (const [method, seen] of [...origin.requests].sort((a, b) => a[0].localeCompare(b[0]))) {
    const paths = seen.pathless ? undefined : pathPatterns(seen.paths);
    const notes =
      !seen.pathless && !paths && seen.paths.size > 0
        ? ['paths not restricted: too many different prefixes to list']
        : [];
    // A request whose method was not logged: any method, on the paths seen.
    if (method === '') {
      byPaths.set(`*|${paths?.join(',') ?? '*'}`, { methods: undefined, paths, notes });
      continue;
    }
    const key = paths?.join(',') ?? '*';
    const profile = byPaths.get(key) ?? { methods: [], paths, notes };
    profile.methods!.push(method);
    byPaths.set(key, profile);
  }
  return [...byPaths.values()];
}

/** One rule's worth of origins: schemes, with their ports (or each scheme's default), and a profile. */
interface OriginGroup {
  schemes: Scheme[];
  /** undefined: each scheme on its default port. */
  ports: number[] | undefined;
  profile: RequestProfile;
  connections: number;
}

/**
 * Origins grouped into rules without allowing a combination that was not seen: per scheme, the ports
 * that share a profile; then schemes whose ports and profile are the same. A rule's schemes × ports ×
 * methods × paths are all combinations that were seen (paths up to their first segment).
 */
function originGroups(o: Observed): OriginGroup[] {
  const perScheme = new Map<
    string,
    { scheme: Scheme; ports: number[]; profile: RequestProfile; n: number }
  >();
  for (const origin of [...o.origins.values()].sort((a, b) => a.port - b.port)) {
    for (const profile of profilesOf(origin)) {
      const key = `${origin.scheme}|${profileKey(profile)}`;
      const g = perScheme.get(key) ?? { scheme: origin.scheme, ports: [], profile, n: 0 };
      g.ports.push(origin.port);
      g.n += origin.connections;
      perScheme.set(key, g);
    }
  }
  const groups = new Map<string, OriginGroup>();
  for (const scheme of SCHEMES) {
    for (const g of perScheme.values()) {
      if (g.scheme !== scheme) continue;
      const defaultOnly = g.ports.length === 1 && DEFAULT_PORTS[scheme] === g.ports[0];
      const ports = defaultOnly ? undefined : g.ports;
      const key = `${ports?.join(',') ?? 'default'}|${profileKey(g.profile)}`;
      const group = groups.get(key) ?? { schemes: [], ports, profile: g.profile, connections: 0 };
      group.schemes.push(scheme);
      group.connections += g.n;
      groups.set(key, group);
    }
  }
  return [...groups.values()];
}

function profileKey(p: RequestProfile): string {
  return `${p.methods?.join(',') ?? '*'}|${p.paths?.join(',') ?? '*'}`;
}

function summary(o: Observed): string[] {
  const { allowed, denied, reported } = o.results;
  const parts = [`${formatCount(allowed)} allowed`];
  if (reported) parts.push(`${formatCount(reported)} reported`);
  if (denied) parts.push(`${formatCount(denied)} denied`);
  const lines = [
    `${plural(o.count, 'decision')} (${parts.join(', ')}), first ${formatTime(o.first)}, last ${formatTime(o.last)}`,
  ];
  if (o.summarised > 0)
    lines.push(`${formatCount(o.summarised)} of them counted in summaries (egress.summary)`);
  const seenBy = [`seen by ${[...o.sources].sort().join(' and ')}`];
  seenBy.push(`service ${o.service ?? '(none)'}`);
  if (o.hooks.size > 0) seenBy.push(`hooks ${[...o.hooks].sort().join(', ')}`);
  lines.push(seenBy.join('; '));
  if (o.kind === 'wildcard') {
    const names = [...o.names].sort();
    lines.push(
      `${names.length} names: ${names.slice(0, 8).join(', ')}${names.length > 8 ? `, ... (${names.length - 8} more)` : ''}`,
    );
  }
  if (o.ungrouped) lines.push(o.ungrouped);
  if (o.reasons.size > 0) {
    const reasons = [...o.reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`);
    lines.push(`not allowed by the policy in force: ${reasons.join(', ')}`);
  }
  for (const [reason, note] of REVIEW_NOTES) {
    if (o.reasons.has(reason)) lines.push(`review: ${note}`);
  }
  return lines;
}

// Denial reasons an allow rule does not cure: the rule is still written (the destination was used), and
// the reviewer is told why traffic to it may keep failing.
const REVIEW_NOTES: [ReasonCode, string][] = [
  ['tls_version', `${REASON_DESCRIPTIONS.tls_version}; a rule cannot lower the floor below TLSv1.2`],
  [
    'tls_verify_disabled',
    'the caller turned certificate verification off; add tls: { verify: false } only if you must',
  ],
  ['sni_mismatch', 'the SNI did not match the connection: investigate before allowing'],
  ['dns_mismatch', 'the name did not resolve to the address dialled: investigate before allowing'],
  ['ech_present', 'the client used Encrypted Client Hello: the edge cannot see the real name'],
];

/** The allow rules for one observed destination: one per group of origins and requests seen together. */
export function learnedRules(o: Observed, takeName: (base: string) => string): LearnedRule[] {
  const base =
    o.kind === 'wildcard'
      ? `any.${o.target.slice(2)}`
      : o.kind === 'address'
        ? `addr-${o.target.replace(/:/g, '-')}`
        : o.target;
  const name = (suffix: string) => takeName(`${o.service ? `${o.service}-` : ''}${base}${suffix}`);
  const target: Pick<LearnedRule, 'hosts' | 'addresses'> =
    o.kind === 'address'
      ? { addresses: [`${o.target}/${o.target.includes(':') ? 128 : 32}`] }
      : { hosts: [o.target] };
  const privateAddresses = {
    ...(o.privateAddress ? { privateAddresses: 'allow' as const } : {}),
    ...dnsKey(o),
  };
  const groups = originGroups(o);
  const comments = summary(o);
  if (o.privateAddress) comments.push(privateNote(o));
  if (groups.length === 0) {
    // Only DNS look-ups were seen: the name was looked up but no connection decided (enforce mode
    // stopped it at the look-up). Allow the name over the default scheme so the look-up passes.
    return [
      {
        name: name(''),
        ...target,
        ...privateAddresses,
        comments: [
          ...comments,
          'seen only as DNS look-ups: the scheme (https by default) is a guess, check it',
        ],
      },
    ];
  }
  if (o.pathsCapped) comments.push(`more than ${MAX_PATHS} distinct paths: prefixes are from the first ones`);
  return groups.map((g, i) => {
    const extra = [...g.profile.notes];
    if (g.connections > 0 && g.profile.methods !== undefined)
      extra.push(
        `${plural(g.connections, 'connection')} seen with no method or path in view (SNI, CONNECT, TLS): methods and paths hold only where they can be seen`,
      );
    const rule: LearnedRule = {
      name: name(i === 0 ? '' : `-${g.schemes.join('-')}${g.ports ? `-${g.ports.join('-')}` : ''}`),
      ...target,
      ...(g.schemes.length === 1 && g.schemes[0] === 'https' ? {} : { schemes: g.schemes }),
      ...(g.ports ? { ports: g.ports } : {}),
      ...(g.profile.methods ? { methods: g.profile.methods } : {}),
      ...(g.profile.paths ? { paths: g.profile.paths } : {}),
      ...privateAddresses,
      comments: i === 0 ? [...comments, ...extra] : extra,
    };
    return rule;
  });
}

function privateNote(o: Observed): string {
  const seen = [...o.privateAddresses].sort();
  const at = seen.length > 0 ? ` (${seen.slice(0, 4).join(', ')}${seen.length > 4 ? ', ...' : ''})` : '';
  return `review: dialled at a special-purpose (private, loopback, link-local) address${at}: privateAddresses: allow, or list the addresses in a rule of their own`;
}

/**
 * `dns: { types }` when the edge's DNS guard was asked for types beyond its default set (A, AAAA, CNAME,
 * HTTPS, SVCB): the list replaces the default, so it keeps the default types and adds those seen.
 */
function dnsKey(o: Observed): Pick<LearnedRule, 'dns'> {
  const extra = [...o.dnsTypes].filter((t) => !(DEFAULT_DNS_TYPES as readonly string[]).includes(t)).sort();
  return extra.length > 0 ? { dns: { types: [...DEFAULT_DNS_TYPES, ...extra] } } : {};
}
