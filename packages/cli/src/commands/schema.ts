import { policyJsonSchema } from '@egress-guard/policy';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';

/** `egress-guard schema`: the JSON Schema of policy files, for editors. */
export async function schema(args: string[], io: CliIo): Promise<number> {
  if (args.length !== 0) throw new UsageError('usage: egress-guard schema');
  io.out(JSON.stringify(policyJsonSchema(), null, 2));
  return 0;
}
