import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadPolicyFile, type Policy, parsePolicy } from '@egress-guard/policy';
import { expect } from 'vitest';
import {
  buildExportPlan,
  type ExportTarget,
  parseAllowWeaker,
  type RenderOptions,
} from '../../src/export/core/index.js';

const GOLDEN = path.join(import.meta.dirname, 'golden');

/**
 * Compares an export with its golden file, `golden/<target>/<name>`. `UPDATE_GOLDEN=1` rewrites the file
 * instead (then review the diff: the golden files are the reviewed output).
 */
export function expectGolden(target: string, name: string, text: string): void {
  const file = path.join(GOLDEN, target, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    return;
  }
  if (!existsSync(file)) throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 and review it`);
  expect(text).toBe(readFileSync(file, 'utf8'));
}

/** The path of a policy kept beside a target's golden files. */
export function goldenPolicy(target: string, name: string): string {
  return path.join(GOLDEN, target, name);
}

export interface ExportOptions {
  service?: string;
  allowWeaker?: string[];
  render?: Partial<RenderOptions>;
}

/** Loads a policy file, plans it for a target and renders it, as `egress-guard export` does. */
export async function exportFile(
  target: ExportTarget,
  policyFile: string,
  options: ExportOptions = {},
): Promise<string> {
  return renderPolicy(target, await loadPolicyFile(policyFile), path.basename(policyFile), options);
}

/** The same for a policy written inline in a test. */
export function exportText(target: ExportTarget, policyText: string, options: ExportOptions = {}): string {
  return renderPolicy(target, parsePolicy(policyText), 'inline.yaml', options);
}

function renderPolicy(
  target: ExportTarget,
  policy: Policy,
  fileName: string,
  options: ExportOptions,
): string {
  const plan = buildExportPlan(policy, target, {
    service: options.service,
    allowWeaker: parseAllowWeaker(options.allowWeaker ?? []),
  });
  return target.render(plan, { policyFileName: fileName, ...options.render });
}

/**
 * A wildcard a deny carves into on plain HTTP only: the core drops it on port 80 and keeps it on 443, so a
 * target that writes names × ports as a cross product must keep the two apart.
 */
export const PATTERN_DROPPED_ON_ONE_PORT = `version: 1
allow:
  - name: example
    hosts: ["**.example.com", example.com]
    schemes: [https, http]
deny:
  - name: admin-plain
    hosts: [admin.example.com]
    schemes: [http]
`;
