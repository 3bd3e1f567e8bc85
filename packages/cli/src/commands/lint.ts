import { readFileSync } from 'node:fs';
import {
  EgressPolicyError,
  formatProblem,
  loadPolicyFile,
  type PolicyProblem,
  positionOf,
} from '@egress-guard/policy';
import { LineCounter, parseDocument } from 'yaml';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { EXIT, UsageError } from '../io.js';

/** The command's help (`egress-guard lint --help`). */
export const USAGE =
  'usage: egress-guard lint <policy.yaml>    (exit 0 valid, 1 with every problem and its line, 2 unreadable)';

/**
 * `egress-guard lint <file>`: 0 when the policy is valid, 1 with every problem and its position, 2 when
 * the file cannot be read. Warnings (valid but probably not meant) go to stderr with their position.
 */
export async function lint(args: string[], io: CliIo): Promise<number> {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const file = positionals[0]!;
  try {
    const policy = await loadPolicyFile(file);
    for (const w of placed(file, policy.warningsAt(Date.now())))
      io.err(`warning: ${formatProblem({ ...w, file })}`);
    io.out(
      `${file}: ok, ${policy.rules.length} rule${policy.rules.length === 1 ? '' : 's'}, policy sha256:${policy.hash}`,
    );
    return EXIT.ok;
  } catch (error) {
    if (!(error instanceof EgressPolicyError)) throw error;
    for (const p of error.problems) io.out(formatProblem(p));
    io.err(`${file}: ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}`);
    // A file that could not be read has one problem, at no place in it.
    const unreadable =
      error.problems.length === 1 && error.problems[0]!.line === 0 && !error.problems[0]!.path;
    return unreadable ? EXIT.usage : EXIT.no;
  }
}

/**
 * Policy warnings carry a path but no place (the policy is checked after parsing); find each one's line
 * and column in the file so that an editor can jump to it.
 */
function placed(file: string, warnings: readonly PolicyProblem[]): PolicyProblem[] {
  if (warnings.every((w) => w.line > 0)) return [...warnings];
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter: lines });
  return warnings.map((w) => (w.line > 0 ? w : { ...w, ...positionOf(doc, lines, pathSegments(w.path)) }));
}

/** `services.api.allow[0].hosts[1]` → `['services', 'api', 'allow', 0, 'hosts', 1]`. */
function pathSegments(path: string): PropertyKey[] {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] === undefined ? m[1]! : Number(m[2])));
}
