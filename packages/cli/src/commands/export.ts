import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { EgressPolicyError, formatProblem, loadPolicyFile } from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import {
  buildExportPlan,
  ExportError,
  formatExportProblems,
  parseAllowWeaker,
  RENDER_DEFAULTS,
  WEAKER_DIMENSION_NAMES,
} from '../export/core/index.js';
import { EXPORT_TARGETS } from '../export/targets.js';
import { type CliIo, EXIT } from '../io.js';

const USAGE =
  'usage: egress-guard export <policy.yaml> --to <target> [--service NAME] [--allow-weaker DIM[,DIM...]] [--out FILE] [--listen ADDRESS] [--resolver IP[:PORT]] [--proxy-port PORT] [--runtime-dir DIR]';

/** The whole `egress-guard export --help` text. */
export function exportUsage(): string {
  return [
    USAGE,
    '',
    'Writes the policy as a configuration for another enforcement point. Never wider than the policy:',
    'what the target cannot express exactly is narrowed (with a warning) or refused with the rule and',
    'the choices. Dimensions the target does not enforce make the export fail unless --allow-weaker names them.',
    '',
    'targets:',
    ...Object.values(EXPORT_TARGETS)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((t) => `  ${t.name.padEnd(22)} ${t.summary}`),
    '',
    'options:',
    '  --to TARGET             the engine to export for (required)',
    '  --service NAME          export the top-level rules and this services section',
    `  --allow-weaker DIMS     accept dimensions not enforced (comma-separated, repeatable): ${WEAKER_DIMENSION_NAMES.join(', ')}`,
    '  --out FILE              write to FILE instead of stdout',
    '  --listen ADDRESS        the address the engine listens on (default: every address)',
    `  --resolver IP[:PORT]    the DNS resolver for allowed names (nginx, haproxy: default ${RENDER_DEFAULTS.resolver}; envoy: the system's)`,
    '  --proxy-port PORT       the proxy port clients are configured with (squid; default 3128)',
    `  --runtime-dir DIR       where the engine keeps sockets, pid and cache (default ${RENDER_DEFAULTS.runtimeDir})`,
    '',
    'exit: 0 written; 1 refused (wider than the policy, or weaker without --allow-weaker); 2 usage error or',
    'invalid policy.',
    'Warnings (narrowings) go to stderr and into the header of the output. See docs/export.md.',
  ].join('\n');
}

function parse(args: string[]) {
  return parseCommandArgs(args, {
    to: { type: 'string' },
    service: { type: 'string' },
    'allow-weaker': { type: 'string', multiple: true },
    out: { type: 'string' },
    listen: { type: 'string' },
    resolver: { type: 'string' },
    'runtime-dir': { type: 'string' },
    'proxy-port': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
}

/**
 * `egress-guard export`: the policy as a configuration for nginx, HAProxy, Squid and the other targets in
 * src/export/targets.ts. Exit 0 written, 1 refused (wider than the policy, or weaker without
 * `--allow-weaker`), 2 usage error or invalid policy.
 */
export async function exportCommand(args: string[], io: CliIo): Promise<number> {
  const usage = (message: string) => {
    io.err(`egress-guard export: ${message} (egress-guard export --help for usage)`);
    return EXIT.usage;
  };
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    // One line naming the flag (parseCommandArgs), e.g. `unknown flag --too (did you mean --to?)`.
    return usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(exportUsage());
    return EXIT.ok;
  }
  if (positionals.length !== 1) return usage('give exactly one policy file');
  if (values.to === undefined)
    return usage(`--to is required (one of ${Object.keys(EXPORT_TARGETS).sort().join(', ')})`);
  const target = EXPORT_TARGETS[values.to];
  if (!target)
    return usage(`unknown target "${values.to}" (one of ${Object.keys(EXPORT_TARGETS).sort().join(', ')})`);
  let allowWeaker: ReturnType<typeof parseAllowWeaker>;
  try {
    allowWeaker = parseAllowWeaker(values['allow-weaker'] ?? []);
  } catch (error) {
    return usage((error as Error).message);
  }
  const proxyPort = values['proxy-port'] === undefined ? undefined : Number(values['proxy-port']);
  if (proxyPort !== undefined && !(Number.isInteger(proxyPort) && proxyPort >= 1 && proxyPort <= 65535)) {
    return usage(`--proxy-port: "${values['proxy-port']}" is not a port`);
  }
  const file = positionals[0]!;
  let policy: Awaited<ReturnType<typeof loadPolicyFile>>;
  try {
    policy = await loadPolicyFile(file);
  } catch (error) {
    if (!(error instanceof EgressPolicyError)) throw error;
    for (const p of error.problems) io.err(formatProblem(p));
    return EXIT.usage;
  }
  let text: string;
  try {
    const plan = buildExportPlan(policy, target, { service: values.service, allowWeaker });
    text = target.render(plan, {
      policyFileName: basename(file),
      listenAddress: values.listen,
      resolver: values.resolver,
      runtimeDir: values['runtime-dir'],
      proxyPort,
    });
    for (const w of plan.warnings) {
      io.err(`egress-guard export: warning: ${w.rule === undefined ? '' : `rule "${w.rule}": `}${w.message}`);
    }
  } catch (error) {
    if (!(error instanceof ExportError)) throw error;
    io.err(
      `egress-guard export: refused: the ${target.name} configuration would be wider than the policy, or weaker without --allow-weaker`,
    );
    for (const line of formatExportProblems(error.problems)) io.err(`  ${line}`);
    return EXIT.no;
  }
  if (values.out === undefined) {
    // The text ends with a newline; io.out adds one per line.
    io.out(text.endsWith('\n') ? text.slice(0, -1) : text);
  } else {
    await writeFile(values.out, text);
  }
  return EXIT.ok;
}
