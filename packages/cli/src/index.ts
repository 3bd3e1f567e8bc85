/**
 * @packageDocumentation
 * The `egress-guard` command. `main()` runs it in-process (for tests and embedding).
 */
import { check } from './commands/check.js';
import { diff } from './commands/diff.js';
import { edge } from './commands/edge.js';
import { learn } from './commands/learn.js';
import { lint } from './commands/lint.js';
import { report } from './commands/report.js';
import { schema } from './commands/schema.js';
import { type CliIo, processIo, UsageError } from './io.js';

export type { CliIo } from './io.js';

type Command = (args: string[], io: CliIo) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  lint: {
    run: lint,
    summary: 'lint <policy.yaml>                      validate a policy; every problem with its position',
  },
  check: { run: check, summary: 'check <policy.yaml> <url|host:port>     the decision for one destination' },
  edge: {
    run: edge,
    summary: 'edge --policy <policy.yaml> --explicit HOST:PORT  run the edge filter (edge --help for all)',
  },
  schema: {
    run: schema,
    summary: 'schema                                  print the JSON Schema of policy files',
  },
  learn: {
    run: learn,
    summary: 'learn <logs...> [--out policy.yaml]      a minimal policy allowing what the audit logs show',
  },
  diff: {
    run: diff,
    summary:
      'diff <policy.yaml> <logs...>            what enforcing the policy would have denied, per service',
  },
  report: {
    run: report,
    summary:
      'report <logs...> --html report.html     one self-contained page: destinations, decisions, denials',
  },
};

/** Registers another command (the edge and learn commands live in their own modules). */
export function registerCommand(name: string, run: Command, summary: string): void {
  COMMANDS[name] = { run, summary };
}

function help(io: CliIo): void {
  io.out('egress-guard: egress control from one policy file\n\ncommands:');
  for (const { summary } of Object.values(COMMANDS)) io.out(`  egress-guard ${summary}`);
}

/** Runs the CLI with the given arguments; resolves to the exit code. Never throws for bad input. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    help(io);
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`egress-guard: unknown command "${name}" (try egress-guard --help)`);
    return 1;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`egress-guard ${name}: ${error.message}`);
      return 1;
    }
    // Unexpected: still one line by default; EGRESS_GUARD_DEBUG=1 shows the stack.
    io.err(`egress-guard ${name}: ${(error as Error).message ?? String(error)}`);
    if (process.env.EGRESS_GUARD_DEBUG) io.err(String((error as Error).stack));
    return 1;
  }
}
