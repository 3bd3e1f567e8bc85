/**
 * `egress-guard lint` and `reportUntil`: a date already past is valid (report mode ended, the file enforces)
 * but is warned about with its place in the file; docs/rollout.md's examples lint without warnings.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'egress-lint-until-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('lint: reportUntil', () => {
  it('warns, with its line, when a report-mode policy ends in the past; the file is still valid', async () => {
    const path = file('past.yaml', 'version: 1\nmode: report\nreportUntil: 2020-03-01\n');
    const r = await run('lint', path);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/past\.yaml: ok/);
    expect(r.err).toMatch(
      /^warning: .*past\.yaml:3:14 reportUntil: reportUntil 2020-03-01 is in the past: report mode has ended, this policy enforces/m,
    );
  });

  it("warns about a service's own past date, and not about a date to come or an enforce-mode file", async () => {
    const path = file(
      'services.yaml',
      [
        'version: 1',
        'mode: enforce',
        'reportUntil: 2020-01-01', // enforce mode: the date says nothing
        'services:',
        '  search:',
        '    mode: report',
        '    reportUntil: 2021-06-30T12:00:00Z',
        '  payments:',
        '    mode: report',
        '    reportUntil: 2099-01-31',
        '',
      ].join('\n'),
    );
    const r = await run('lint', path);
    expect(r.code).toBe(0);
    const warnings = r.err.split('\n').filter((l) => l.startsWith('warning:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /:7:18 services\.search\.reportUntil: reportUntil 2021-06-30T12:00:00Z is in the past/,
    );
  });

  it("docs/rollout.md's policy examples lint clean (no date already past)", async () => {
    const doc = readFileSync(new URL('../../../docs/rollout.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const withDates = blocks.filter((b) => b.includes('reportUntil'));
    expect(withDates.length).toBeGreaterThan(0);
    for (const [i, block] of withDates.entries()) {
      const text = block.startsWith('version:') ? block : `version: 1\n${block}`;
      const r = await run('lint', file(`rollout-${i}.yaml`, text));
      expect(r.code, `${r.out}\n${r.err}\n${text}`).toBe(0);
      expect(r.err).toBe('');
    }
  });
});
