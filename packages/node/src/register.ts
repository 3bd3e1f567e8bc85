/**
 * Preload entry: `node --import @egress-guard/node/register app.js` (ESM) or
 * `node --require @egress-guard/node/register app.js` (CommonJS), with `EGRESS_GUARD_POLICY=./egress.yaml`
 * and optionally `EGRESS_GUARD_SERVICE=payments`. Fails closed: with no policy, or an invalid one, the
 * process does not start (it would otherwise run unguarded).
 */
import { install } from './install.js';

try {
  install();
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
