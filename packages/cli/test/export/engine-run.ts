import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

/*
 * Runs nginx, HAProxy and Squid (Debian's packages, installed by scripts/ensure-test-tools.sh) with an
 * exported configuration, on loopback only, and probes them as clients would. Every process started here is
 * stopped by its own pid.
 */

const run = promisify(execFile);

/** The address engines listen on in tests: upstreams use 127.0.0.1 with the same port numbers. */
export const ENGINE_ADDRESS = '127.0.0.2';

/** A temporary folder for an engine's pid, logs, sockets and cache; world-writable for Squid's own user. */
export function engineDir(name: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), `eg-export-${name}-`));
  // Squid started as root runs as its cache_effective_user (Debian: proxy); nginx workers as nobody.
  chmodSync(dir, 0o777);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Result of an engine's own configuration check. */
export interface CheckResult {
  ok: boolean;
  output: string;
}

async function runCheck(file: string, args: string[]): Promise<CheckResult> {
  try {
    const { stdout, stderr } = await run(file, args, { timeout: 20_000 });
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}

/** `nginx -t` with the pid and error log in `dir`. */
export function nginxCheck(conf: string, dir: string): Promise<CheckResult> {
  return runCheck('nginx', ['-t', '-q', '-c', conf, '-p', dir, '-g', nginxGlobals(dir, false)]);
}

/** `haproxy -c`. */
export function haproxyCheck(conf: string): Promise<CheckResult> {
  return runCheck('haproxy', ['-c', '-q', '-f', conf]);
}

/** `squid -k parse`: Squid exits 0 on some errors, so its output is checked for ERROR and FATAL too. */
export async function squidCheck(conf: string): Promise<CheckResult> {
  const r = await runCheck('squid', ['-k', 'parse', '-f', conf]);
  const bad = r.output.split('\n').filter((l) => /\b(ERROR|FATAL|WARNING)\b|Bungled|unrecognized/i.test(l));
  return { ok: r.ok && bad.length === 0, output: r.ok ? bad.join('\n') : r.output };
}

function nginxGlobals(dir: string, foreground: boolean): string {
  return `${foreground ? 'daemon off; ' : ''}pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log notice;`;
}

/** A running engine. */
export interface Engine {
  stop(): Promise<void>;
  /** What the engine wrote, for failure messages. */
  output(): string;
}

function startProcess(file: string, args: string[], readyPort: number): Promise<Engine> {
  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const engine: Engine = {
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  return waitListening(ENGINE_ADDRESS, readyPort, 20_000, () => child.exitCode !== null).then(
    () => engine,
    async (error: Error) => {
      await engine.stop();
      throw new Error(`${file} did not start: ${error.message}\n${output}`);
    },
  );
}

async function waitListening(host: string, port: number, ms: number, died: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (died()) throw new Error('the process exited');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

/** nginx in the foreground (master and workers), its state in `dir`. */
export function startNginx(conf: string, dir: string, readyPort: number): Promise<Engine> {
  return startProcess('nginx', ['-c', conf, '-p', dir, '-g', nginxGlobals(dir, true)], readyPort);
}

/** HAProxy in the foreground. */
export function startHaproxy(conf: string, readyPort: number): Promise<Engine> {
  return startProcess('haproxy', ['-db', '-f', conf], readyPort);
}

/**
 * Squid in the foreground with the exported file included after test-only lines: `hosts_file` maps every
 * probed name to the upstreams' address (Squid's resolver takes no port), and no DNS server off loopback.
 */
export function startSquid(conf: string, dir: string, hosts: string[], readyPort: number): Promise<Engine> {
  const hostsFile = path.join(dir, 'hosts');
  writeFileSync(
    hostsFile,
    `${[...new Set(hosts.map((h) => h.toLowerCase().replace(/\.$/, '')))].map((h) => `127.0.0.1 ${h}`).join('\n')}\n`,
  );
  const wrapper = path.join(dir, 'test-squid.conf');
  writeFileSync(wrapper, `hosts_file ${hostsFile}\ndns_nameservers 127.0.0.1\ninclude ${conf}\n`);
  return startProcess('squid', ['-N', '-f', wrapper], readyPort);
}

/** Whether a TLS handshake through the engine completed (the upstream answered). */
export function tlsThrough(
  port: number,
  servername: string,
  connect?: { proxyPort: number; authority: string },
  maxVersion: tls.SecureVersion = 'TLSv1.3',
): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, socket?: net.Socket) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false, raw), 8000);
    const handshake = (socket?: net.Socket) => {
      const t = tls.connect({
        ...(socket ? { socket } : { host: ENGINE_ADDRESS, port }),
        servername,
        maxVersion,
        rejectUnauthorized: false,
      });
      t.once('secureConnect', () => done(true, t));
      t.once('error', () => done(false, t));
      t.once('close', () => done(false, t));
    };
    let raw: net.Socket | undefined;
    if (!connect) {
      handshake();
      return;
    }
    raw = net.connect({ host: ENGINE_ADDRESS, port: connect.proxyPort }, () => {
      raw!.write(`CONNECT ${connect.authority} HTTP/1.1\r\nHost: ${connect.authority}\r\n\r\n`);
    });
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      raw!.off('data', onData);
      if (/^HTTP\/1\.[01] 200/.test(head)) handshake(raw);
      else done(false, raw);
    };
    raw.on('data', onData);
    raw.once('error', () => done(false, raw));
    raw.once('close', () => done(false, raw));
  });
}

/**
 * Sends one plain HTTP request for `host` on `port`: origin-form straight to the engine, or absolute-form
 * to an explicit proxy on `proxyPort`. Resolves with the status (0: no answer).
 */
export function httpThrough(port: number, host: string, proxyPort?: number): Promise<number> {
  const target = proxyPort === undefined ? '/probe' : `http://${host}:${port}/probe`;
  const hostHeader = proxyPort === undefined ? host : `${host}:${port}`;
  return rawHttpThrough(
    proxyPort ?? port,
    `GET ${target} HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`,
  );
}

/** Sends a request head as written (e.g. a request line and a Host that disagree); resolves with the status. */
export function rawHttpThrough(enginePort: number, head: string): Promise<number> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (status: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => finish(0), 8000);
    const socket = net.connect({ host: ENGINE_ADDRESS, port: enginePort }, () => socket.write(head));
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      if (m) finish(Number(m[1]));
    });
    socket.once('error', () => finish(0));
    socket.once('close', () => finish(0));
  });
}
