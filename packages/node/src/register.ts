/**
 * Preload entry: `node --import @egress-guard/node/register app.js` (ESM) or
 * `node --require @egress-guard/node/register app.js` (CommonJS), with `EGRESS_GUARD_POLICY=./egress.yaml`
 * and optionally `EGRESS_GUARD_SERVICE=payments`. Fails closed: with no policy, or an invalid one, the
 * process does not start (it would otherwise run unguarded).
 *
 * Also the preload of every worker thread a guarded thread starts (see process/worker-threads.ts): such a
 * worker carries its parent's settings, installs the same guard before its code runs, and, should that
 * fail, ends before its code runs (a worker's `process.exit` ends the worker, not the process).
 */
import { isMainThread } from 'node:worker_threads';
import { createPolicy } from '@egress-guard/policy';
import { installAs } from './install.js';
import { takeWorkerConfig, workerInstallOptions } from './process/worker-config.js';

function installFromPreload(): void {
  // Read off the main thread only: a process's own env never configures its main thread this way.
  const config = isMainThread ? undefined : takeWorkerConfig();
  if (config) installAs('worker', workerInstallOptions(config, createPolicy));
  else installAs('preload', {});
}

try {
  installFromPreload();
} catch (error) {
  // One line (a policy error lists its problems on several): log collectors keep it whole.
  const message = String((error as Error).message ?? error)
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join('; ');
  process.stderr.write(`egress-guard: not starting: ${message}\n`);
  process.exit(78);
}
