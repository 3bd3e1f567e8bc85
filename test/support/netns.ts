/**
 * A throw-away network of Linux network namespaces for the edge's transparent-mode tests:
 *
 * ```
 *  client ──(10.200.X.0/24, fd00:200:X::/64)── edge ──(10.201.X.0/24, fd00:201:X::/64)── internet
 *                                          (router, ip_forward=1,
 *                                           nat PREROUTING REDIRECT)
 * ```
 *
 * Every name is unique per run (`eg` + a random id), X is random per run, and only private addresses of
 * these namespaces are used. The namespaces have no link to the host's network (both ends of each veth
 * pair are created inside them), so nothing here can send a packet anywhere else. Whatever a run creates
 * it records and destroys ({@link Topology.destroy}; SIGTERM/SIGINT/exit hooks as a last resort); it
 * never touches namespaces it did not create.
 *
 * Node code runs inside a namespace as a child process (`ip netns exec NAME node --import tsx ...`):
 * {@link runNodeIn} for a script that runs to completion, {@link startNodeIn} for a long-running one that
 * prints `READY {json}` and then answers JSON requests on stdin ({@link signalReady} and
 * {@link serveRequests} are the child's side of that protocol).
 *
 * Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 and iptables. When `ip netns add` is refused,
 * {@link createTopology} throws with the reason: these tests are never skipped silently.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** One network namespace of a {@link Topology}. */
export interface Ns {
  /** Namespace name, for `ip netns exec NAME` / `ip -n NAME`. */
  name: string;
  /**
   * Its IPv4 address on its link: the client's and the internet's only link; for the edge, its address
   * on the client link (the client's default gateway). See {@link Topology.edgeUplink} for the other.
   */
  address: string;
  /** Its IPv6 (unique-local `fd00:...`) address on the same link. */
  address6: string;
}

/** Outcome of {@link Topology.exec}. Never a rejection for a non-zero exit: tests assert on `code`. */
export interface ExecResult {
  /** Exit code; `null` when killed by a signal (e.g. after the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Whether the command was killed for exceeding its time limit. */
  timedOut: boolean;
}

/** Options for {@link Topology.exec}. */
export interface ExecOptions {
  /** SIGKILL after this many milliseconds. Default `20_000`. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. Default: stdin closed at once. */
  input?: string;
  /** Variables merged over `process.env`; `undefined` removes one. */
  env?: Record<string, string | undefined>;
}

/** Options for {@link Topology.redirect}. */
export interface RedirectOptions {
  /**
   * Destination ports to redirect. Default: every TCP port (so a connection to the edge's own address
   * is redirected too; give ports to leave the edge itself reachable).
   */
  dports?: number[];
  /** Which NAT tables: `4` (iptables), `6` (ip6tables), or both. Default `'both'`. */
  family?: 4 | 6 | 'both';
}

/** Options for {@link runNodeIn} and {@link startNodeIn}. */
export interface NodeInOptions {
  /** Variables merged over `process.env`; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Node binary. Default `process.execPath`; the matrix binaries test other releases. */
  nodeBinary?: string;
  /**
   * Kill (SIGKILL) after this many milliseconds: for {@link runNodeIn} the whole run (default
   * `20_000`), for {@link startNodeIn} the wait for `READY` (default `20_000`).
   */
  timeoutMs?: number;
  /** Load tsx so the script and its imports may be TypeScript. Default `true`. */
  tsx?: boolean;
}

/** A long-running Node process in a namespace, from {@link startNodeIn}. */
export interface NodeService<Ready = unknown> {
  /** The JSON payload of the child's `READY` line (ports, addresses, ...). */
  ready: Ready;
  child: ChildProcess;
  /**
   * Sends one JSON request on stdin and resolves with the child's reply (see {@link serveRequests}).
   * Rejects when the child reports an error, exits, or does not answer within `timeoutMs` (default
   * `10_000`).
   */
  request<T = unknown>(message: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Everything the child wrote to stdout so far (READY/REPLY lines included). */
  stdout(): string;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after `graceMs` (default `2_000`); resolves when the child has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** A client, edge and internet namespace, from {@link createTopology}. */
export interface Topology {
  /** Random id in every name of this run (6 hex digits). */
  id: string;
  /** The random third octet X of this run's subnets. */
  subnet: number;
  client: Ns;
  edge: Ns;
  internet: Ns;
  /** The edge's addresses on the internet link (the internet namespace's default gateway). */
  edgeUplink: { address: string; address6: string };
  /** Interface names: `clientSide` in the edge namespace faces the client (what NAT rules match on). */
  interfaces: { client: string; edgeClientSide: string; edgeInternetSide: string; internet: string };
  /** Runs `cmd args` inside `ns` and collects its output. */
  exec(ns: Ns, cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts `cmd args` inside `ns`; the child is killed by {@link Topology.destroy} if still running. */
  spawn(ns: Ns, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /**
   * Adds a nat PREROUTING rule in the edge namespace: TCP arriving from the client's link is
   * `REDIRECT`ed to `port` on the edge (the transparent listener). IPv4 and IPv6 by default.
   */
  redirect(port: number, opts?: RedirectOptions): Promise<void>;
  /** Removes every rule {@link Topology.redirect} added (flushes nat PREROUTING in the edge). */
  clearRedirects(): Promise<void>;
  /**
   * Adds one more address to the internet namespace's link (the next free `10.201.X.N` and
   * `fd00:201:X::N`), for a second server (`evil`, round-robin). Routable from the client at once.
   */
  addInternetAddress(): Promise<{ address: string; address6: string }>;
  /**
   * Writes `source` to `name` (e.g. `server.mts`) in a folder of this topology, removed by destroy, and
   * returns the path: for child scripts a test file generates, importing the repository's modules
   * through {@link repoFileUrl}.
   */
  writeScript(name: string, source: string): string;
  /** {@link runNodeIn} in one of this topology's namespaces, killed by destroy if still running. */
  runNodeIn(ns: Ns, script: string, args?: string[], opts?: NodeInOptions): Promise<ExecResult>;
  /** {@link startNodeIn} in one of this topology's namespaces, stopped by destroy. */
  startNodeIn<Ready = unknown>(
    ns: Ns,
    script: string,
    args?: string[],
    opts?: NodeInOptions,
  ): Promise<NodeService<Ready>>;
  /**
   * Kills every child started through this topology, deletes its namespaces (which removes their
   * interfaces and rules) and its script folder. Idempotent. Throws if a namespace could not be deleted.
   */
  destroy(): Promise<void>;
}

const IP = process.env.IP_BIN ?? 'ip';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Namespaces and children alive in this process, for the last-resort clean-up. */
const live = { namespaces: new Set<string>(), children: new Set<ChildProcess>() };

/** Synchronous, so it can run in an 'exit' handler. Only what this process created is touched. */
function cleanUpNow(): void {
  for (const child of live.children) child.kill('SIGKILL');
  for (const name of live.namespaces) {
    try {
      execFileSync(IP, ['netns', 'del', name], { stdio: 'ignore', timeout: 5_000 });
      live.namespaces.delete(name);
    } catch {
      // Nothing more can be done while exiting; the name starts with `eg` for a manual clean-up.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  cleanUpNow();
  // The signal's default action, which this listener replaced: exit with 128 + its number.
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

let exitHookInstalled = false;

/**
 * Last resort when a test file never reaches its afterAll. vitest stops its workers with SIGTERM (no
 * 'exit' event then), and Ctrl-C sends SIGINT, so those are caught while namespaces are alive; the
 * listeners are removed again once every namespace is gone, leaving the worker's normal shutdown alone.
 */
function guardWhileAlive(): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', cleanUpNow);
  }
  if (live.namespaces.size > 0) {
    if (!process.listeners('SIGTERM').includes(onSignal)) process.on('SIGTERM', onSignal);
    if (!process.listeners('SIGINT').includes(onSignal)) process.on('SIGINT', onSignal);
  } else {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

function mergeEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Runs a command to completion; rejects only when it cannot be started (e.g. ENOENT). */
function run(cmd: string, args: string[], opts: ExecOptions & { track?: Set<ChildProcess> } = {}) {
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(cmd, args, { env: mergeEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    opts.track?.add(child);
    live.children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 20_000);
    const forget = (): void => {
      clearTimeout(timer);
      opts.track?.delete(child);
      live.children.delete(child);
    };
    child.once('error', (e) => {
      forget();
      reject(e);
    });
    child.once('close', (code) => {
      forget();
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** Runs a set-up command and throws, with its stderr, unless it exits 0. */
async function must(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  let result: ExecResult;
  try {
    result = await run(cmd, args, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        `network-namespace tests need "${cmd}" on PATH (Debian/Ubuntu: apt-get install iproute2 iptables)`,
      );
    }
    throw err;
  }
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** `ip netns exec NAME cmd args`, as one argv. */
function inNs(ns: Ns | string, cmd: string, args: string[]): [string, string[]] {
  return [IP, ['netns', 'exec', typeof ns === 'string' ? ns : ns.name, cmd, ...args]];
}

let tsxSetup: { loader: string; tsconfig: string } | undefined;

/**
 * The tsx loader URL and a tsconfig mapping `@egress-guard/*` to the packages' sources, so that a child
 * runs the same code vitest does (vitest aliases them the same way), never a stale `dist`. The tsconfig
 * lives in the git-ignored `.tmp/` (its content never changes, so nothing has to clean it up), written
 * by rename so parallel test files never read half a file.
 */
function tsxFiles(): { loader: string; tsconfig: string } {
  if (tsxSetup) return tsxSetup;
  const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const dir = join(REPO_ROOT, '.tmp');
  mkdirSync(dir, { recursive: true });
  const tsconfig = join(dir, 'netns-tsx.tsconfig.json');
  const src = (pkg: string): string => join(REPO_ROOT, 'packages', pkg, 'src', 'index.ts');
  const partial = `${tsconfig}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(
    partial,
    JSON.stringify({
      extends: join(REPO_ROOT, 'tsconfig.base.json'),
      compilerOptions: {
        paths: {
          '@egress-guard/policy': [src('policy')],
          '@egress-guard/node': [src('node')],
          '@egress-guard/edge': [src('edge')],
        },
      },
    }),
  );
  renameSync(partial, tsconfig);
  tsxSetup = { loader, tsconfig };
  return tsxSetup;
}

function nodeArgv(
  script: string,
  args: string[],
  opts: NodeInOptions,
): { argv: string[]; env: NodeJS.ProcessEnv } {
  const useTsx = opts.tsx ?? true;
  const env = mergeEnv(opts.env);
  const argv: string[] = [];
  if (useTsx) {
    const { loader, tsconfig } = tsxFiles();
    argv.push('--import', loader);
    env.TSX_TSCONFIG_PATH ??= tsconfig;
  }
  argv.push(script, ...args);
  return { argv, env };
}

/**
 * Runs `node [--import tsx] script args` inside namespace `ns` to completion. Never rejects for a
 * non-zero exit or a timeout; assert on `code` and `stderr`.
 */
export function runNodeIn(
  ns: Ns | string,
  script: string,
  args: string[] = [],
  opts: NodeInOptions = {},
): Promise<ExecResult> {
  const { argv, env } = nodeArgv(script, args, opts);
  const [cmd, full] = inNs(ns, opts.nodeBinary ?? process.execPath, argv);
  return run(cmd, full, { env, timeoutMs: opts.timeoutMs ?? 20_000 });
}

/**
 * Starts `node [--import tsx] script args` inside namespace `ns` and resolves once it prints a line
 * `READY {json}` (see {@link signalReady}), with the parsed payload. Rejects, with the child's stderr,
 * if it exits or does not get ready within `timeoutMs`; the child is killed then.
 */
export function startNodeIn<Ready = unknown>(
  ns: Ns | string,
  script: string,
  args: string[] = [],
  opts: NodeInOptions = {},
): Promise<NodeService<Ready>> {
  const { argv, env } = nodeArgv(script, args, opts);
  const [cmd, full] = inNs(ns, opts.nodeBinary ?? process.execPath, argv);
  const child = spawn(cmd, full, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  child.stdin?.on('error', () => {});
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      live.children.delete(child);
      resolve();
    });
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;
  const failAll = (reason: string): void => {
    for (const p of pending.values()) p.reject(new Error(reason));
    pending.clear();
  };
  child.once('exit', (code, signal) => failAll(`child exited (${signal ?? code}): ${stderr.trim()}`));

  const stop = async (graceMs = 2_000): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exitedPromise;
    clearTimeout(timer);
  };

  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      if (ready) return;
      child.kill('SIGKILL');
      reject(
        new Error(
          `${script} in ${typeof ns === 'string' ? ns : ns.name} did not print READY in time; stderr: ${stderr}`,
        ),
      );
    }, opts.timeoutMs ?? 20_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`${script} exited (${signal ?? code}) before READY; stderr: ${stderr}`));
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      stdout += `${line}\n`;
      if (!ready && line.startsWith('READY ')) {
        ready = true;
        clearTimeout(timer);
        let payload: Ready;
        try {
          payload = JSON.parse(line.slice('READY '.length)) as Ready;
        } catch (err) {
          child.kill('SIGKILL');
          reject(new Error(`bad READY payload from ${script}: ${line} (${String(err)})`));
          return;
        }
        resolve({
          ready: payload,
          child,
          stdout: () => stdout,
          stderr: () => stderr,
          stop,
          request<T>(message: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
            if (exited) return Promise.reject(new Error(`child has exited: ${stderr.trim()}`));
            const id = nextId++;
            return new Promise<T>((res, rej) => {
              const t = setTimeout(() => {
                pending.delete(id);
                rej(new Error(`no reply to ${JSON.stringify(message)} within ${timeoutMs} ms`));
              }, timeoutMs);
              pending.set(id, {
                resolve: (v) => {
                  clearTimeout(t);
                  res(v as T);
                },
                reject: (e) => {
                  clearTimeout(t);
                  rej(e);
                },
              });
              child.stdin?.write(`${JSON.stringify({ ...message, id })}\n`);
            });
          },
        });
        return;
      }
      if (line.startsWith('REPLY ')) {
        let reply: { id?: number; ok?: boolean; result?: unknown; error?: string };
        try {
          reply = JSON.parse(line.slice('REPLY '.length));
        } catch {
          return;
        }
        const p = reply.id === undefined ? undefined : pending.get(reply.id);
        if (!p || reply.id === undefined) return;
        pending.delete(reply.id);
        if (reply.ok) p.resolve(reply.result);
        else p.reject(new Error(reply.error ?? 'request failed'));
      }
    });
  });
}

/** Child side of {@link startNodeIn}: announces readiness with a JSON payload. */
export function signalReady(payload: unknown): void {
  process.stdout.write(`READY ${JSON.stringify(payload)}\n`);
}

/**
 * Child side of {@link startNodeIn}: answers each JSON line on stdin with `REPLY {id, ok, result}`
 * (or `{id, ok: false, error}`), and exits when stdin closes, so a child never outlives its test.
 * `onClose` runs first (close servers), bounded to 2 s.
 */
export function serveRequests(
  handler: (message: Record<string, unknown>) => unknown,
  onClose?: () => unknown,
): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const id = message.id;
    Promise.resolve()
      .then(() => handler(message))
      .then(
        (result) => process.stdout.write(`REPLY ${JSON.stringify({ id, ok: true, result })}\n`),
        (err: unknown) =>
          process.stdout.write(
            `REPLY ${JSON.stringify({ id, ok: false, error: err instanceof Error ? err.message : String(err) })}\n`,
          ),
      );
  });
  const exit = (): void => {
    const force = setTimeout(() => process.exit(0), 2_000);
    force.unref();
    Promise.resolve()
      .then(() => onClose?.())
      .finally(() => process.exit(0));
  };
  lines.once('close', exit);
  process.once('SIGTERM', exit);
}

/** File URL of a path relative to the repository root, for imports in generated child scripts. */
export function repoFileUrl(relativePath: string): string {
  return pathToFileURL(join(REPO_ROOT, relativePath)).href;
}

function describePermissionProblem(stderr: string): string {
  return (
    `cannot create a network namespace (ip netns add): ${stderr.trim()}. ` +
    'The edge transparent-mode tests need root with CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root on ' +
    'the host, or in a container started with --privileged or --cap-add SYS_ADMIN --cap-add NET_ADMIN). ' +
    'They are not skipped: fix the environment.'
  );
}

/**
 * Builds a client, edge and internet namespace joined by two veth pairs, with IPv4 and IPv6 addresses,
 * forwarding on the edge and default routes through it. Call {@link Topology.destroy} in `afterAll`.
 *
 * @throws Error with the reason when namespaces cannot be created (not root, no iproute2).
 */
export async function createTopology(): Promise<Topology> {
  const id = randomBytes(3).toString('hex');
  const x = randomInt(16, 250);
  const hx = x.toString(16);
  const names = { client: `eg${id}-client`, edge: `eg${id}-edge`, internet: `eg${id}-inet` };
  // ≤ 15 characters (IFNAMSIZ - 1): "eg" + 6 + 2.
  const ifs = {
    client: `eg${id}ce`,
    edgeClientSide: `eg${id}ec`,
    edgeInternetSide: `eg${id}ei`,
    internet: `eg${id}ie`,
  };
  const created: string[] = [];
  const scripts = mkdtempSync(join(tmpdir(), `egress-guard-netns-${id}-`));
  let scriptCount = 0;
  const children = new Set<ChildProcess>();
  let destroyed: Promise<void> | undefined;

  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      const exits = [...children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              resolve();
              return;
            }
            const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      );
      await Promise.all(exits);
      const failures: string[] = [];
      for (const name of created) {
        const r = await run(IP, ['netns', 'del', name]).catch((e: Error) => ({
          code: -1,
          stderr: e.message,
          stdout: '',
          timedOut: false,
        }));
        if (r.code === 0) live.namespaces.delete(name);
        else failures.push(`${name}: ${r.stderr.trim()}`);
      }
      guardWhileAlive();
      rmSync(scripts, { recursive: true, force: true });
      if (failures.length > 0) throw new Error(`could not delete namespaces: ${failures.join('; ')}`);
    })();
    return destroyed;
  };

  try {
    for (const name of Object.values(names)) {
      const r = await run(IP, ['netns', 'add', name]).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT')
          throw new Error(`"${IP}" not found: install iproute2 (apt-get install iproute2)`);
        throw err;
      });
      if (r.code !== 0) throw new Error(describePermissionProblem(r.stderr));
      created.push(name);
      live.namespaces.add(name);
      guardWhileAlive();
      // Before any interface exists, so new interfaces inherit `default`: no duplicate-address
      // detection delay (addresses are also added `nodad`), and forwarding on the router.
      await must(IP, ['-n', name, 'link', 'set', 'lo', 'up']);
      const sysctls = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
      if (name === names.edge) sysctls.push('net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
      await must(...inNs(name, 'sysctl', ['-q', '-w', ...sysctls]));
    }
    // Both ends are created inside their namespaces, so nothing ever appears in the host's namespace.
    await must(IP, [
      'link',
      'add',
      ifs.client,
      'netns',
      names.client,
      'type',
      'veth',
      'peer',
      'name',
      ifs.edgeClientSide,
      'netns',
      names.edge,
    ]);
    await must(IP, [
      'link',
      'add',
      ifs.internet,
      'netns',
      names.internet,
      'type',
      'veth',
      'peer',
      'name',
      ifs.edgeInternetSide,
      'netns',
      names.edge,
    ]);

    const addr = {
      client: { address: `10.200.${x}.2`, address6: `fd00:200:${hx}::2` },
      edge: { address: `10.200.${x}.1`, address6: `fd00:200:${hx}::1` },
      edgeUplink: { address: `10.201.${x}.1`, address6: `fd00:201:${hx}::1` },
      internet: { address: `10.201.${x}.2`, address6: `fd00:201:${hx}::2` },
    };
    const configure = async (ns: string, dev: string, a: { address: string; address6: string }) => {
      await must(IP, ['-n', ns, 'addr', 'add', `${a.address}/24`, 'dev', dev]);
      await must(IP, ['-n', ns, '-6', 'addr', 'add', `${a.address6}/64`, 'dev', dev, 'nodad']);
      await must(IP, ['-n', ns, 'link', 'set', dev, 'up']);
    };
    await configure(names.client, ifs.client, addr.client);
    await configure(names.edge, ifs.edgeClientSide, addr.edge);
    await configure(names.edge, ifs.edgeInternetSide, addr.edgeUplink);
    await configure(names.internet, ifs.internet, addr.internet);
    await must(IP, ['-n', names.client, 'route', 'add', 'default', 'via', addr.edge.address]);
    await must(IP, ['-n', names.client, '-6', 'route', 'add', 'default', 'via', addr.edge.address6]);
    await must(IP, ['-n', names.internet, 'route', 'add', 'default', 'via', addr.edgeUplink.address]);
    await must(IP, ['-n', names.internet, '-6', 'route', 'add', 'default', 'via', addr.edgeUplink.address6]);
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }

  const ns = (name: string, a: { address: string; address6: string }): Ns => ({ name, ...a });
  const client = ns(names.client, { address: `10.200.${x}.2`, address6: `fd00:200:${hx}::2` });
  const edge = ns(names.edge, { address: `10.200.${x}.1`, address6: `fd00:200:${hx}::1` });
  const internet = ns(names.internet, { address: `10.201.${x}.2`, address6: `fd00:201:${hx}::2` });
  let nextHost = 3;

  const topology: Topology = {
    id,
    subnet: x,
    client,
    edge,
    internet,
    edgeUplink: { address: `10.201.${x}.1`, address6: `fd00:201:${hx}::1` },
    interfaces: ifs,
    exec: (where, cmd, args, opts = {}) => run(...inNs(where, cmd, args), { ...opts, track: children }),
    spawn(where, cmd, args, opts = {}) {
      const [bin, argv] = inNs(where, cmd, args);
      const child = spawn(bin, argv, opts);
      children.add(child);
      live.children.add(child);
      child.once('exit', () => {
        children.delete(child);
        live.children.delete(child);
      });
      return child;
    },
    async redirect(port, opts = {}) {
      const family = opts.family ?? 'both';
      const tools =
        family === 'both' ? ['iptables', 'ip6tables'] : family === 4 ? ['iptables'] : ['ip6tables'];
      // One rule per port keeps to the plainest iptables syntax (no multiport match).
      const ports: Array<number | undefined> = opts.dports ?? [undefined];
      for (const tool of tools) {
        for (const dport of ports) {
          const match = dport === undefined ? [] : ['--dport', String(dport)];
          await must(
            ...inNs(edge, tool, [
              '-t',
              'nat',
              '-A',
              'PREROUTING',
              '-i',
              ifs.edgeClientSide,
              '-p',
              'tcp',
              ...match,
              '-j',
              'REDIRECT',
              '--to-ports',
              String(port),
            ]),
          );
        }
      }
    },
    async clearRedirects() {
      await must(...inNs(edge, 'iptables', ['-t', 'nat', '-F', 'PREROUTING']));
      await must(...inNs(edge, 'ip6tables', ['-t', 'nat', '-F', 'PREROUTING']));
    },
    async addInternetAddress() {
      // Bounded by the /24: tests add a handful at most.
      if (nextHost > 250) throw new Error('no more internet addresses in this topology');
      const n = nextHost++;
      const a = { address: `10.201.${x}.${n}`, address6: `fd00:201:${hx}::${n.toString(16)}` };
      await must(IP, ['-n', internet.name, 'addr', 'add', `${a.address}/24`, 'dev', ifs.internet]);
      await must(IP, [
        '-n',
        internet.name,
        '-6',
        'addr',
        'add',
        `${a.address6}/64`,
        'dev',
        ifs.internet,
        'nodad',
      ]);
      return a;
    },
    writeScript(name, source) {
      // A folder per script: two helpers of one test file may pick the same name.
      const dir = join(scripts, String(++scriptCount));
      mkdirSync(dir);
      const path = join(dir, name);
      writeFileSync(path, source);
      return path;
    },
    runNodeIn(where, script, args = [], opts = {}) {
      const { argv, env } = nodeArgv(script, args, opts);
      const [cmd, full] = inNs(where, opts.nodeBinary ?? process.execPath, argv);
      return run(cmd, full, { env, timeoutMs: opts.timeoutMs ?? 20_000, track: children });
    },
    async startNodeIn<Ready>(where: Ns, script: string, args: string[] = [], opts: NodeInOptions = {}) {
      const service = await startNodeIn<Ready>(where, script, args, opts);
      children.add(service.child);
      service.child.once('exit', () => children.delete(service.child));
      return service;
    },
    destroy,
  };
  return topology;
}
