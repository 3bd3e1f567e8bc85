/**
 * koffi is an optional peer dependency: only the transparent listener needs it. Where it is not installed,
 * the edge says which package to install instead of failing with a bare "Cannot find module".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bindGetsockopt, KOFFI_MISSING } from '../src/original-destination.js';

const outside = mkdtempSync(join(tmpdir(), 'no-koffi-'));
afterAll(() => rmSync(outside, { recursive: true, force: true }));

describe.runIf(process.platform === 'linux')('koffi, an optional peer dependency', () => {
  it('names the package to install when it is missing', () => {
    // A require rooted outside the workspace: Node's own resolution, which finds no koffi there.
    const requireOutside = createRequire(join(outside, 'index.js'));
    expect(() => requireOutside('koffi')).toThrow(expect.objectContaining({ code: 'MODULE_NOT_FOUND' }));
    expect(() => bindGetsockopt(requireOutside)).toThrow(KOFFI_MISSING);
    expect(KOFFI_MISSING).toMatch(/npm install koffi/);
  });

  it('says why when koffi is there but does not load', () => {
    const broken = () => {
      throw new Error('wrong ELF class: ELFCLASS32');
    };
    expect(() => bindGetsockopt(broken)).toThrow(
      'transparent mode is unavailable: koffi does not load (wrong ELF class: ELFCLASS32)',
    );
  });

  it('declares getsockopt when koffi is installed (the workspace has it as a dev dependency)', () => {
    const native = bindGetsockopt(createRequire(import.meta.url));
    expect(typeof native.getsockopt).toBe('function');
    expect(typeof native.errno()).toBe('number');
  });
});
