#!/usr/bin/env node
// Runs every test (vitest over packages/, test/ and examples/) and ends with one line computed from
// vitest's JSON results: `tests: N passed, N failed, N skipped`. CI reads that line, not vitest's summary.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const results = join(root, '.tmp', 'vitest-results.json');
mkdirSync(dirname(results), { recursive: true });
rmSync(results, { force: true });

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(
  process.execPath,
  [
    vitest,
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${results}`,
    ...process.argv.slice(2),
  ],
  { cwd: root, stdio: 'inherit', env: process.env },
);

let summary;
try {
  summary = JSON.parse(readFileSync(results, 'utf8'));
} catch (error) {
  console.error(`no test results were written (${error.message}); vitest exited with ${run.status}`);
  console.log('tests: 0 passed, 1 failed');
  process.exit(1);
}
const passed = summary.numPassedTests;
// A suite that fails to load counts as a failure even though it has no test results.
const failedSuites = summary.testResults.filter(
  (f) => f.status === 'failed' && f.assertionResults.length === 0,
).length;
const failed = summary.numFailedTests + failedSuites;
const skipped = summary.numPendingTests + summary.numTodoTests;
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 || run.status !== 0 ? 1 : 0);
