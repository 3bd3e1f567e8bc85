import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../../../test/support/index.js';
import type { ExportTarget } from '../../src/export/core/index.js';
import { haproxyTarget } from '../../src/export/haproxy/haproxy-target.js';
import { nginxTarget } from '../../src/export/nginx/nginx-target.js';
import { squidTarget } from '../../src/export/squid/squid-target.js';
import { type CheckResult, engineDir, haproxyCheck, nginxCheck, squidCheck } from './engine-run.js';
import { type ExportOptions, expectGolden, exportFile, goldenPolicy } from './golden-file.js';

/*
 * Golden files for nginx, HAProxy and Squid, named for what they show, and the same exports passed through
 * each engine's own configuration check (nginx -t, haproxy -c, squid -k parse).
 */

const CASES: { name: string; policy: string; options: ExportOptions }[] = [
  {
    name: 'wildcards-carve-outs-and-http',
    policy: goldenPolicy('policies', 'wildcards-carve-outs-and-http.policy.yaml'),
    options: { allowWeaker: ['tls-floor', 'private-addresses'] },
  },
  {
    name: 'service-payments-only',
    policy: goldenPolicy('policies', 'service-payments.policy.yaml'),
    options: {
      service: 'payments',
      allowWeaker: ['tls-floor', 'private-addresses', 'services', 'methods', 'paths'],
    },
  },
];

const TARGETS: { target: ExportTarget; ext: string }[] = [
  { target: nginxTarget, ext: 'conf' },
  { target: haproxyTarget, ext: 'cfg' },
  { target: squidTarget, ext: 'conf' },
];

/** The engine's own check of a configuration file. */
function engineCheck(target: ExportTarget, conf: string, dir: string): Promise<CheckResult> {
  if (target === nginxTarget) return nginxCheck(conf, dir);
  if (target === haproxyTarget) return haproxyCheck(conf);
  return squidCheck(conf);
}

describe.each(TARGETS)('$target.name export', ({ target, ext }) => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterAll(async () => {
    await pki?.cleanup();
  });

  it.each(CASES)('matches golden/$name', async ({ name, policy, options }) => {
    const text = await exportFile(target, policy, options);
    expectGolden(target.name, `${name}.${ext}`, text);
    // Deterministic: the same policy gives the same bytes.
    expect(await exportFile(target, policy, options)).toBe(text);
  });

  it.each(CASES)('$name passes the engine check', async ({ policy, options }) => {
    const { dir, cleanup } = engineDir(`${target.name}-check`);
    try {
      const text = await exportFile(target, policy, { ...options, render: { runtimeDir: dir } });
      const conf = path.join(dir, `exported.${ext}`);
      writeFileSync(conf, text);
      if (target === squidTarget) {
        const cert = await pki.issue(['egress-guard-never-bump']);
        writeFileSync(path.join(dir, 'squid-never-bump.pem'), `${cert.certPem}${cert.keyPem}`);
      }
      const result = await engineCheck(target, conf, dir);
      expect(result.ok, result.output).toBe(true);
    } finally {
      cleanup();
    }
  });

  it('a deliberately broken file fails the engine check (the check is not vacuous)', async () => {
    const { dir, cleanup } = engineDir(`${target.name}-broken`);
    try {
      const conf = path.join(dir, `broken.${ext}`);
      writeFileSync(conf, 'this is not a configuration {\n');
      expect((await engineCheck(target, conf, dir)).ok).toBe(false);
    } finally {
      cleanup();
    }
  });
});
