import { EgressPolicyError, formatProblem, loadPolicyFile } from '@egress-guard/policy';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';

/** `egress-guard lint <file>`: 0 when the policy is valid, 1 with every problem and its position. */
export async function lint(args: string[], io: CliIo): Promise<number> {
  if (args.length !== 1) throw new UsageError('usage: egress-guard lint <policy.yaml>');
  const file = args[0]!;
  try {
    const policy = await loadPolicyFile(file);
    for (const w of policy.warnings) io.err(`warning: ${formatProblem({ ...w, file })}`);
    io.out(
      `${file}: ok, ${policy.rules.length} rule${policy.rules.length === 1 ? '' : 's'}, policy sha256:${policy.hash}`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof EgressPolicyError)) throw error;
    for (const p of error.problems) io.out(formatProblem(p));
    io.err(`${file}: ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}`);
    return 1;
  }
}
