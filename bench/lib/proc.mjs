// Child processes for the benchmark: Node children with an RPC channel, peers (nginx, HAProxy, sniproxy)
// with a raised open-file limit, RSS read from /proc, bounded waits. Every child is started and stopped
// here, by its own pid.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

/** Open files wanted by processes that hold 10,000 connections (a proxy holds two sockets per flow). */
export const WANTED_NOFILE = 65536;

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** The soft and hard open-file limits of a process (`self` or a pid), from /proc. */
export function nofileOf(pid = 'self') {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/);
    return { soft: Number(soft) || Infinity, hard: Number(hard) || Infinity };
  } catch {
    return { soft: Number.NaN, hard: Number.NaN };
  }
}

/**
 * Raises this process's open-file limit (prlimit on our own pid; root with CAP_SYS_RESOURCE may raise the
 * hard limit too, anyone may raise the soft limit up to the hard one). Returns the limits in force.
 */
export function raiseOwnNofile(n = WANTED_NOFILE) {
  const before = nofileOf();
  if (before.soft >= n) return before;
  if (hasPrlimit) {
    for (const spec of [`${n}:${n}`, `${n}:${Math.max(n, before.hard)}`, `${Math.min(n, before.hard)}:`]) {
      try {
        execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${spec}`], { stdio: 'ignore' });
        break;
      } catch {
        // not allowed to raise the hard limit: try the next spec
      }
    }
  }
  return nofileOf();
}

/**
 * The open-file limit children can be given: WANTED_NOFILE, or this process's hard limit when it cannot
 * be raised (no CAP_SYS_RESOURCE, e.g. in a container). Call raiseOwnNofile() first.
 */
export const NOFILE = Math.min(WANTED_NOFILE, raiseOwnNofile().hard);

/** `cmd args` run with the open-file limit raised to `n`: through prlimit, else a bash `ulimit -n` wrapper. */
export function withNofile(cmd, args, n = NOFILE) {
  if (nofileOf().soft >= n) return [cmd, args];
  if (hasPrlimit) return ['prlimit', [`--nofile=${n}:${nofileOf().hard >= n ? n : ''}`, '--', cmd, ...args]];
  return [
    'bash',
    ['-c', `ulimit -n ${n} 2>/dev/null || ulimit -n $(ulimit -Hn); exec "$@"`, 'bash', cmd, ...args],
  ];
}

/** Keeps the last `max` characters written to a stream, for error messages. */
function tail(stream, max = 8000) {
  const t = { text: '' };
  stream?.on('data', (d) => {
    t.text = (t.text + d.toString()).slice(-max);
  });
  return t;
}

/**
 * Starts a Node child running `script` with an RPC channel (see rpc.mjs). `nofile` raises its open-file
 * limit; `execArgv` is passed to node (e.g. --cpu-prof). Resolves once the child sent `{ ready }`, with
 * `{ pid, ready, call(op, args), stop() }`.
 */
export async function startNode(
  script,
  { args = [], execArgv = [], env, nofile, name = script, readyTimeoutMs = 30_000 } = {},
) {
  const nodeArgs = [...execArgv, script, ...args];
  const [cmd, argv] = nofile ? withNofile(process.execPath, nodeArgs, nofile) : [process.execPath, nodeArgs];
  const proc = spawn(cmd, argv, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...env },
  });
  const out = tail(proc.stdout);
  const err = tail(proc.stderr);
  if (process.env.BENCH_DEBUG) {
    proc.stdout.on('data', (d) => process.stderr.write(`[${name} out] ${d}`));
    proc.stderr.on('data', (d) => process.stderr.write(`[${name} err] ${d}`));
  }
  let seq = 0;
  const pending = new Map();
  let exited = false;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = true;
      for (const p of pending.values())
        p.reject(new Error(`${name} exited (${code ?? signal}) during a call\n${err.text || out.text}`));
      pending.clear();
      resolve({ code, signal });
    });
  });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name}: not ready after ${readyTimeoutMs} ms\n${err.text}`)),
      readyTimeoutMs,
    );
    proc.on('message', (m) => {
      if (m?.ready) {
        clearTimeout(timer);
        resolve(m.ready);
      } else if (m && m.id !== undefined && pending.has(m.id)) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p.reject(new Error(`${name}: ${m.error}`));
        else p.resolve(m.result);
      }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready\n${err.text || out.text}`));
    });
    proc.on('error', reject);
  });
  return {
    pid: proc.pid,
    ready,
    stderr: () => err.text,
    call(op, callArgs = {}, timeoutMs = 600_000) {
      if (exited) return Promise.reject(new Error(`${name} is not running\n${err.text}`));
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${op} did not answer in ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        proc.send({ id, op, args: callArgs });
      });
    },
    /** Asks the child to exit (so that --cpu-prof writes its profile); kills it after `timeoutMs`. */
    async stop(timeoutMs = 10_000) {
      if (exited) return exitPromise;
      try {
        proc.send({ id: 0, op: 'exit' });
      } catch {
        // channel closed already
      }
      const timer = setTimeout(() => {
        if (!exited) process.kill(proc.pid, 'SIGKILL');
      }, timeoutMs);
      const r = await exitPromise;
      clearTimeout(timer);
      return r;
    },
    exited: () => exitPromise,
  };
}

/**
 * Starts a peer (nginx, haproxy, sniproxy) in the foreground with the open-file limit raised, and waits
 * until `port` on 127.0.0.1 accepts connections. Returns `{ pid, stop() }`.
 */
export async function startPeer(name, cmd, args, { port, nofile = NOFILE, timeoutMs = 15_000 } = {}) {
  const [c, a] = withNofile(cmd, args, nofile);
  const proc = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tail(proc.stdout);
  const err = tail(proc.stderr);
  let exited = false;
  const exitPromise = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    }),
  );
  proc.on('error', () => {});
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`${name} exited at start:\n${err.text || out.text}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      process.kill(proc.pid, 'SIGKILL');
      throw new Error(`${name}: port ${port} not open after ${timeoutMs} ms\n${err.text}`);
    }
    await sleep(50);
  }
  return {
    pid: proc.pid,
    name,
    stderr: () => err.text,
    async stop(timeoutMs = 10_000) {
      if (exited) return exitPromise;
      process.kill(proc.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) process.kill(proc.pid, 'SIGKILL');
      }, timeoutMs);
      const r = await exitPromise;
      clearTimeout(timer);
      return r;
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether 127.0.0.1:port accepts a TCP connection (within 1 s). */
export function canConnect(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

/** Pids of a process and all its descendants (from the ppid field of /proc/<pid>/stat). */
export function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // gone
    }
  }
  const out = [];
  const walk = (p) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** Resident set size in bytes of a process (and its descendants, e.g. nginx's workers). */
export function rssOf(pid, { tree = true } = {}) {
  let total = 0;
  for (const p of tree ? processTree(pid) : [pid]) {
    const path = `/proc/${p}/status`;
    if (!existsSync(path)) continue;
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(path, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** CPU time (user + system, seconds) of a process tree, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks / 100;
}
