// pnpm bench: every figure side by side in one run, as ratios against baselines. `--quick` keeps the
// harness working in CI (fewer iterations, no thresholds asserted).
import os from 'node:os';
import { runDeciderBench } from './decider.mjs';

const quick = process.argv.includes('--quick');
const cpus = os.cpus();
console.log(
  `machine: ${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${quick ? ' (quick)' : ''}`,
);

const d = runDeciderBench({ quick });
console.log('\n## decider (one decision: exact, wildcard and CIDR rules mixed)');
console.log(`  10 rules      median ${d.smallNs.toFixed(0)} ns`);
console.log(
  `  10,000 rules  median ${d.largeNs.toFixed(0)} ns   ratio x${d.ratio.toFixed(2)}   target: < 1000 ns and flat`,
);
