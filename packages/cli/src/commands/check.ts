import {
  type Decision,
  EgressPolicyError,
  formatDuration,
  formatProblem,
  loadPolicyFile,
  REASON_DESCRIPTIONS,
  SCHEMES,
  type Scheme,
} from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { EXIT, UsageError } from '../io.js';
import { parseTarget } from '../target.js';

/** The command's help (`egress-guard check --help`). */
export const USAGE =
  'usage: egress-guard check <policy.yaml> <url | host:port> [--service NAME] [--method M] [--scheme S] [--address IP] [--json]';

/**
 * `egress-guard check`: the decision for one destination, with reason, rule and effective settings.
 * Exit 0 when allowed (or reported in report mode), 1 when denied, 2 when it cannot answer (bad
 * arguments, a policy that does not load): a script asserting a denial never mistakes a typo for one.
 */
export async function check(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args);
  if (positionals.length !== 2) throw new UsageError(USAGE);
  const [file, target] = positionals as [string, string];
  if (values.scheme !== undefined && !(SCHEMES as readonly string[]).includes(values.scheme)) {
    throw new UsageError(`unknown scheme "${values.scheme}" (one of ${SCHEMES.join(', ')})`);
  }
  const destination = parseTarget(target, values.scheme as Scheme | undefined);
  if (values.method) destination.method = values.method.toUpperCase();
  if (values.service) destination.service = values.service;
  if (values.address) destination.address = values.address;

  let policy: Awaited<ReturnType<typeof loadPolicyFile>>;
  try {
    policy = await loadPolicyFile(file);
  } catch (error) {
    if (!(error instanceof EgressPolicyError)) throw error;
    for (const p of error.problems) io.err(formatProblem(p));
    return EXIT.usage;
  }
  if (values.service && !policy.services.includes(values.service)) {
    throw new UsageError(
      `the policy has no service "${values.service}" (services: ${policy.services.join(', ') || 'none'})`,
    );
  }
  const decision = policy.decide(destination);
  if (values.json) io.out(JSON.stringify(decision, null, 2));
  else for (const line of describe(decision, target)) io.out(line);
  return decision.allowed ? EXIT.ok : EXIT.no;
}

function parse(args: string[]) {
  return parseCommandArgs(args, {
    service: { type: 'string' },
    method: { type: 'string' },
    scheme: { type: 'string' },
    address: { type: 'string' },
    json: { type: 'boolean' },
  });
}

/** The human form: one line of verdict, then the details a reviewer needs. */
export function describe(d: Decision, target: string): string[] {
  const t = d.timeouts;
  const lines = [
    `${d.result.toUpperCase()}  ${target}`,
    `  reason    ${d.reason}: ${REASON_DESCRIPTIONS[d.reason]}`,
    `  rule      ${d.rule ? `${d.rule} (${d.ruleKind})` : '(none: default deny)'}`,
    `  mode      ${d.mode}${d.service ? `, service ${d.service}` : ''}`,
  ];
  if (d.result !== 'allowed') lines.push(`  message   ${d.message}`);
  lines.push(
    `  tls       minVersion ${d.tls.minVersion}, certificate verification ${d.tls.verify ? 'on' : 'OFF'}`,
    `  timeouts  connect ${formatDuration(t.connect)}, response ${formatDuration(t.response)}, idle ${formatDuration(t.idle)}, total ${formatDuration(t.total)}`,
    `  breaker   ${
      d.breaker === false
        ? 'off'
        : `opens at ${d.breaker.errorThresholdPercentage}% errors over ${d.breaker.volumeThreshold}+ requests in ${formatDuration(d.breaker.rollingWindow)}, retries after ${formatDuration(d.breaker.resetTimeout)}`
    }`,
    `  private   ${d.privateAddresses === 'allow' ? 'special-purpose addresses allowed' : 'special-purpose addresses denied'}`,
    `  policy    sha256:${d.policyHash}`,
  );
  return lines;
}
