#!/usr/bin/env node
// Runs every test (vitest over packages/, test/ and examples/) and ends with one line computed from
// vitest's JSON results: `tests: N passed, N failed, N skipped`. CI reads that line, not vitest's summary.
//
// Two passes. The main run sets EGRESS_GUARD_EVENT_AUDIT_FILE so that every event emitter in every test
// (and child process) appends what it emits to one file. The second, small run is
// test/events-schema.test.ts alone, which validates every line of that file against the published event
// schema and fails, listing the offenders, if any does not match or if the suite emitted nothing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = join(root, '.tmp');
const results = join(tmp, 'vitest-results.json');
// Per run: two runs in one checkout must not truncate or read each other's events.
const schemaResults = join(tmp, `vitest-events-schema-results-${process.pid}.json`);
const audit = join(tmp, `events-audit-${process.pid}.jsonl`);
const SCHEMA_TEST = 'test/events-schema.test.ts';
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

const main = vitestRun(['--exclude', SCHEMA_TEST, ...process.argv.slice(2)], results, {
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

const passed = mainCounts.passed + schemaCounts.passed;
const failed = mainCounts.failed + schemaCounts.failed;
const skipped = mainCounts.skipped + schemaCounts.skipped;
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(mainCounts.ok && schemaCounts.ok ? 0 : 1);
