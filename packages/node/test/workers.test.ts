/**
 * Worker threads, with the BUILT package in a child process. A worker is a new realm with its own,
 * unpatched net, fetch and undici; Node runs `--import` preloads only in workers started from a file, and
 * no preload at all in a worker whose caller set `execArgv` or (for `--import`) used `eval: true`. Every
 * worker started after the guard is installed must be guarded by the same policy, or not start: each kind
 * below fetches an allowed and a denied loopback server, and the denied server must accept no connection.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureBuilt, NODE_PACKAGE } from './fixtures/build.js';
import { type RecordingServer, runNode, startHttpServer } from './fixtures/harness.js';

const MAIN = fileURLToPath(new URL('./fixtures/workers/main.mjs', import.meta.url));

/** Every way of starting a worker the fixture knows (see fixtures/workers/main.mjs). */
const ALL_KINDS = ['eval', 'eval-execArgv', 'eval-env', 'share-env', 'file-esm', 'file-cjs', 'file-execArgv'];

let dir: string;
let policyFile: string;
let allowed: RecordingServer;
let denied: RecordingServer;

const policyDocument = (port: number) => ({
  version: 1,
  allow: [{ name: 'local-api', addresses: ['127.0.0.1/32'], schemes: ['http'], ports: [port] }],
});

interface Plan {
  kinds: string[];
  install?: Record<string, unknown>;
  sdk?: string;
}

async function run(preload: string[], plan: Plan, env: Record<string, string | undefined> = {}) {
  const child = await runNode(
    [
      ...preload,
      MAIN,
      JSON.stringify({ allowed: `${allowed.origin}/ok`, denied: `${denied.origin}/secret`, ...plan }),
    ],
    {
      cwd: NODE_PACKAGE,
      timeoutMs: 90_000,
      env: {
        NODE_OPTIONS: undefined,
        HTTP_PROXY: undefined,
        HTTPS_PROXY: undefined,
        EGRESS_GUARD_SERVICE: undefined,
        EGRESS_GUARD_POLICY: undefined,
        ...env,
      },
    },
  );
  const lines = child.stdout.split('\n');
  const result = lines.find((l) => l.startsWith('RESULT '));
  if (!result) throw new Error(`no RESULT (exit ${child.code}):\n${child.stdout}\n${child.stderr}`);
  const events = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
  const named = (name: string) => events.filter((e) => e['event.name'] === name);
  const workers = JSON.parse(result.slice('RESULT '.length)) as Array<Record<string, any>>;
  return { child, workers, named };
}

/** Each worker ran guarded: the allowed fetch worked, the denied one was refused, the env was put back. */
function expectGuarded(
  workers: Array<Record<string, any>>,
  kinds: string[],
  nodeOptions: string | null = null,
) {
  expect(workers.map((w) => w.kind)).toEqual(kinds);
  for (const w of workers) {
    expect(w, w.kind).toMatchObject({
      exitCode: 0,
      guarded: true,
      allowed: { status: 200 },
      denied: { code: 'EGRESS_ERR_DENIED', reason: 'port_not_allowed' },
      nodeOptions,
      configLeft: false,
    });
  }
}

/** One decision and one completion per request, from the workers' own guards. */
function expectEvents(named: (name: string) => Array<Record<string, any>>, workers: number) {
  const decisions = named('egress.decision').filter((e) => e['egress.hook'] === 'fetch');
  const byPort = (port: number) => decisions.filter((e) => e['server.port'] === port);
  expect(byPort(allowed.port).map((e) => e['egress.decision'])).toEqual(Array(workers).fill('allowed'));
  expect(byPort(denied.port).map((e) => e['egress.decision'])).toEqual(Array(workers).fill('denied'));
  const outcomes = named('egress.completion').map((e) => e['egress.outcome']);
  expect(outcomes.filter((o) => o === 'ok')).toHaveLength(workers);
  expect(outcomes.filter((o) => o === 'denied')).toHaveLength(workers);
}

beforeAll(async () => {
  ensureBuilt('policy', 'node');
  dir = await mkdtemp(join(tmpdir(), 'egress-guard-workers-'));
  allowed = await startHttpServer();
  denied = await startHttpServer();
  policyFile = join(dir, 'egress.yaml');
  await writeFile(policyFile, JSON.stringify(policyDocument(allowed.port)));
}, 120_000);

beforeEach(() => {
  allowed.reset();
  denied.reset();
});

afterAll(async () => {
  await Promise.all([allowed?.close(), denied?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each(['--import', '--require'])(
  'node %s @egress-guard/node/register: workers started after it',
  (flag) => {
    it('every kind of worker is guarded by the same policy; the denied server sees no connection', async () => {
      const { child, workers, named } = await run(
        [flag, '@egress-guard/node/register'],
        { kinds: ALL_KINDS },
        {
          EGRESS_GUARD_POLICY: policyFile,
        },
      );
      expect(child.stderr).toBe('');
      expect(child.code).toBe(0);
      expectGuarded(workers, ALL_KINDS);
      expect(denied.connections).toBe(0);
      expect(allowed.connections).toBe(ALL_KINDS.length);
      expectEvents(named, ALL_KINDS.length);
      // The main thread's guard, and one per worker (never two in one thread).
      expect(named('egress.policy.loaded')).toHaveLength(1 + ALL_KINDS.length);
    });
  },
);

describe('the preload in NODE_OPTIONS, next to a flag Node refuses in a worker (--title)', () => {
  it('workers are guarded, and see NODE_OPTIONS as the process had it', async () => {
    const nodeOptions = '--title=egress-guard-test --import @egress-guard/node/register';
    const kinds = ['eval', 'file-cjs'];
    const { child, workers } = await run(
      [],
      { kinds },
      { EGRESS_GUARD_POLICY: policyFile, NODE_OPTIONS: nodeOptions },
    );
    expect(child.code).toBe(0);
    expectGuarded(workers, kinds, nodeOptions);
    expect(denied.connections).toBe(0);
  });
});

describe('install() in code, with a policy given as an object', () => {
  it('workers get the same policy; one sharing the env (SHARE_ENV), which cannot carry it, is refused', async () => {
    const kinds = ['eval', 'file-esm', 'eval-env', 'share-env'];
    const { child, workers, named } = await run([], {
      kinds,
      install: { policyDocument: policyDocument(allowed.port) },
    });
    expect(child.code).toBe(0);
    expectGuarded(workers.slice(0, 3), kinds.slice(0, 3));
    expect(workers[3]).toEqual({
      kind: 'share-env',
      refused: {
        code: 'EGRESS_ERR_INVALID_OPTIONS',
        message: expect.stringContaining('cannot guard this worker thread: it shares this thread'),
      },
    });
    expect(denied.connections).toBe(0);
    expect(allowed.connections).toBe(3);
    expectEvents(named, 3);
  });
});

describe('a copy of the SDK without its preload (bundled into an application)', () => {
  it('fails closed: new Worker() throws, and the worker never runs', async () => {
    // The built CommonJS files, except register.cjs, where nothing resolves @egress-guard/node.
    const copy = join(dir, 'bundled');
    await mkdir(copy);
    const dist = join(NODE_PACKAGE, 'dist');
    for (const file of await readdir(dist))
      if (file.endsWith('.cjs') && file !== 'register.cjs')
        await copyFile(join(dist, file), join(copy, file));
    await symlink(join(NODE_PACKAGE, 'node_modules'), join(copy, 'node_modules'));
    const { child, workers } = await run([], {
      kinds: ['eval', 'file-cjs'],
      install: { policyFile },
      sdk: join(copy, 'index.cjs'),
    });
    expect(child.code).toBe(0);
    for (const w of workers) {
      expect(w.refused).toMatchObject({ code: 'EGRESS_ERR_INVALID_OPTIONS' });
      expect(w.refused.message).toContain('its preload (register.cjs) is not beside the SDK');
    }
    expect(allowed.connections + denied.connections).toBe(0);
  });
});
