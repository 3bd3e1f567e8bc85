// Running vitest under other Node versions: shared by `pnpm test:matrix` (scripts/test-matrix.mjs) and the
// matrix stage of `pnpm test` (scripts/test-all.mjs, EGRESS_GUARD_TEST_MATRIX=sdk, which .ci/run sets).
//
// Each version's binary comes from the `node-<platform>-<arch>` npm package (the real executable that
// the `node` package wraps), installed once into .node-matrix/<version> (git-ignored). Results are read
// from vitest's JSON report, not from its console output.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Versions tested besides this machine's own node. */
export const VERSIONS = ['20.18.1', '22.23.3', '24.21.0', '26.10.0'];

/** The suites the matrix stage of `pnpm test` runs on every version (vitest path filters). */
export const SDK_SUITES = ['packages/node/test', 'packages/policy/test'];

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HOST = process.versions.node;
// vitest's exports map hides vitest.mjs from require.resolve, so use the file path directly.
export const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');

/** Installs node-<platform>-<arch>@version unless present; returns the binary path. */
export function ensureBinary(version) {
  if (version === 'current') return process.execPath;
  // The version ends up in a path and an npm spec: accept exact versions only.
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not an exact version: ${version}`);
  const pkg = `node-${process.platform}-${process.arch}`;
  const prefix = join(root, '.node-matrix', version);
  const binary = join(prefix, 'node_modules', pkg, 'bin', 'node');
  if (existsSync(binary)) return binary;
  console.log(`installing ${pkg}@${version} into .node-matrix/${version}`);
  const npm = spawnSync(
    'npm',
    [
      'install',
      '--prefix',
      prefix,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      `${pkg}@${version}`,
    ],
    { cwd: root, stdio: 'inherit' },
  );
  if (npm.error) throw new Error(`could not run npm: ${npm.error.message}`);
  if (npm.status !== 0) throw new Error(`npm install ${pkg}@${version} exited with ${npm.status}`);
  if (!existsSync(binary)) throw new Error(`${pkg}@${version} installed but ${binary} is missing`);
  return binary;
}

export function describeBinary(binary) {
  const probe = spawnSync(
    binary,
    ['-p', 'JSON.stringify([process.versions.node, process.versions.undici ?? null])'],
    {
      encoding: 'utf8',
    },
  );
  if (probe.status !== 0) throw new Error(`${binary} does not run: ${probe.stderr || probe.error?.message}`);
  const [node, undici] = JSON.parse(probe.stdout);
  return { node, undici };
}

/** Counts and failure lines from a vitest JSON report; a missing or unreadable report is one failure. */
export function summarise(resultsPath, exitStatus) {
  let report;
  try {
    report = JSON.parse(readFileSync(resultsPath, 'utf8'));
  } catch (error) {
    return {
      passed: 0,
      failed: 1,
      skipped: 0,
      failures: [`no JSON results (${error.message}); vitest exited with ${exitStatus}`],
    };
  }
  const failures = [];
  let failedSuites = 0;
  for (const file of report.testResults ?? []) {
    const rel = file.name?.startsWith(root) ? file.name.slice(root.length + 1) : file.name;
    // A file that fails to load has no test results but is still a failure.
    if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) {
      failedSuites++;
      failures.push(`${rel}: ${String(file.message ?? 'suite failed').split('\n')[0]}`);
    }
    for (const test of file.assertionResults ?? []) {
      if (test.status === 'failed') {
        failures.push(`${rel} > ${test.fullName}: ${String(test.failureMessages?.[0] ?? '').split('\n')[0]}`);
      }
    }
  }
  return {
    passed: report.numPassedTests ?? 0,
    failed: (report.numFailedTests ?? 0) + failedSuites,
    skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0),
    failures,
  };
}

/**
 * Runs vitest (`vitestArgs`) under one Node version (`current` = this machine's node) and returns
 * `{ ok, line, passed, failed, skipped }` from its JSON report, written to `results` (default
 * .tmp/matrix-<version>.json). Throws when the binary cannot be installed or does not run.
 */
export function runVersion(version, { vitestArgs = [], verbose = false, results, env = process.env } = {}) {
  const label = version === 'current' ? `${HOST} (this machine)` : version;
  const binary = ensureBinary(version);
  const { node, undici } = describeBinary(binary);
  if (version !== 'current' && node !== version)
    throw new Error(`${binary} reports ${node}, expected ${version}`);
  console.log(`\n== node ${label}: ${binary}\n   process.versions.undici = ${undici}`);

  const resultsPath = results ?? join(root, '.tmp', `matrix-${node}.json`);
  rmSync(resultsPath, { force: true });
  const reporters = verbose ? ['--reporter=default', '--reporter=json'] : ['--reporter=json'];
  const started = Date.now();
  const run = spawnSync(
    binary,
    [vitest, 'run', ...reporters, `--outputFile.json=${resultsPath}`, ...vitestArgs],
    {
      cwd: root,
      // The version's directory first on PATH so `node` in scripts resolves to it; tests that spawn
      // process.execPath get the same binary anyway.
      env: { ...env, PATH: `${dirname(binary)}${delimiter}${env.PATH ?? ''}` },
      stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (run.error) throw new Error(`could not start vitest: ${run.error.message}`);
  const seconds = Math.round((Date.now() - started) / 1000);
  const summary = summarise(resultsPath, run.status);
  // When vitest fails without a failing test (no files matched, crash on start-up), its own output is
  // the only clue.
  if (!verbose && run.status !== 0 && summary.failures.length === 0) {
    process.stderr.write(`${run.stdout ?? ''}${run.stderr ?? ''}`.slice(-4000));
  }
  for (const failure of summary.failures.slice(0, 30)) console.log(`   FAIL ${failure}`);
  if (summary.failures.length > 30) console.log(`   ... and ${summary.failures.length - 30} more`);
  const ok = summary.failed === 0 && summary.passed > 0 && run.status === 0;
  const line = `node ${label}: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`;
  return {
    ok,
    line: `${run.status !== 0 && summary.failed === 0 ? `${line} (vitest exited ${run.status})` : line} in ${seconds}s`,
    passed: summary.passed,
    failed: summary.failed,
    skipped: summary.skipped,
    exitStatus: run.status,
  };
}
