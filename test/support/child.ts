import { spawn } from 'node:child_process';

/** Options for {@link runNode}. */
export interface RunNodeOptions {
  /**
   * Variables merged over `process.env`; a value of `undefined` removes the variable (e.g. to drop an
   * inherited `HTTPS_PROXY` or `NODE_OPTIONS`).
   */
  env?: Record<string, string | undefined>;
  /** Working directory. Default: `process.cwd()`. */
  cwd?: string;
  /** Written to the child's stdin, which is then closed. Default: stdin closed at once. */
  input?: string | Buffer;
  /** Kill (SIGKILL) after this many milliseconds. Default `20_000`. */
  timeoutMs?: number;
  /** Node binary to run. Default `process.execPath`, so the child is the same version as the test. */
  nodeBinary?: string;
}

/** Outcome of {@link runNode}. */
export interface RunNodeResult {
  /** Exit code; `null` when the child died by a signal. */
  code: number | null;
  /** Signal that ended the child, if any (`SIGKILL` after a timeout). */
  signal: NodeJS.Signals | null;
  /** Whether the child was killed for exceeding `timeoutMs`. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node <args>` and collects its output. Never rejects for a non-zero exit or a timeout (tests
 * assert on `code`/`stderr`); rejects only when the binary cannot be started.
 */
export function runNode(args: string[], opts: RunNodeOptions = {}): Promise<RunNodeResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const child = spawn(opts.nodeBinary ?? process.execPath, args, {
    cwd: opts.cwd ?? process.cwd(),
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  // A child that exits before reading its input closes the pipe; that is not the test's failure.
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 20_000);

  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' rather than 'exit': it fires after stdout and stderr are drained.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        timedOut,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
  });
}
