/**
 * The README's first quick-start command runs this demo (`pnpm demo`): it must keep working, and keep
 * showing what it claims. Runs the demo as the user would (built packages, its own process) and checks the
 * blocks by what the demo's servers saw, as it reports them.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const demo = fileURLToPath(new URL('./run.mjs', import.meta.url));

it('runs the whole product on loopback: allowed and denied calls, the edge, the audit trail', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [demo], {
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  expect(stdout).toMatch(/DENIED\s+https:\/\/pastebin\.demo\.test/);
  expect(stdout).toMatch(/EGRESS_ERR_DENIED \(method_not_allowed\)/);
  expect(stdout).toMatch(/payments API \d+ connection\(s\), paste site 0 \(denied calls never connect\)/);
  expect(stdout).toMatch(/a paste site: refused by the edge/);
  expect(stdout).toMatch(/what the paste site saw through the edge: 0 connection\(s\)/);
  expect(stdout).toMatch(/Done\./);
}, 150_000);
