/**
 * @packageDocumentation
 * The `egress-guard` command. `main()` runs it in-process (for tests and embedding).
 */
import { readFileSync } from 'node:fs';
import { USAGE as CHECK_USAGE, check } from './commands/check.js';
import { USAGE as DIFF_USAGE, diff } from './commands/diff.js';
import { edge } from './commands/edge.js';
import { edgeUsage } from './commands/edge-args.js';
import { exportCommand, exportUsage } from './commands/export.js';
import { USAGE as LEARN_USAGE, learn } from './commands/learn.js';
import { USAGE as LINT_USAGE, lint } from './commands/lint.js';
import { USAGE as REPORT_USAGE, report } from './commands/report.js';
import { USAGE as SCHEMA_USAGE, schema } from './commands/schema.js';
import { type CliIo, EXIT, processIo, UsageError } from './io.js';

export type { CliIo } from './io.js';

type Command = (args: string[], io: CliIo) => Promise<number>;

/**
 * Every command: how it runs, its line in `egress-guard --help`, and its own help (`egress-guard <command>
 * --help`, answered here for every command so that none reads `--help` as a file name).
 */
const COMMANDS: Record<string, { run: Command; summary: string; usage: string | (() => string) }> = {
  lint: {
    run: lint,
    usage: LINT_USAGE,
    summary: 'lint <policy.yaml>                      validate a policy; every problem with its position',
  },
  check: {
    run: check,
    usage: CHECK_USAGE,
    summary: 'check <policy.yaml> <url|host:port>     the decision for one destination',
  },
  edge: {
    run: edge,
    usage: edgeUsage,
    summary: 'edge --policy <policy.yaml> --explicit HOST:PORT  run the edge filter (edge --help for all)',
  },
  schema: {
    run: schema,
    usage: SCHEMA_USAGE,
    summary: 'schema                                  print the JSON Schema of policy files',
  },
  learn: {
    run: learn,
    usage: LEARN_USAGE,
    summary: 'learn <logs...> [--out policy.yaml]      a minimal policy allowing what the audit logs show',
  },
  diff: {
    run: diff,
    usage: DIFF_USAGE,
    summary:
      'diff <policy.yaml> <logs...>            what enforcing the policy would have denied, per service',
  },
  report: {
    run: report,
    usage: REPORT_USAGE,
    summary:
      'report <logs...> --html report.html     one self-contained page: destinations, decisions, denials',
  },
  export: {
    run: exportCommand,
    usage: exportUsage,
    summary:
      'export <policy.yaml> --to <target>      the policy for nginx, HAProxy, Squid, Envoy, Istio, Cilium, AWS (export --help)',
  },
};

function help(io: CliIo, write: (line: string) => void = io.out): void {
  write(
    'usage: egress-guard <command> [arguments] (egress-guard <command> --help for its flags)\n\ncommands:',
  );
  for (const { summary } of Object.values(COMMANDS)) write(`  egress-guard ${summary}`);
  write('\n  egress-guard --version                  the version of this command');
}

/** The version of this package, read from its package.json (next to src/ and dist/ alike). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** `--help` or `-h` among the arguments, before a `--` that ends the flags. */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/**
 * Runs the CLI with the given arguments; resolves to the exit code ({@link EXIT}: 0 yes, 1 no, 2 usage
 * error or unreadable input). Never throws for bad input, and never prints a stack trace unless
 * `EGRESS_GUARD_DEBUG=1`.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    help(io);
    return EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    io.out(version());
    return EXIT.ok;
  }
  if (name === undefined) {
    help(io, io.err);
    return EXIT.usage;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(
      `egress-guard: unknown ${name.startsWith('-') ? 'flag' : 'command'} "${name}" (egress-guard --help lists the commands)`,
    );
    return EXIT.usage;
  }
  if (asksForHelp(rest)) {
    io.out(typeof command.usage === 'function' ? command.usage() : command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`egress-guard ${name}: ${error.message}`);
      return EXIT.usage;
    }
    // A file that cannot be read is the user's to fix: its one-line message names it.
    const code = (error as NodeJS.ErrnoException).code;
    // Unexpected: still one line by default; EGRESS_GUARD_DEBUG=1 shows the stack.
    io.err(`egress-guard ${name}: ${(error as Error).message ?? String(error)}`);
    if (process.env.EGRESS_GUARD_DEBUG) io.err(String((error as Error).stack));
    return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? EXIT.usage : EXIT.no;
  }
}
