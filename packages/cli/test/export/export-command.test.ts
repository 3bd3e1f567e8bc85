import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXPORT_TARGETS } from '../../src/export/targets.js';
import { main } from '../../src/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'eg-export-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err };
}

const simple = file('simple.yaml', 'version: 1\nallow:\n  - name: api\n    hosts: [api.example.com]\n');
const WEAKER = ['--allow-weaker', 'tls-floor', '--allow-weaker', 'private-addresses'];

describe('egress-guard export', () => {
  it('--help exits 0 with the usage and every target', async () => {
    const r = await run('export', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: egress-guard export <policy.yaml> --to <target>/);
    for (const t of Object.keys(EXPORT_TARGETS)) expect(r.out).toMatch(new RegExp(`^  ${t} `, 'm'));
    expect(r.out).toMatch(
      /--allow-weaker DIMS .*methods, paths, tls-floor.*destination-binding, server-name, name-validity/,
    );
    for (const flag of [
      '--to',
      '--service',
      '--out',
      '--listen',
      '--resolver',
      '--proxy-port',
      '--runtime-dir',
    ]) {
      expect(r.out).toMatch(new RegExp(`^  ${flag} `, 'm'));
    }
    // Every flag the parser takes is in the help.
    expect(r.out).toContain('--allow-weaker');
  });

  it('the root --help lists the command', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}egress-guard export <policy\.yaml> --to <target> /m);
  });

  it('an unknown flag is one line and exit 2', async () => {
    const r = await run('export', simple, '--to', 'nginx', '--bogus');
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^egress-guard export: unknown flag --bogus .*--help/);
  });

  it.each([
    [['export', simple], /--to is required \(one of .*haproxy.*nginx.*squid/],
    [['export', simple, '--to', 'iptables'], /unknown target "iptables"/],
    [['export', simple, '--to', 'nginx', '--allow-weaker', 'speed'], /unknown dimension "speed"/],
    [['export', '--to', 'nginx'], /give exactly one policy file/],
    [['export', simple, '--to', 'squid', '--proxy-port', '70000'], /--proxy-port: "70000" is not a port/],
  ])('usage error %j: exit 2, one line', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(message);
  });

  it('an invalid policy: exit 2 with its problems', async () => {
    const bad = file('bad.yaml', 'version: 1\nallow:\n  - name: x\n    hosts: ["*.com"]\n');
    const r = await run('export', bad, '--to', 'nginx');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/too broad/);
  });

  it('refused: exit 1, each rule with its reason and the choices, nothing written', async () => {
    const out = path.join(dir, 'refused.conf');
    const r = await run('export', simple, '--to', 'haproxy', '--out', out);
    expect(r.code).toBe(1);
    expect(r.err[0]).toBe(
      'egress-guard export: refused: the haproxy configuration would be wider than the policy, or weaker without --allow-weaker',
    );
    // One line per rule and dimension, then the choices they share, once.
    expect(r.err.slice(1)).toEqual([
      '  rule "api": the TLS floor (tls.minVersion): not enforced by haproxy (TLS floor TLSv1.2)',
      '  rule "api": special-purpose addresses (privateAddresses: deny) for names that resolve to them: not enforced by haproxy (names resolving to special-purpose addresses are not refused)',
      '  choices: accept it: --allow-weaker private-addresses,tls-floor; enforce it elsewhere (the SDK or egress-guard edge), or use a target that enforces it (docs/export.md)',
    ]);
    expect(() => readFileSync(out)).toThrow();
  });

  it('--out writes the same bytes stdout shows; warnings go to stderr', async () => {
    const narrowed = file(
      'narrowed.yaml',
      'version: 1\nallow:\n  - name: api\n    hosts: [api.example.com]\n    addresses: [203.0.113.0/24]\n',
    );
    const out = path.join(dir, 'nginx.conf');
    const a = await run('export', narrowed, '--to', 'nginx', ...WEAKER, '--out', out);
    expect(a.code).toBe(0);
    expect(a.out).toBe('');
    expect(a.err).toEqual([
      'egress-guard export: warning: rule "api": addresses 203.0.113.0/24 not exported: nginx matches names (narrower)',
    ]);
    const b = await run('export', narrowed, '--to', 'nginx', ...WEAKER);
    expect(`${b.out}\n`).toBe(readFileSync(out, 'utf8'));
    expect(b.out).toMatch(/# rule "api" \(allow\): api\.example\.com \(exactly\)/);
  });
});
