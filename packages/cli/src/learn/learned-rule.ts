import {
  DEFAULT_PORTS,
  HTTP_SCHEMES,
  REASON_DESCRIPTIONS,
  type ReasonCode,
  SCHEMES,
  type Scheme,
} from '@egress-guard/policy';
import { formatCount, formatTime, plural } from './format.js';
import type { Observed } from './observe.js';

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

/** Schemes grouped by the ports seen for them, so no rule allows a scheme on another scheme's port. */
function portGroups(o: Observed): { schemes: Scheme[]; ports: number[] }[] {
  const groups = new Map<string, { schemes: Scheme[]; ports: number[] }>();
  for (const scheme of SCHEMES) {
    const ports = o.ports.get(scheme);
    if (!ports || ports.size === 0) continue;
    const sorted = [...ports].sort((a, b) => a - b);
    const key = sorted.join(',');
    const g = groups.get(key) ?? { schemes: [], ports: sorted };
    g.schemes.push(scheme);
    groups.set(key, g);
  }
  return [...groups.values()];
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

/** The allow rules for one observed destination: one per group of schemes that share ports. */
export function learnedRules(o: Observed, takeName: (base: string) => string): LearnedRule[] {
  const base =
    o.kind === 'wildcard'
      ? `any.${o.target.slice(2)}`
      : o.kind === 'address'
        ? `addr-${o.target.replace(/:/g, '-')}`
        : o.target;
  const target: Pick<LearnedRule, 'hosts' | 'addresses'> =
    o.kind === 'address'
      ? { addresses: [`${o.target}/${o.target.includes(':') ? 128 : 32}`] }
      : { hosts: [o.target] };
  const groups = portGroups(o);
  const comments = summary(o);
  if (groups.length === 0) {
    // Only DNS look-ups were seen: the name was looked up but no connection decided (enforce mode
    // stopped it at the look-up). Allow the name over the default scheme so the look-up passes.
    return [
      {
        name: takeName(o.service ? `${o.service}-${base}` : base),
        ...target,
        ...(o.privateAddress ? { privateAddresses: 'allow' as const } : {}),
        comments: [
          ...comments,
          'seen only as DNS look-ups: the scheme (https by default) is a guess, check it',
        ],
      },
    ];
  }
  return groups.map((g, i) => {
    const http = g.schemes.some((s) => HTTP_SCHEMES.has(s));
    const defaultPorts = g.schemes.every((s) => g.ports.length === 1 && DEFAULT_PORTS[s] === g.ports[0]);
    // Requests seen only in summaries had methods and paths nobody logged: restricting them to what the
    // individual decisions showed could deny those.
    const open = o.summarised > 0;
    const paths = http && !open ? pathPatterns(o.paths) : undefined;
    const extra: string[] = [];
    if (http && open)
      extra.push('methods and paths not restricted: summaries (egress.summary) do not log them');
    if (http && !open && o.paths.size > 0 && !paths)
      extra.push('paths not restricted: too many different prefixes to list');
    if (o.pathsCapped)
      extra.push(`more than ${o.paths.size} distinct paths: prefixes are from the first ones`);
    if (o.privateAddress) {
      extra.push('review: resolved to a special-purpose (private, loopback, link-local) address');
    }
    const rule: LearnedRule = {
      name: takeName(`${o.service ? `${o.service}-` : ''}${base}${i > 0 ? `-${g.schemes.join('-')}` : ''}`),
      ...target,
      ...(g.schemes.length === 1 && g.schemes[0] === 'https' ? {} : { schemes: g.schemes }),
      ...(defaultPorts ? {} : { ports: g.ports }),
      ...(http && !open && o.methods.size > 0 ? { methods: [...o.methods].sort() } : {}),
      ...(paths ? { paths } : {}),
      ...(o.privateAddress ? { privateAddresses: 'allow' as const } : {}),
      comments: i === 0 ? [...comments, ...extra] : extra,
    };
    return rule;
  });
}
