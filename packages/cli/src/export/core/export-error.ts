/** One reason an export cannot go ahead: the rule, why, and what the user can do. */
export interface ExportProblem {
  /** The rule concerned; undefined for the policy as a whole. */
  rule: string | undefined;
  reason: string;
  /** Ways forward, e.g. `--allow-weaker methods`, or how to rewrite the rule. */
  choices: string[];
}

/** Export refused: the configuration would be wider than the policy, or weaker without consent. */
export class ExportError extends Error {
  readonly problems: readonly ExportProblem[];
  constructor(problems: ExportProblem[]) {
    super(problems.map(formatExportProblem).join('\n'));
    this.name = 'ExportError';
    this.problems = problems;
  }
}

/** One line: `rule "x": reason (choices: a; b)`. */
export function formatExportProblem(p: ExportProblem): string {
  const who = p.rule === undefined ? 'policy' : `rule "${p.rule}"`;
  return `${who}: ${p.reason} (choices: ${p.choices.join('; ')})`;
}
