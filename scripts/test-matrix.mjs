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
// from vitest's JSON report (.tmp/matrix-<version>.json), not from its console output. The installing and
// running lives in scripts/lib/node-matrix.mjs, shared with the matrix stage of `pnpm test`
// (scripts/test-all.mjs with EGRESS_GUARD_TEST_MATRIX=sdk, as .ci/run runs it).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HOST, root, runVersion, VERSIONS, vitest } from './lib/node-matrix.mjs';

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

const { versions, vitestArgs, verbose } = parseArgs(process.argv.slice(2));
mkdirSync(join(root, '.tmp'), { recursive: true });
if (!existsSync(vitest)) usage(`${vitest} is missing; run pnpm install first`);

const lines = [];
let allOk = true;
for (const version of versions) {
  let outcome;
  try {
    outcome = runVersion(version, { vitestArgs, verbose });
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
