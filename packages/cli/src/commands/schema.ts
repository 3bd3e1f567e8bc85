import { policyJsonSchema } from '@egress-guard/policy';
import { parseCommandArgs } from '../args.js';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';

/** The command's help (`egress-guard schema --help`). */
export const USAGE = 'usage: egress-guard schema    (prints the JSON Schema of policy files, for editors)';

/** `egress-guard schema`: the JSON Schema of policy files, for editors. */
export async function schema(args: string[], io: CliIo): Promise<number> {
  if (parseCommandArgs(args, {}).positionals.length !== 0) throw new UsageError(USAGE);
  io.out(JSON.stringify(policyJsonSchema(), null, 2));
  return 0;
}
