/**
 * The edge with worker processes, on a real primary in a child process (`startEdgeWorkers` with
 * `signals: true`, through tsx as signals.test.ts does): one policy (a SIGHUP reload reaches every
 * worker, and every decision written after the reload event carries the new hash), one flow log (every
 * line whole, one decision and one completion per connection, under load), one aggregated `/metrics`,
 * a killed worker replaced with an `egress.worker.exited` event, and a clean SIGTERM exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { egressEventSchema } from '@egress-guard/policy';
import { afterEach, describe, expect, it } from 'vitest';
import { type RecordingServer, startTcpServer } from '../../../test/support/index.js';
import { EdgeConfigError, startEdge, startEdgeWorkers } from '../src/index.js';
import { connectTunnel, echo, staticResolver, TEST_PORTS, tempDir, waitFor } from './helpers/edge-kit.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const policyText = (rule: string) => `version: 1
allow:
  - name: ${rule}
    addresses: [127.0.0.1/32]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
`;

const CHILD = `
import { startEdgeWorkers } from ${JSON.stringify(pathToFileURL(`${REPO}packages/edge/src/index.ts`).href)};
const [policy, workers, watch, proxyAuth] = process.argv.slice(2);
const edge = await startEdgeWorkers({
  policy,
  workers: Number(workers),
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  admin: { host: '127.0.0.1', port: 0 },
  signals: true,
  watch: watch === 'watch',
  proxyAuth: proxyAuth || undefined,
  watchDebounce: '100ms',
  limits: { drainTimeout: '5s' },
});
process.stderr.write('READY ' + JSON.stringify({ port: edge.listeners[0].port, admin: edge.adminAddress.port, pids: edge.workerPids }) + '\\n');
`;

interface Child {
  proc: ChildProcess;
  port: number;
  admin: number;
  pids: number[];
  /** Every stdout line so far (the flow log). */
  lines(): string[];
  events(): Record<string, unknown>[];
  exited: Promise<number | null>;
}

let child: ChildProcess | undefined;
let server: RecordingServer | undefined;
let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await server?.close();
  await dir?.cleanup();
  child = undefined;
  server = undefined;
});

async function startChild(
  policyFile: string,
  workers: number,
  watch = false,
  proxyAuth = '',
): Promise<Child> {
  const script = await dir!.write('edge-workers-child.mts', CHILD);
  const tsconfig = await dir!.write(
    'tsconfig.json',
    JSON.stringify({
      extends: `${REPO}tsconfig.base.json`,
      compilerOptions: { paths: { '@egress-guard/policy': [`${REPO}packages/policy/src/index.ts`] } },
    }),
  );
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const proc = spawn(
    process.execPath,
    ['--import', tsx, script, policyFile, String(workers), watch ? 'watch' : 'no-watch', proxyAuth],
    {
      env: { ...process.env, TSX_TSCONFIG_PATH: tsconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child = proc;
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ready = await waitFor(
    () => /READY (\{.*\})/.exec(stderr)?.[1],
    40_000,
    `READY from the child (stderr: ${stderr})`,
  );
  const { port, admin, pids } = JSON.parse(ready) as { port: number; admin: number; pids: number[] };
  const lines = () => stdout.split('\n').filter((l) => l.length > 0);
  return {
    proc,
    port,
    admin,
    pids,
    lines,
    events: () => lines().map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
  };
}

/** `count` tunnels through the edge, `concurrency` at a time, each echoing one payload. */
async function tunnels(port: number, target: number, count: number, concurrency: number): Promise<number> {
  let next = 0;
  let ok = 0;
  const one = async () => {
    while (next < count) {
      next++;
      const t = await connectTunnel(port, `127.0.0.1:${target}`, 10_000);
      if (t.status === 200 && (await echo(t.socket, Buffer.from('ping'))).toString() === 'ping') ok++;
      t.socket.end();
      await new Promise<void>((resolve) => {
        if (t.socket.destroyed) resolve();
        else t.socket.once('close', () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return ok;
}

/** Workers send their lines in batches: waits (bounded) until the primary has written `count` decisions. */
function decisionsWritten(c: Child, count: number): Promise<Record<string, unknown>[]> {
  return waitFor(
    () => {
      const d = c.events().filter((e) => e['event.name'] === 'egress.decision');
      return d.length >= count ? d : undefined;
    },
    10_000,
    `${count} decisions`,
  );
}

async function scrape(admin: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
}

/** The flow id's prefix names the worker process that wrote it (`edge-<worker>-<n>`). */
const workerOf = (id: unknown) => String(id).split('-')[1];

// The child runs the sources through tsx in the primary and in each worker: starting takes seconds.
describe('edge workers', { timeout: 120_000 }, () => {
  it('two workers: one policy across a SIGHUP reload, one flow log with every line whole under load, one /metrics, SIGTERM exits 0', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const policyFile = await dir.write('egress.yaml', policyText('before'));
    const c = await startChild(policyFile, 2);
    expect(c.pids).toHaveLength(2);

    expect(await tunnels(c.port, server.port, 600, 48)).toBe(600);
    await writeFile(policyFile, policyText('after'));
    c.proc.kill('SIGHUP');
    await waitFor(
      () => c.events().find((e) => e['event.name'] === 'egress.policy.reloaded'),
      15_000,
      'the reload event',
    );
    expect(await tunnels(c.port, server.port, 600, 48)).toBe(600);

    const metrics = await scrape(c.admin);
    // Every worker's counters, summed: each connection counted once, by whichever worker took it.
    expect(metrics).toContain(
      'egress_edge_decisions_total{listener="explicit",result="allowed",reason="allowed"} 1200',
    );
    expect(metrics).toContain('egress_edge_connections_accepted_total{listener="explicit"} 1200');
    expect(metrics).toContain('egress_edge_workers 2');
    expect(metrics).toContain('egress_edge_policy_reloads_total{result="reloaded"} 1');

    c.proc.kill('SIGTERM');
    const code = await Promise.race([
      c.exited,
      new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000)),
    ]);
    expect(code).toBe(0);

    // One flow log: every line is one whole, valid event (none torn, none interleaved).
    const lines = c.lines();
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of events) {
      const { level: _l, time: _t, msg: _m, ...event } = e;
      expect(egressEventSchema.safeParse(event).success, JSON.stringify(e)).toBe(true);
    }
    // None lost: one decision and one completion per connection, matched by id.
    const decisions = events.filter((e) => e['event.name'] === 'egress.decision');
    const completions = events.filter((e) => e['event.name'] === 'egress.completion');
    expect(decisions).toHaveLength(1200);
    expect(completions).toHaveLength(1200);
    expect(new Set(completions.map((e) => e['egress.id']))).toEqual(
      new Set(decisions.map((e) => e['egress.id'])),
    );
    // Both workers took connections.
    expect(new Set(decisions.map((e) => workerOf(e['egress.id']))).size).toBe(2);

    // One policy: one loaded and one reloaded event for the whole edge, and every decision written
    // after the reload event carries the new hash, whichever worker made it.
    const loaded = events.filter((e) => e['event.name'] === 'egress.policy.loaded');
    const reloaded = events.filter((e) => e['event.name'] === 'egress.policy.reloaded');
    expect(loaded).toHaveLength(1);
    expect(reloaded).toHaveLength(1);
    const at = events.indexOf(reloaded[0]!);
    const after = events.slice(at).filter((e) => e['event.name'] === 'egress.decision');
    const before = events.slice(0, at).filter((e) => e['event.name'] === 'egress.decision');
    expect(after).toHaveLength(600);
    expect(new Set(after.map((e) => e['egress.policy.hash']))).toEqual(
      new Set([reloaded[0]!['egress.policy.hash']]),
    );
    expect(new Set(after.map((e) => e['egress.rule']))).toEqual(new Set(['after']));
    expect(new Set(after.map((e) => workerOf(e['egress.id']))).size).toBe(2);
    expect(new Set(before.map((e) => e['egress.policy.hash']))).toEqual(
      new Set([loaded[0]!['egress.policy.hash']]),
    );
  });

  it('a change to the policy file (watched by the primary) reaches every worker', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const policyFile = await dir.write('egress.yaml', policyText('before'));
    const c = await startChild(policyFile, 2, true);
    await writeFile(policyFile, policyText('after'));
    const reloaded = await waitFor(
      () => c.events().find((e) => e['event.name'] === 'egress.policy.reloaded'),
      15_000,
      'the reload event',
    );
    expect(await tunnels(c.port, server.port, 200, 32)).toBe(200);
    const decisions = await decisionsWritten(c, 200);
    expect(decisions).toHaveLength(200);
    expect(new Set(decisions.map((e) => e['egress.rule']))).toEqual(new Set(['after']));
    expect(new Set(decisions.map((e) => e['egress.policy.hash']))).toEqual(
      new Set([reloaded['egress.policy.hash']]),
    );
    expect(new Set(decisions.map((e) => workerOf(e['egress.id']))).size).toBe(2);
  });

  it('every worker enforces the options the primary was given (proxy credentials): nothing dialled without them', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const policyFile = await dir.write('egress.yaml', policyText('local'));
    const secrets = await dir.write('proxy-auth.yaml', `services:\n  payments: ${'a1b2c3d4'.repeat(4)}\n`);
    const c = await startChild(policyFile, 2, false, secrets);
    const statuses = await Promise.all(
      Array.from({ length: 40 }, () =>
        connectTunnel(c.port, `127.0.0.1:${server!.port}`).then((t) => {
          t.socket.destroy();
          return t.status;
        }),
      ),
    );
    expect(new Set(statuses)).toEqual(new Set([407]));
    expect(server.connections).toBe(0);
    const decisions = await decisionsWritten(c, 40);
    expect(new Set(decisions.map((e) => e['egress.reason']))).toEqual(new Set(['proxy_auth_required']));
    expect(new Set(decisions.map((e) => workerOf(e['egress.id']))).size).toBe(2);
  });

  it('a worker that dies is replaced, and its death is an egress.worker.exited event', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const policyFile = await dir.write('egress.yaml', policyText('local'));
    const c = await startChild(policyFile, 2);
    const victim = c.pids[0]!;
    process.kill(victim, 'SIGKILL');
    const death = await waitFor(
      () => c.events().find((e) => e['event.name'] === 'egress.worker.exited'),
      15_000,
      'the worker exit event',
    );
    expect(death).toMatchObject({
      'process.pid': victim,
      'egress.worker.signal': 'SIGKILL',
      'egress.source': 'edge',
    });
    expect(egressEventSchema.safeParse((({ level, time, msg, ...e }) => e)(death)).success).toBe(true);
    // Replaced: two workers again (bounded wait), and the edge serves as before.
    let metrics = '';
    for (let i = 0; i < 200 && !/egress_edge_workers 2\n/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 200));
      metrics = await scrape(c.admin);
    }
    expect(metrics).toMatch(/egress_edge_workers 2\n/);
    expect(metrics).toMatch(/egress_edge_worker_exits_total 1\n/);
    expect(await tunnels(c.port, server.port, 50, 8)).toBe(50);
  });

  it('startEdge refuses workers > 1 rather than run one process', async () => {
    const error = await startEdge({
      policy: policyText('x'),
      workers: 2,
      listeners: [{ kind: 'explicit', port: 0 }],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeConfigError);
    expect((error as EdgeConfigError).problems).toEqual([
      expect.stringMatching(/^workers: .*startEdgeWorkers/),
    ]);
  });

  it('refuses options that cannot cross to a worker process, naming each', async () => {
    const error = await startEdgeWorkers({
      policy: '/nonexistent/egress.yaml',
      workers: 2,
      listeners: [
        { kind: 'transparent', port: 0, originalDestination: () => ({ address: '127.0.0.1', port: 1 }) },
      ],
      resolver: staticResolver({}),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeConfigError);
    expect((error as EdgeConfigError).problems).toEqual([
      expect.stringMatching(/^resolver: cannot be used with workers > 1/),
      expect.stringMatching(/^listeners\[0\]\.originalDestination: cannot be used with workers > 1/),
    ]);
  });
});
