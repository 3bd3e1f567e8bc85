/**
 * `egress-guard edge --workers N`: the flag and the config file's `workers` key reach the options, the
 * command's default is the number of cores, and a count that is not a positive whole number is refused
 * naming the flag.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeConfigError, resolveEdgeOptions } from '@egress-guard/edge';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEdgeArgs } from '../src/commands/edge-args.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const BASE = ['--policy', 'egress.yaml', '--explicit', '127.0.0.1:3128'];

describe('edge --workers', () => {
  it('defaults to the number of cores; --workers N and the file key set it, the flag winning', () => {
    const workers = (argv: string[]) => resolveEdgeOptions(parseEdgeArgs(argv)).workers;
    expect(workers(BASE)).toBe(availableParallelism());
    expect(workers([...BASE, '--workers', '1'])).toBe(1);
    expect(workers([...BASE, '--workers=3'])).toBe(3);
    dir = mkdtempSync(join(tmpdir(), 'edge-workers-flag-'));
    const file = join(dir, 'edge.yaml');
    writeFileSync(file, 'policy: egress.yaml\nexplicit: 127.0.0.1:3128\nworkers: 4\n');
    expect(workers(['--config', file])).toBe(4);
    expect(workers(['--config', file, '--workers', '2'])).toBe(2);
  });

  it('refuses a count that is not a positive whole number, naming the flag', () => {
    for (const bad of ['0', 'many', '1.5']) {
      const error = (() => {
        try {
          parseEdgeArgs([...BASE, '--workers', bad]);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(EdgeConfigError);
      expect((error as EdgeConfigError).problems.join('\n')).toMatch(/--workers.*positive whole number/);
    }
  });
});
