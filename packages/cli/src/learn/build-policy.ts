import { parseCidr } from '@egress-guard/policy';
import { formatTime, plural } from './format.js';
import { type LearnedRule, learnedRules } from './learned-rule.js';
import type { Observation, Observed, Refused } from './observe.js';
import type { LearnedPolicy, LearnedService } from './policy-yaml.js';
import { groupWildcards } from './wildcards.js';

/** Source addresses listed per service; beyond, the section says so instead of listing them all. */
const MAX_SOURCES = 20;

/** Refused requests listed in the closing comments; beyond, a count. */
const MAX_REFUSED_LISTED = 50;

function byTarget(a: Observed, b: Observed): number {
  // Wildcards and names before addresses, then alphabetically: the order a reviewer scans.
  const rank = (o: Observed) => (o.kind === 'address' ? 1 : 0);
  return rank(a) - rank(b) || a.target.localeCompare(b.target);
}

/** Turns an observation into the document `renderPolicy` writes (the learned policy, with its comments). */
export function buildPolicy(
  seen: Observation,
  options: {
    threshold: number;
    mode: 'enforce' | 'report';
    reportUntil?: string | undefined;
    files: number;
    skipped: number;
  },
): LearnedPolicy {
  const names = new Set<string>();
  const takeName = (base: string): string => {
    const clean = base.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'rule';
    let name = clean;
    for (let i = 2; names.has(name); i++) name = `${clean}-${i}`;
    names.add(name);
    return name;
  };
  const rulesOf = (targets: Map<string, Observed>): LearnedRule[] =>
    [...groupWildcards(targets, options.threshold).values()]
      .sort(byTarget)
      .flatMap((o) => learnedRules(o, takeName));

  sharePrivateAddresses(seen);
  const allow = rulesOf(seen.services.get(undefined) ?? new Map());
  const services: LearnedService[] = [];
  for (const name of [...seen.services.keys()].filter((s): s is string => s !== undefined).sort()) {
    const targets = seen.services.get(name)!;
    const clients = new Set<string>();
    for (const o of targets.values()) for (const c of o.clients) clients.add(c);
    const sources = [...clients]
      .map((c) => {
        try {
          return parseCidr(`${c}/${c.includes(':') ? 128 : 32}`).text;
        } catch {
          return undefined;
        }
      })
      .filter((c): c is string => c !== undefined)
      .sort();
    services.push({
      name,
      sources: sources.length <= MAX_SOURCES ? sources : [],
      sourcesNote:
        sources.length === 0
          ? undefined
          : sources.length <= MAX_SOURCES
            ? 'sources: the client addresses the edge saw; widen to the service subnet'
            : `${sources.length} client addresses seen at the edge: list the service subnet as sources`,
      rules: rulesOf(targets),
    });
  }

  const footer: string[] = [];
  if (seen.explicitlyDenied.length > 0) {
    footer.push('Seen, and refused by an explicit deny rule of the policy in force; not allowed here:');
    for (const o of seen.explicitlyDenied.sort(byTarget)) {
      footer.push(
        `  ${o.target}${o.service ? ` (service ${o.service})` : ''}: ${plural(o.count, 'decision')}, rule ${[...o.rules].join(', ')}, last ${formatTime(o.last)}`,
      );
    }
  }
  footer.push(...refusedLines(seen.denied));
  if (seen.invalid > 0)
    footer.push(`${plural(seen.invalid, 'decision')} about invalid destinations skipped.`);

  const header = [
    `egress-guard policy learned from ${plural(options.files, 'log file')}: ${plural(seen.decisions, 'decision')}, ${formatTime(seen.first)} to ${formatTime(seen.last)}${options.skipped ? ` (${plural(options.skipped, 'non-event line')} skipped)` : ''}.`,
    'It allows what was seen and nothing more. Review every rule (the comments say what each one is',
    'based on), copy in the deny rules of your current policy, then follow docs/rollout.md:',
    '  egress-guard lint <this file> && egress-guard diff <this file> <logs...>',
  ];
  return {
    header,
    mode: options.mode,
    reportUntil: options.reportUntil,
    allow,
    services,
    footer,
  };
}

/** The closing comments for what the policy in force denied in enforce mode, most frequent first. */
function refusedLines(refused: readonly Refused[]): string[] {
  if (refused.length === 0) return [];
  const lines = [
    'Seen, and denied by the policy in force in enforce mode; not allowed here (--include-denied learns them):',
  ];
  const sorted = [...refused].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
  for (const r of sorted.slice(0, MAX_REFUSED_LISTED)) {
    const rules = r.rules.size > 0 ? `, rule ${[...r.rules].join(', ')}` : '';
    lines.push(
      `  ${r.label}${r.service ? ` (service ${r.service})` : ''}: ${plural(r.count, 'decision')}, ${[...r.reasons].join(', ')}${rules}, last ${formatTime(r.last)}`,
    );
  }
  if (sorted.length > MAX_REFUSED_LISTED) lines.push(`  ... ${sorted.length - MAX_REFUSED_LISTED} more`);
  return lines;
}

/**
 * Where a name resolves is a property of the name, not of the service that dialled it: a name dialled at a
 * special-purpose address in one scope gets `privateAddresses: allow` in every scope that lists it. The
 * decider applies the first rule that lists a name (a service's section inherits the top-level rules,
 * first), so a top-level rule without it would refuse the service's dial (`private_address`).
 */
function sharePrivateAddresses(seen: Observation): void {
  const dialled = new Map<string, Set<string>>();
  const all = [...seen.services.values()].flatMap((targets) => [...targets.values()]);
  for (const o of all) {
    if (!o.privateAddress) continue;
    const addresses = dialled.get(o.target) ?? new Set<string>();
    for (const a of o.privateAddresses) addresses.add(a);
    dialled.set(o.target, addresses);
  }
  for (const o of all) {
    const addresses = dialled.get(o.target);
    if (!addresses) continue;
    o.privateAddress = true;
    for (const a of addresses) o.privateAddresses.add(a);
  }
}
