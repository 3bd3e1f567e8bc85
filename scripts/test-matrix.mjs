#!/usr/bin/env node
// `pnpm test:matrix`: runs the vitest suite once per Node version, because Node's bundled fetch/undici
// differs between majors (20 → 6.x, 22 → 6.x, 24 → 7.x, 26 → 8.x) and the SDK hooks into it.
//
// Usage:
//   node scripts/test-matrix.mjs                              all versions below plus this machine's node
//   node scripts/test-matrix.mjs --versions 22.23.3,24.21.0   only these (`current` = this machine's node)
//   node scripts/test-matrix.mjs -- test/support              arguments after `--` go to vitest
//   node scripts/test-matrix.mjs --verbose                    also show vitest's own report
//
// Each version's binary comes from the `node-<platform>-<arch>` npm package (the real executable that
// the `node` package wraps), installed once into .node-matrix/<version> (git-ignored). Results are read
// from vitest's JSON report (.tmp/matrix-<version>.json), not from its console output.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Versions tested besides this machine's own node. */
const VERSIONS = ['20.18.1', '22.23.3', '24.21.0', '26.10.0'];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOST = process.versions.node;

function usage(message) {
  if (message) console.error(`test-matrix: ${message}`);
  console.error(
    'usage: node scripts/test-matrix.mjs [--versions 22.23.3,current] [--verbose] [-- vitest args]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const dash = argv.indexOf('--');
  const own = dash === -1 ? argv : argv.slice(0, dash);
  const vitestArgs = dash === -1 ? [] : argv.slice(dash + 1);
  let versions;
  let verbose = false;
  for (let i = 0; i < own.length; i++) {
    const arg = own[i];
    if (arg === '--versions') {
      versions = own[++i];
      if (!versions) usage('--versions needs a comma-separated list');
    } else if (arg.startsWith('--versions=')) {
      versions = arg.slice('--versions='.length);
    } else if (arg === '--verbose') {
      verbose = true;
    } else if (arg === '--help' || arg === '-h') {
      usage();
    } else {
      usage(`unknown argument ${arg} (vitest arguments go after --)`);
    }
  }
  const list = versions
    ? versions
        .split(',')
        .map((v) => v.trim().replace(/^v/, ''))
        .filter(Boolean)
    : [...VERSIONS, 'current'];
  for (const v of list) {
    // The version ends up in a path and an npm spec: accept exact versions only.
    if (v !== 'current' && !/^\d+\.\d+\.\d+$/.test(v)) usage(`not an exact version: ${v}`);
  }
  // The machine's node is tested once even when its version is also in the list.
  const unique = [...new Set(list.map((v) => (v === HOST ? 'current' : v)))];
  return { versions: unique, vitestArgs, verbose };
}

/** Installs node-<platform>-<arch>@version unless present; returns the binary path. */
function ensureBinary(version) {
  if (version === 'current') return process.execPath;
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

function describeBinary(binary) {
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

function summarise(resultsPath, exitStatus) {
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

function runVersion(version, vitestArgs, verbose, vitest) {
  const label = version === 'current' ? `${HOST} (this machine)` : version;
  const binary = ensureBinary(version);
  const { node, undici } = describeBinary(binary);
  if (version !== 'current' && node !== version)
    throw new Error(`${binary} reports ${node}, expected ${version}`);
  console.log(`\n== node ${label}: ${binary}\n   process.versions.undici = ${undici}`);

  const results = join(root, '.tmp', `matrix-${node}.json`);
  rmSync(results, { force: true });
  const reporters = verbose ? ['--reporter=default', '--reporter=json'] : ['--reporter=json'];
  const run = spawnSync(
    binary,
    [vitest, 'run', ...reporters, `--outputFile.json=${results}`, ...vitestArgs],
    {
      cwd: root,
      // The version's directory first on PATH so `node` in scripts resolves to it; tests that spawn
      // process.execPath get the same binary anyway.
      env: { ...process.env, PATH: `${dirname(binary)}${delimiter}${process.env.PATH ?? ''}` },
      stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (run.error) throw new Error(`could not start vitest: ${run.error.message}`);
  const summary = summarise(results, run.status);
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
    line: run.status !== 0 && summary.failed === 0 ? `${line} (vitest exited ${run.status})` : line,
  };
}

const { versions, vitestArgs, verbose } = parseArgs(process.argv.slice(2));
mkdirSync(join(root, '.tmp'), { recursive: true });
// vitest's exports map hides vitest.mjs from require.resolve, so use the file path directly.
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
if (!existsSync(vitest)) usage(`${vitest} is missing; run pnpm install first`);

const lines = [];
let allOk = true;
for (const version of versions) {
  let outcome;
  try {
    outcome = runVersion(version, vitestArgs, verbose, vitest);
  } catch (error) {
    outcome = { ok: false, line: `node ${version}: not run (${error.message})` };
  }
  console.log(outcome.line);
  lines.push(outcome.line);
  allOk &&= outcome.ok;
}

console.log('\nmatrix:');
for (const line of lines) console.log(`  ${line}`);
process.exit(allOk ? 0 : 1);
