import { writeFile } from 'node:fs/promises';
import { parseCidr } from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';
import { formatTime, plural } from '../learn/format.js';
import { type LearnedRule, learnedRules } from '../learn/learned-rule.js';
import { type Observation, type Observed, observe } from '../learn/observe.js';
import { type LearnedPolicy, type LearnedService, renderPolicy } from '../learn/policy-yaml.js';
import { readDecisions } from '../learn/read-events.js';
import { DEFAULT_WILDCARD_THRESHOLD, groupWildcards } from '../learn/wildcards.js';

/** The command's help (`egress-guard learn --help`). */
export const USAGE =
  'usage: egress-guard learn <logs...> [--out policy.yaml] [--wildcard-threshold N] [--mode enforce|report] [--report-until DATE]';

/** Source addresses listed per service; beyond, the section says so instead of listing them all. */
const MAX_SOURCES = 20;

/**
 * `egress-guard learn`: reads SDK and edge audit logs and writes the smallest policy that allows what
 * was seen, each rule commented with its counts, first and last sighting and services.
 * Exit 0 with the policy on stdout (or in `--out`), 1 on bad input.
 */
export async function learn(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args);
  if (positionals.length === 0) throw new UsageError(USAGE);
  const threshold = Number(values['wildcard-threshold'] ?? DEFAULT_WILDCARD_THRESHOLD);
  if (!Number.isInteger(threshold) || threshold < 2) {
    throw new UsageError('--wildcard-threshold is a whole number, 2 or more');
  }
  const mode = values.mode ?? 'enforce';
  if (mode !== 'enforce' && mode !== 'report') throw new UsageError('--mode is enforce or report');
  if (values['report-until'] !== undefined && mode !== 'report') {
    throw new UsageError('--report-until goes with --mode report');
  }

  const read = await readDecisions(positionals);
  if (read.decisions.length === 0) {
    io.err(
      `egress-guard learn: no decision events in ${plural(positionals.length, 'file')} (${plural(read.skippedLines, 'other line')} skipped)`,
    );
    return 1;
  }
  const seen = observe(read.decisions);
  const policy = buildPolicy(seen, {
    threshold,
    mode,
    reportUntil: values['report-until'],
    files: positionals.length,
    skipped: read.skippedLines,
  });
  const text = renderPolicy(policy);
  if (values.out) {
    await writeFile(values.out, text);
    const rules = policy.allow.length + policy.services.reduce((n, s) => n + s.rules.length, 0);
    io.err(`${values.out}: ${plural(rules, 'rule')} from ${plural(seen.decisions, 'decision')}`);
  } else io.out(text.trimEnd());
  return 0;
}

function parse(args: string[]) {
  return parseCommandArgs(args, {
    out: { type: 'string', short: 'o' },
    'wildcard-threshold': { type: 'string' },
    mode: { type: 'string' },
    'report-until': { type: 'string' },
  });
}

function byTarget(a: Observed, b: Observed): number {
  // Wildcards and names before addresses, then alphabetically: the order a reviewer scans.
  const rank = (o: Observed) => (o.kind === 'address' ? 1 : 0);
  return rank(a) - rank(b) || a.target.localeCompare(b.target);
}

/** Turns an observation into the document `renderPolicy` writes. */
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
