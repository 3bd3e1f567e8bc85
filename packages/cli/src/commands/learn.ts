import { writeFile } from 'node:fs/promises';
import { isReportUntil, parseReportUntil, REPORT_UNTIL_HINT } from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';
import { buildPolicy } from '../learn/build-policy.js';
import { plural } from '../learn/format.js';
import { observe } from '../learn/observe.js';
import { renderPolicy } from '../learn/policy-yaml.js';
import { readDecisions } from '../learn/read-events.js';
import { DEFAULT_WILDCARD_THRESHOLD } from '../learn/wildcards.js';

/** The command's help (`egress-guard learn --help`). */
export const USAGE =
  'usage: egress-guard learn <logs...> [--out policy.yaml] [--wildcard-threshold N] [--mode enforce|report] [--report-until DATE] [--include-denied]';

/**
 * `egress-guard learn`: reads SDK and edge audit logs and writes the smallest policy that allows what
 * was seen, each rule commented with its counts, first and last sighting and services. What the policy in
 * force denied in enforce mode is left out (listed in comments) unless `--include-denied`.
 * Exit 0 with the policy on stdout (or in `--out`), 1 when the logs hold no decision, 2 on bad input.
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
  const until = values['report-until'];
  if (until !== undefined && !isReportUntil(until)) {
    throw new UsageError(`--report-until: "${until}" is not a date (${REPORT_UNTIL_HINT})`);
  }
  if (until !== undefined && (parseReportUntil(until) ?? 0) <= Date.now()) {
    throw new UsageError(`--report-until: ${until} is in the past: report mode would end at once`);
  }

  const read = await readDecisions(positionals);
  if (read.decisions.length === 0) {
    io.err(
      `egress-guard learn: no decision events in ${plural(positionals.length, 'file')} (${plural(read.skippedLines, 'other line')} skipped)`,
    );
    return 1;
  }
  const seen = observe(read.decisions, { includeDenied: values['include-denied'] });
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
    'include-denied': { type: 'boolean' },
  });
}
