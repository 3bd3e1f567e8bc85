/**
 * The preload entry of the BUILT package: `node --import @egress-guard/node/register app.mjs` and
 * `node --require @egress-guard/node/register app.cjs`, configured by EGRESS_GUARD_POLICY and
 * EGRESS_GUARD_SERVICE only. The child runs from packages/node, where `@egress-guard/node` resolves to
 * the package itself through its exports map. A bad policy stops the process (exit 78, one line).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureBuilt, NODE_PACKAGE } from './fixtures/build.js';
import { startChildProxy } from './fixtures/child-proxy.js';
import { NODE_MAJOR, type RecordingServer, runNode, startHttpServer } from './fixtures/harness.js';

const APP_ESM = fileURLToPath(new URL('./fixtures/preload/app.mjs', import.meta.url));
const APP_CJS = fileURLToPath(new URL('./fixtures/preload/app.cjs', import.meta.url));

let dir: string;
let allowed: RecordingServer;
let denied: RecordingServer;

const policyFor = (port: number, extra = '') => `version: 1
allow:
  - name: local-api
    addresses: [127.0.0.1/32]
    schemes: [http]
    ports: [${port}]
${extra}`;

async function writePolicy(text: string, name = 'egress.yaml'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

function run(flag: '--import' | '--require', app: string, env: Record<string, string | undefined>) {
  return runNode(
    [flag, '@egress-guard/node/register', app, `${allowed.origin}/hello`, `${denied.origin}/secret`],
    {
      cwd: NODE_PACKAGE,
      env: {
        NODE_OPTIONS: undefined,
        HTTP_PROXY: undefined,
        HTTPS_PROXY: undefined,
        EGRESS_GUARD_SERVICE: undefined,
        ...env,
      },
    },
  );
}

function resultOf(stdout: string): Record<string, any> {
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT line in:\n${stdout}`);
  return JSON.parse(line.slice('RESULT '.length));
}

function eventsOf(stdout: string): Array<Record<string, any>> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

beforeAll(async () => {
  ensureBuilt('policy', 'node');
  dir = await mkdtemp(join(tmpdir(), 'egress-guard-preload-'));
  allowed = await startHttpServer();
  denied = await startHttpServer();
}, 120_000);

beforeEach(() => {
  allowed.reset();
  denied.reset();
});

afterAll(async () => {
  await Promise.all([allowed?.close(), denied?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each([
  ['--import', APP_ESM],
  ['--require', APP_CJS],
] as const)('node %s @egress-guard/node/register', (flag, app) => {
  it('guards the application: the allowed call works, the denied one never reaches its server', async () => {
    const policy = await writePolicy(policyFor(allowed.port));
    const child = await run(flag, app, { EGRESS_GUARD_POLICY: policy });
    expect(child.stderr).toBe('');
    expect(child.code).toBe(0);
    const result = resultOf(child.stdout);
    expect(result.allowed).toEqual({ status: 200, body: JSON.stringify({ ok: true, path: '/hello' }) });
    expect(result.denied).toEqual({
      error: 'fetch failed',
      code: 'EGRESS_ERR_DENIED',
      reason: 'port_not_allowed',
      host: '127.0.0.1',
      port: denied.port,
    });
    if (flag === '--import')
      expect(result.net).toEqual({ code: 'EGRESS_ERR_DENIED', reason: 'scheme_not_allowed' });
    expect(allowed.connections).toBe(1);
    expect(denied.connections).toBe(0);
    // Events are JSON lines on stdout (no transport started), the first one the policy it loaded.
    const events = eventsOf(child.stdout);
    expect(events[0]).toMatchObject({ 'event.name': 'egress.policy.loaded', 'egress.policy.file': policy });
    expect(
      events.filter((e) => e['event.name'] === 'egress.decision').map((e) => e['egress.decision']),
    ).toEqual(flag === '--import' ? ['allowed', 'denied', 'denied'] : ['allowed', 'denied']);
  });

  it('an invalid policy: the process does not start (exit 78, one line on stderr)', async () => {
    const policy = await writePolicy(
      'version: 1\nallow:\n  - name: api\n    hosts: [api.example.com]\n    prots: [443]\n',
      'bad.yaml',
    );
    const child = await run(flag, app, { EGRESS_GUARD_POLICY: policy });
    expect(child.code).toBe(78);
    expect(child.stdout).not.toContain('RESULT');
    const lines = child.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^egress-guard: not starting: invalid egress policy .*bad\.yaml: 1 problem; .*bad\.yaml:5:5 .*prots/,
    );
    expect(allowed.connections + denied.connections).toBe(0);
  });

  it('no policy at all: the process does not start', async () => {
    const child = await run(flag, app, { EGRESS_GUARD_POLICY: undefined });
    expect(child.code).toBe(78);
    expect(child.stderr).toMatch(/^egress-guard: not starting: no policy: .*EGRESS_GUARD_POLICY/);
    expect(child.stdout).not.toContain('RESULT');
  });

  it('a missing policy file: the process does not start', async () => {
    const child = await run(flag, app, { EGRESS_GUARD_POLICY: join(dir, 'missing.yaml') });
    expect(child.code).toBe(78);
    expect(child.stderr).toContain('file not found');
  });
});

describe('EGRESS_GUARD_SERVICE', () => {
  it("applies the service's section and names the service in every event", async () => {
    const policy = await writePolicy(`version: 1
services:
  payments:
    allow:
      - name: local-api
        addresses: [127.0.0.1/32]
        schemes: [http]
        ports: [${allowed.port}]
`);
    const child = await run('--import', APP_ESM, {
      EGRESS_GUARD_POLICY: policy,
      EGRESS_GUARD_SERVICE: 'payments',
    });
    expect(child.code).toBe(0);
    expect(resultOf(child.stdout).allowed.status).toBe(200);
    const decisions = eventsOf(child.stdout).filter((e) => e['event.name'] === 'egress.decision');
    expect(decisions.every((e) => e['service.name'] === 'payments')).toBe(true);
  });

  it('a service the policy does not have: the process does not start', async () => {
    const policy = await writePolicy(policyFor(allowed.port));
    const child = await run('--require', APP_CJS, {
      EGRESS_GUARD_POLICY: policy,
      EGRESS_GUARD_SERVICE: 'billing',
    });
    expect(child.code).toBe(78);
    expect(child.stderr).toMatch(/^egress-guard: not starting: service "billing" is not in the policy/);
  });
});

// Node 22.21+, 24 and 26 honour HTTP(S)_PROXY in fetch when started with NODE_USE_ENV_PROXY=1; Node 20
// ignores the variable and connects directly. The guard keeps whichever behaviour Node has.
const honoursEnvProxy = NODE_MAJOR >= 22;
describe('NODE_USE_ENV_PROXY=1', () => {
  it(`fetch ${honoursEnvProxy ? 'keeps going through HTTP_PROXY: the target is decided, the proxy must be allowed' : 'connects directly, as Node 20 does, and is decided'}`, async () => {
    const proxy = await startChildProxy();
    try {
      const policy = await writePolicy(
        policyFor(
          allowed.port,
          `  - name: corporate-proxy
    addresses: [127.0.0.1/32]
    schemes: [http]
    ports: [${proxy.port}]
`,
        ),
      );
      const child = await run('--import', APP_ESM, {
        EGRESS_GUARD_POLICY: policy,
        NODE_USE_ENV_PROXY: '1',
        HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
        NO_PROXY: undefined,
      });
      expect(child.code).toBe(0);
      const result = resultOf(child.stdout);
      expect(result.allowed.status).toBe(200);
      expect(result.denied).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'port_not_allowed' });
      await proxy.sync();
      expect(proxy.targets).toEqual(
        honoursEnvProxy ? [{ method: 'CONNECT', target: `127.0.0.1:${allowed.port}` }] : [],
      );
      expect(allowed.connections).toBe(1);
      expect(denied.connections).toBe(0);
      const hooks = eventsOf(child.stdout)
        .filter((e) => e['event.name'] === 'egress.decision')
        .map((e) => e['egress.hook']);
      expect(hooks[0]).toBe('fetch');
      expect(hooks.includes('undici.proxy')).toBe(honoursEnvProxy);
    } finally {
      await proxy.close();
    }
  });
});
