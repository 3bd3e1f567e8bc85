import { EgressPolicyError, formatProblem, loadPolicyFile, REASON_DESCRIPTIONS } from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';
import { formatCount, plural } from '../learn/format.js';
import { diffAgainst, type ServiceDiff } from '../learn/re-decide.js';
import { readDecisions } from '../learn/read-events.js';

/** The command's help (`egress-guard diff --help`). */
export const USAGE = 'usage: egress-guard diff <policy.yaml> <logs...> [--top N] [--json]';

/**
 * `egress-guard diff`: re-decides every destination in the audit logs with the given policy, as if it
 * were enforced, and prints per service what it would have denied: counts and the top destinations per
 * reason. Exit 0 when nothing would be denied, 1 when something would (as diff(1) exits 1 on a
 * difference), 2 when it cannot answer (an invalid policy, logs without decision events).
 */
export async function diff(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args);
  if (positionals.length < 2) throw new UsageError(USAGE);
  const [file, ...logs] = positionals as [string, ...string[]];
  const top = Number(values.top ?? 5);
  if (!Number.isInteger(top) || top < 1) throw new UsageError('--top is a whole number, 1 or more');

  let policy: Awaited<ReturnType<typeof loadPolicyFile>>;
  try {
    policy = await loadPolicyFile(file);
  } catch (error) {
    if (!(error instanceof EgressPolicyError)) throw error;
    for (const p of error.problems) io.err(formatProblem(p));
    return 2;
  }
  const read = await readDecisions(logs);
  if (read.decisions.length === 0) {
    io.err(`egress-guard diff: no decision events in ${plural(logs.length, 'file')}`);
    return 2;
  }
  const services = diffAgainst(policy, read.decisions);
  const wouldDeny = services.reduce((n, s) => n + s.wouldDeny, 0);
  if (values.json) io.out(JSON.stringify(toJson(services, top), null, 2));
  else print(io, file, policy.hash, services, top, read.decisions.length, wouldDeny);
  return wouldDeny > 0 ? 1 : 0;
}

function parse(args: string[]) {
  return parseCommandArgs(args, { top: { type: 'string' }, json: { type: 'boolean' } });
}

function topOf(m: Map<string, number>, n: number): [string, number][] {
  return [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n);
}

function print(
  io: CliIo,
  file: string,
  hash: string,
  services: ServiceDiff[],
  top: number,
  total: number,
  wouldDeny: number,
): void {
  io.out(
    `${file} (sha256:${hash.slice(0, 12)}), enforced over ${plural(total, 'logged decision')}: ${
      wouldDeny === 0 ? 'nothing would be denied' : `${formatCount(wouldDeny)} would be denied`
    }`,
  );
  for (const s of services) {
    const name = s.service === undefined ? '(no service)' : `service ${s.service}`;
    const note = s.inPolicy ? '' : ' [not in the policy: its top-level rules decide]';
    io.out('');
    io.out(`${name}${note}: ${plural(s.decisions, 'decision')}, ${formatCount(s.wouldDeny)} would be denied`);
    for (const [reason, r] of [...s.reasons].sort((a, b) => b[1].count - a[1].count)) {
      io.out(
        `  ${reason} (${REASON_DESCRIPTIONS[reason]}): ${formatCount(r.count)}, ${plural(r.destinations.size, 'destination')}`,
      );
      for (const [dest, n] of topOf(r.destinations, top))
        io.out(`    ${formatCount(n).padStart(7)}  ${dest}`);
      if (r.destinations.size > top) io.out(`             ... ${r.destinations.size - top} more`);
    }
  }
}

function toJson(services: ServiceDiff[], top: number) {
  return services.map((s) => ({
    service: s.service ?? null,
    inPolicy: s.inPolicy,
    decisions: s.decisions,
    wouldDeny: s.wouldDeny,
    reasons: Object.fromEntries(
      [...s.reasons].map(([reason, r]) => [
        reason,
        {
          count: r.count,
          destinations: r.destinations.size,
          top: topOf(r.destinations, top).map(([d, n]) => ({ destination: d, count: n })),
        },
      ]),
    ),
  }));
}
