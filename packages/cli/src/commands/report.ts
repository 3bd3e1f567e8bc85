import { writeFile } from 'node:fs/promises';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';
import { formatCount, formatTime, plural } from '../learn/format.js';
import { renderReport } from '../learn/html-report.js';
import { readDecisions } from '../learn/read-events.js';
import { buildReport } from '../learn/report-model.js';

/** The command's help (`egress-guard report --help`). */
export const USAGE = 'usage: egress-guard report <logs...> --html report.html [--title TEXT]';

/**
 * `egress-guard report`: reads audit logs and writes one self-contained HTML page (destinations,
 * decisions over time, top denials per service), and prints a short summary. Exit 0, 1 on bad input.
 */
export async function report(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args);
  if (positionals.length === 0 || !values.html) throw new UsageError(USAGE);
  const read = await readDecisions(positionals);
  if (read.decisions.length === 0) {
    io.err(`egress-guard report: no decision events in ${plural(positionals.length, 'file')}`);
    return 1;
  }
  const model = buildReport(read.decisions, read);
  await writeFile(values.html, renderReport(model, { title: values.title }));
  io.out(
    `${values.html}: ${plural(model.decisions, 'decision')} (${formatCount(model.allowed)} allowed, ${formatCount(model.reported)} reported, ${formatCount(model.denied)} denied), ${plural(model.destinations.length, 'destination')}, ${plural(model.services.length, 'service')}, ${formatTime(model.first)} to ${formatTime(model.last)}`,
  );
  return 0;
}

function parse(args: string[]) {
  return parseCommandArgs(args, { html: { type: 'string' }, title: { type: 'string' } });
}
