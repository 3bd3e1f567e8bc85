#!/usr/bin/env node
// Runs every test (vitest over packages/, test/ and examples/) and ends with one line computed from
// vitest's JSON results: `tests: N passed, N failed, N skipped`. CI reads that line, not vitest's summary.
//
// Two passes. The main run sets EGRESS_GUARD_EVENT_AUDIT_FILE so that every event emitter in every test
// (and child process) appends what it emits to one file. The second, small run is
// test/events-schema.test.ts alone, which validates every line of that file against the published event
// schema and fails, listing the offenders, if any does not match or if the suite emitted nothing.
//
// Optional third stage, the Node matrix: with EGRESS_GUARD_TEST_MATRIX=sdk (or the argument --matrix=sdk;
// .ci/run sets the variable) the SDK and policy suites (packages/node/test, packages/policy/test) run
// again under each Node version of scripts/lib/node-matrix.mjs (20.18.1, 22, 24, 26; the one equal to
// this machine's node is skipped, the main pass ran it), through the same helpers as `pnpm test:matrix`.
// Each version's passed/failed/skipped are added to the closing line; a version that cannot be installed
// or whose run writes no results counts as one failed test, a suite file that fails to load as one failed
// test, and a vitest that exits non-zero with no failed test as one failed test.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST, runVersion, SDK_SUITES, VERSIONS } from './lib/node-matrix.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = join(root, '.tmp');
const results = join(tmp, 'vitest-results.json');
// Per run: two runs in one checkout must not truncate or read each other's events.
const schemaResults = join(tmp, `vitest-events-schema-results-${process.pid}.json`);
const audit = join(tmp, `events-audit-${process.pid}.jsonl`);
const SCHEMA_TEST = 'test/events-schema.test.ts';

/** `--matrix[=sdk]` is ours, everything else goes to vitest's main run. */
const MATRIX_ARG = /^--matrix(=.*)?$/;
const matrixArg = process.argv.slice(2).findLast((a) => MATRIX_ARG.test(a));
const matrixMode = (
  matrixArg ? (matrixArg.split('=')[1] ?? 'sdk') : (process.env.EGRESS_GUARD_TEST_MATRIX ?? '')
).trim();
if (!['', '0', 'off', 'sdk'].includes(matrixMode)) {
  console.error(
    `test-all: unknown matrix mode "${matrixMode}" (EGRESS_GUARD_TEST_MATRIX / --matrix): use sdk`,
  );
  process.exit(2);
}
const mainArgs = process.argv.slice(2).filter((a) => !MATRIX_ARG.test(a));
mkdirSync(tmp, { recursive: true });
for (const f of [results, schemaResults]) rmSync(f, { force: true });
writeFileSync(audit, '');

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
function vitestRun(args, outputFile, env) {
  return spawnSync(
    process.execPath,
    [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${outputFile}`, ...args],
    { cwd: root, stdio: 'inherit', env },
  );
}

function counts(file, run) {
  let summary;
  try {
    summary = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    console.error(
      `no test results were written to ${file} (${error.message}); vitest exited with ${run.status}`,
    );
    return { passed: 0, failed: 1, skipped: 0, ok: false };
  }
  // A suite that fails to load counts as a failure even though it has no test results.
  const failedSuites = summary.testResults.filter(
    (f) => f.status === 'failed' && f.assertionResults.length === 0,
  ).length;
  const failed = summary.numFailedTests + failedSuites;
  return {
    passed: summary.numPassedTests,
    failed,
    skipped: summary.numPendingTests + summary.numTodoTests,
    ok: failed === 0 && summary.numPassedTests > 0 && run.status === 0,
  };
}

const main = vitestRun(['--exclude', SCHEMA_TEST, ...mainArgs], results, {
  ...process.env,
  EGRESS_GUARD_EVENT_AUDIT_FILE: audit,
});
const mainCounts = counts(results, main);

const { EGRESS_GUARD_EVENT_AUDIT_FILE: _unset, ...schemaEnv } = process.env;
const schema = vitestRun([SCHEMA_TEST], schemaResults, {
  ...schemaEnv,
  EGRESS_GUARD_EVENTS_TO_VALIDATE: audit,
});
const schemaCounts = counts(schemaResults, schema);

// The audit file holds every event of the suite (some 100 MB): kept only when the schema pass failed.
if (schemaCounts.ok) rmSync(audit, { force: true });
rmSync(schemaResults, { force: true });

/** The matrix stage: the SDK and policy suites under each other Node version, one after the other. */
function matrixRuns() {
  const outcomes = [];
  for (const version of VERSIONS.filter((v) => v !== HOST)) {
    const file = join(tmp, `matrix-${version}-${process.pid}.json`);
    let outcome;
    try {
      const run = runVersion(version, { vitestArgs: SDK_SUITES, results: file, env: schemaEnv });
      // A run that exits non-zero without a failed test (unhandled error, no test file matched) or that
      // passed nothing is one failure, so that the closing line never reads 0 failed for it.
      const extra = !run.ok && run.failed === 0 ? 1 : 0;
      outcome = { ...run, failed: run.failed + extra };
    } catch (error) {
      outcome = {
        ok: false,
        line: `node ${version}: not run (${error.message})`,
        passed: 0,
        failed: 1,
        skipped: 0,
      };
    }
    rmSync(file, { force: true });
    console.log(outcome.line);
    outcomes.push(outcome);
  }
  if (VERSIONS.includes(HOST)) console.log(`node ${HOST}: skipped in the matrix, the main pass ran on it`);
  return outcomes;
}

const stages = [mainCounts, schemaCounts];
if (matrixMode === 'sdk') {
  console.log(`\nmatrix: ${SDK_SUITES.join(' ')} on node ${VERSIONS.join(', ')}`);
  const matrix = matrixRuns();
  console.log(
    `\nmain pass (node ${HOST}): ${mainCounts.passed} passed, ${mainCounts.failed} failed, ${mainCounts.skipped} skipped`,
  );
  console.log(
    `events schema pass: ${schemaCounts.passed} passed, ${schemaCounts.failed} failed, ${schemaCounts.skipped} skipped`,
  );
  for (const outcome of matrix) console.log(`matrix ${outcome.line}`);
  stages.push(...matrix);
}

const passed = stages.reduce((n, s) => n + s.passed, 0);
const failed = stages.reduce((n, s) => n + s.failed, 0);
const skipped = stages.reduce((n, s) => n + s.skipped, 0);
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(stages.every((s) => s.ok) ? 0 : 1);
