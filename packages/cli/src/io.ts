/** Where a command writes; tests pass their own. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/**
 * A mistake in how the command was called or what it was given: one line, no stack, exit
 * {@link EXIT.usage}.
 */
export class UsageError extends Error {}

/**
 * Exit codes shared by every command, as grep and diff use them: 0 yes (valid, allowed, nothing would be
 * denied), 1 no (problems found, denied, something would be denied), 2 the command could not answer
 * (a usage error, an unreadable or invalid input). A reader closing the pipe early ends the command with
 * 141, the status of a process stopped by SIGPIPE, so that `set -o pipefail` never reads it as success.
 */
export const EXIT = { ok: 0, no: 1, usage: 2, closedPipe: 141 } as const;

export const processIo: CliIo = {
  out: (line) => write(process.stdout, line),
  err: (line) => write(process.stderr, line),
};

/** Once a reader has gone, nothing more is written (the process is ending; see {@link endOnClosedPipe}). */
let pipeClosed = false;

function write(stream: NodeJS.WriteStream, line: string): void {
  if (pipeClosed || stream.destroyed) return;
  stream.write(`${line}\n`);
}

/**
 * `egress-guard check ... | head -1`: when the reader of stdout or stderr goes away, end at once and
 * quietly (no EPIPE stack trace), with {@link EXIT.closedPipe}. Other stream errors still surface.
 */
export function endOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      pipeClosed = true;
      process.exit(EXIT.closedPipe);
    });
  }
}
