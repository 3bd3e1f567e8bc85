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
  process.stderr.write(`egress-guard: not starting: ${(error as Error).message}\n`);
  process.exit(78);
}
