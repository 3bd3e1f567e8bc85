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
  return `${whoOf(p)}: ${p.reason} (choices: ${p.choices.join('; ')})`;
}

/**
 * The problems as lines for a terminal. When they all share the same choices (the usual refusal: several
 * dimensions not accepted, one `--allow-weaker` for all), each line says who and why, and the choices
 * come once at the end instead of on every line.
 */
export function formatExportProblems(problems: readonly ExportProblem[]): string[] {
  const choices = problems[0]?.choices.join('; ');
  if (problems.length < 2 || problems.some((p) => p.choices.join('; ') !== choices)) {
    return problems.map(formatExportProblem);
  }
  return [...problems.map((p) => `${whoOf(p)}: ${p.reason}`), `choices: ${choices}`];
}

function whoOf(p: ExportProblem): string {
  return p.rule === undefined ? 'policy' : `rule "${p.rule}"`;
}
