/**
 * Argument parsing shared by the commands: `node:util` `parseArgs`, strict, with its errors turned into
 * one-line usage errors that name the flag (and a "did you mean" among the command's flags).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { didYouMean } from '@egress-guard/policy';
import { UsageError } from './io.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's arguments (positionals allowed).
 *
 * @throws {@link UsageError} naming the unknown flag, the flag missing its value or the switch given a value.
 */
export function parseCommandArgs<O extends Options>(
  args: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(describeParseError(error as Error & { code?: string }, options));
  }
}

/** The flags a command knows, with `--`. */
function flagNames(options: Options): string[] {
  return Object.keys(options).map((name) => `--${name}`);
}

/**
 * parseArgs' messages are long and suggest `--` tricks; say what is wrong with the flag in a few words.
 * The flag is read back from the message, which quotes it (`Unknown option '--x'`, `Option '--out <value>'`).
 */
function describeParseError(error: Error & { code?: string }, options: Options): string {
  const flag = /'.*?(--[\w-]+)/.exec(error.message)?.[1] ?? /'(-\w)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      if (flag === undefined) break;
      const hint = flag.startsWith('--') ? didYouMean(flag, flagNames(options)) : undefined;
      return `unknown flag ${flag}${hint ? ` (did you mean ${hint}?)` : ''}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (flag === undefined) break;
      return error.message.includes('does not take') ? `${flag} takes no value` : `${flag} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return 'unexpected argument';
  }
  return error.message.split('\n')[0] ?? error.message;
}
