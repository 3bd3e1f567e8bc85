import type { PolicyProblem } from './errors.js';

/** The parts of a policy document (or of a service section) that say how long report mode lasts. */
export interface ReportPhase {
  mode?: 'enforce' | 'report' | undefined;
  reportUntil?: string | undefined;
}

/** How to write a `reportUntil` date, for messages that refuse one. */
export const REPORT_UNTIL_HINT = 'write 2027-01-31 or 2027-01-31T12:00:00Z';

/** Whether `value` is a `reportUntil` the schema accepts: a date, or a date and time with its offset. */
export function isReportUntil(value: string): boolean {
  return (
    /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(value) && !Number.isNaN(Date.parse(value))
  );
}

/** A date-only `reportUntil` expires at the start of that day, UTC: the earlier reading is the safer one. */
export function parseReportUntil(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
}

/**
 * Warnings for `reportUntil` dates already past at `now`: the policy says report mode, but it has ended
 * and every decision enforces. Valid (an expired report phase is the plan working), but a file that
 * still says `mode: report` with a past date is probably not what its reader thinks it is.
 */
export function expiredReportUntil(
  document: ReportPhase & { services?: Record<string, ReportPhase> | undefined },
  now: number,
  file: string | undefined,
): PolicyProblem[] {
  const out: PolicyProblem[] = [];
  const check = (until: string | undefined, mode: string | undefined, path: string) => {
    const at = parseReportUntil(until);
    if (at === undefined || at > now || mode !== 'report') return;
    out.push({
      path,
      message: `reportUntil ${until} is in the past: report mode has ended, this policy enforces`,
      hint: 'write mode: enforce, or a later date to keep reporting',
      file,
      line: 0,
      column: 0,
    });
  };
  check(document.reportUntil, document.mode, 'reportUntil');
  // A service that inherits the top-level date is covered by the warning above.
  for (const [name, svc] of Object.entries(document.services ?? {}))
    check(svc.reportUntil, svc.mode ?? document.mode, `services.${name}.reportUntil`);
  return out;
}
