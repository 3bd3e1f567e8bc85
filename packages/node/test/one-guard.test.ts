/**
 * One guard per process, with the BUILT package in a child process: the preload (`--import` or
 * `--require`) followed by the application's own `install()` from the ESM or the CommonJS build, and both
 * builds in one process, give one guard, which patches once: exactly one decision event and one
 * completion event per request, and one `egress.policy.loaded`. A second `install()` naming
 * another policy or service is refused (EgressOptionsError) and the first policy stays in force; one that
 * only differs in options that do not change what is allowed gets the installed guard and a warning.
 */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureBuilt, NODE_PACKAGE } from './fixtures/build.js';
import { type RecordingServer, runNode, startHttpServer } from './fixtures/harness.js';

const APPS = {
  esm: fileURLToPath(new URL('./fixtures/one-guard/app.mjs', import.meta.url)),
  cjs: fileURLToPath(new URL('./fixtures/one-guard/app.cjs', import.meta.url)),
};

let dir: string;
let policyFile: string;
let allowed: RecordingServer;
let denied: RecordingServer;

const policyFor = (...ports: number[]) => `version: 1
allow:
  - name: local-api
    addresses: [127.0.0.1/32]
    schemes: [http]
    ports: [${ports.join(', ')}]
services:
  billing:
    allow: []
`;

interface Plan {
  calls: Array<{ build: 'esm' | 'cjs'; options: Record<string, unknown> }>;
  uninstall?: 'esm' | 'cjs';
}

async function run(app: 'esm' | 'cjs', preload: '--import' | '--require' | undefined, plan: Plan) {
  const args = [
    ...(preload ? [preload, '@egress-guard/node/register'] : []),
    APPS[app],
    JSON.stringify({ allowed: `${allowed.origin}/ok`, denied: `${denied.origin}/secret`, ...plan }),
  ];
  const child = await runNode(args, {
    cwd: NODE_PACKAGE,
    timeoutMs: 60_000,
    env: {
      NODE_OPTIONS: undefined,
      HTTP_PROXY: undefined,
      HTTPS_PROXY: undefined,
      EGRESS_GUARD_SERVICE: undefined,
      EGRESS_GUARD_POLICY: preload ? policyFile : undefined,
    },
  });
  const lines = child.stdout.split('\n');
  const result = lines.find((l) => l.startsWith('RESULT '));
  if (!result) throw new Error(`no RESULT (exit ${child.code}):\n${child.stdout}\n${child.stderr}`);
  const events = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
  const named = (name: string) => events.filter((e) => e['event.name'] === name);
  return { child, result: JSON.parse(result.slice('RESULT '.length)), named };
}

beforeAll(async () => {
  ensureBuilt('policy', 'node');
  dir = await mkdtemp(join(tmpdir(), 'egress-guard-one-guard-'));
  allowed = await startHttpServer();
  denied = await startHttpServer();
  policyFile = join(dir, 'egress.yaml');
  await writeFile(policyFile, policyFor(allowed.port));
}, 120_000);

beforeEach(() => {
  allowed.reset();
  denied.reset();
});

afterAll(async () => {
  await Promise.all([allowed?.close(), denied?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One guard decided both requests, once each: the allowed one reached its server, the denied one did not. */
function expectDecidedOnce(outcome: Awaited<ReturnType<typeof run>>) {
  const { result, named } = outcome;
  expect(result.allowed).toEqual({ status: 200 });
  expect(result.denied).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'port_not_allowed' });
  expect(named('egress.policy.loaded')).toHaveLength(1);
  const decisions = named('egress.decision');
  expect(decisions.map((e) => [e['egress.hook'], e['egress.decision'], e['server.port']])).toEqual([
    ['fetch', 'allowed', allowed.port],
    ['fetch', 'denied', denied.port],
  ]);
  // One completion per request, tied to its decision by id (a denied request completes as denied).
  const completions = named('egress.completion');
  expect(completions.map((e) => [e['egress.id'], e['egress.outcome']])).toEqual([
    [decisions[0]?.['egress.id'], 'ok'],
    [decisions[1]?.['egress.id'], 'denied'],
  ]);
  expect(allowed.connections).toBe(1);
}

describe.each([
  ['--import', 'esm'],
  ['--import', 'cjs'],
  ['--require', 'esm'],
  ['--require', 'cjs'],
] as const)('node %s @egress-guard/node/register, then install() in a %s application', (preload, app) => {
  it('install() returns the guard the preload installed: one decision and one completion per request', async () => {
    const outcome = await run(app, preload, { calls: [{ build: app, options: { policyFile } }] });
    expect(outcome.child.stderr).toBe('');
    expect(outcome.child.code).toBe(0);
    expect(outcome.result.calls).toEqual([{ ok: true }]);
    expect(outcome.result.oneGuard).toBe(true);
    expect(outcome.result.warnings).toEqual([]);
    expectDecidedOnce(outcome);
    expect(denied.connections).toBe(0);
    // The ESM preload and an ESM application share the built modules, so the classes are the same too.
    if (preload === '--import' && app === 'esm') expect(outcome.result.instanceOfEsm).toBe(true);
    if (preload === '--require' && app === 'cjs') expect(outcome.result.instanceOfCjs).toBe(true);
  });
});

describe('the ESM and the CommonJS builds in one process, no preload', () => {
  it('install() from each gives one guard; uninstall() from either restores everything', async () => {
    const options = { policyFile };
    const outcome = await run('esm', undefined, {
      calls: [
        { build: 'esm', options },
        { build: 'cjs', options },
      ],
      uninstall: 'cjs',
    });
    expect(outcome.child.code).toBe(0);
    expect(outcome.result.twoBuilds).toBe(true);
    expect(outcome.result.calls).toEqual([{ ok: true }, { ok: true }]);
    expect(outcome.result.oneGuard).toBe(true);
    expectDecidedOnce(outcome);
    // uninstall() from the CommonJS build took down the guard the ESM build installed: unguarded again.
    expect(outcome.result.uninstalled).toBe(true);
    expect(outcome.result.afterUninstall).toEqual({ status: 200 });
    expect(denied.connections).toBe(1);
  });
});

describe('install() asking for something other than the installed guard', () => {
  it('another policy file or another service is refused; the preloaded policy stays in force', async () => {
    // The other policy would let the denied request through: it must not be in force, not even in part.
    const other = join(dir, 'other.yaml');
    await writeFile(other, policyFor(allowed.port, denied.port));
    const outcome = await run('esm', '--import', {
      calls: [
        { build: 'esm', options: { policyFile: other } },
        { build: 'cjs', options: { service: 'billing' } },
      ],
    });
    expect(outcome.child.code).toBe(0);
    const [byFile, byService] = outcome.result.calls;
    expect(byFile).toMatchObject({ ok: false, code: 'EGRESS_ERR_INVALID_OPTIONS', egressError: true });
    expect(byFile.message).toContain(`already installed in this process by the preload`);
    expect(byFile.message).toContain(`policy file ${other} instead of policy file ${policyFile}`);
    expect(byService).toMatchObject({ ok: false, code: 'EGRESS_ERR_INVALID_OPTIONS' });
    expect(byService.message).toContain('service "billing" instead of none');
    expectDecidedOnce(outcome);
    expect(denied.connections).toBe(0);
  });

  it('the same policy by another path and a non-policy option: the installed guard, and a warning', async () => {
    const link = join(dir, 'link.yaml');
    await symlink(policyFile, link);
    const outcome = await run('cjs', '--require', {
      calls: [{ build: 'cjs', options: { policyFile: link, logQueryStrings: true } }],
    });
    expect(outcome.child.code).toBe(0);
    expect(outcome.result.calls).toEqual([{ ok: true }]);
    expect(outcome.result.oneGuard).toBe(true);
    expect(outcome.result.warnings).toEqual([
      {
        code: 'EGRESS_GUARD_OPTIONS_IGNORED',
        message: expect.stringMatching(
          /returns that guard and ignores the options it was given: logQueryStrings$/,
        ),
      },
    ]);
    expectDecidedOnce(outcome);
    expect(denied.connections).toBe(0);
  });
});
