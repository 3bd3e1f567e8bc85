import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

const fixtures = fileURLToPath(new URL('../../policy/test/fixtures/', import.meta.url));
const example = join(fixtures, 'full-example.yaml');

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('egress-guard lint', () => {
  it('accepts a valid policy and prints its hash', async () => {
    const r = await run('lint', example);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok, 5 rules, policy sha256:[0-9a-f]{64}/);
    expect(r.err).toMatch(/warning: .*private-section public suffix/);
  });

  it('lists every problem with file, line and column', async () => {
    const file = join(fixtures, 'invalid-many-problems.yaml');
    const r = await run('lint', file);
    expect(r.code).toBe(1);
    const lines = r.out.split('\n');
    expect(lines).toHaveLength(6);
    for (const line of lines)
      expect(line).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ `));
    expect(r.err).toMatch(/6 problems/);
  });

  it('reports a missing file in one line', async () => {
    const r = await run('lint', '/nonexistent/egress.yaml');
    expect(r.code).toBe(2);
    // No made-up 0:0 position: a missing file has no place in it.
    expect(r.out).toBe('/nonexistent/egress.yaml: file not found (check the path)');
  });
});

describe('egress-guard check', () => {
  it('shows an allowed decision with the effective settings', async () => {
    const r = await run('check', example, 'https://api.stripe.com/v1/charges', '--method', 'post');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ALLOWED {2}https:\/\/api\.stripe\.com\/v1\/charges/);
    expect(r.out).toMatch(/rule {6}stripe \(allow\)/);
    expect(r.out).toMatch(/minVersion TLSv1\.3/);
    expect(r.out).toMatch(/total 20s/);
    expect(r.out).toMatch(/breaker {3}off/);
  });

  it('shows a denial with its reason and how to allow it, exit 1', async () => {
    const r = await run('check', example, 'https://pastebin.com/raw/x');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/DENIED/);
    expect(r.out).toMatch(/explicit_deny/);
    expect(r.out).toMatch(/rule {6}paste-sites \(deny\)/);
    const h = await run('check', example, 'api.unknown.example:443');
    expect(h.out).toMatch(/add a rule with hosts: \[api\.unknown\.example\]/);
  });

  it('decides for a service in report mode, and prints JSON', async () => {
    const r = await run('check', example, 'https://evil.example/', '--service', 'payments', '--json');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out);
    expect(d).toMatchObject({
      result: 'reported',
      reason: 'host_not_allowed',
      service: 'payments',
      mode: 'report',
    });
  });

  it('checks a dialled address against the special-purpose rule', async () => {
    const r = await run('check', example, 'https://b.s3.eu-west-1.amazonaws.com/', '--address', '10.0.0.8');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/private_address/);
  });

  it.each([
    [['check', example, 'not a url'], /neither a URL nor host:port/],
    [['check', example, 'ftp://x.example/'], /unsupported scheme "ftp"/],
    [['check', example, 'https://x.example/', '--service', 'nope'], /no service "nope"/],
    [['check', example, 'https://x.example/', '--bogus'], /^egress-guard check: unknown flag --bogus$/],
    [['check', example, 'https://x.example/', '--jsn'], /unknown flag --jsn \(did you mean --json\?\)/],
    [['check', example, 'https://x.example/', '--method'], /^egress-guard check: --method needs a value$/],
    [['check', example, 'https://x.example/', '--json=yes'], /--json takes no value/],
    [['check', '/nonexistent/egress.yaml', 'https://x.example/'], /file not found/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--frobnicate'], /unknown flag "--frobnicate"/],
    [[], /^usage: egress-guard <command>/],
  ])('bad input %j gets a short answer, no stack, and exit 2', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});

describe('egress-guard schema', () => {
  it('prints the JSON Schema', async () => {
    const r = await run('schema');
    expect(JSON.parse(r.out).title).toMatch(/egress-guard policy/);
  });
});

describe('the built command', () => {
  const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
  it('runs as a process: unreadable YAML is one line, no stack', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\nallow: [\n');
    const r = await promisify(execFile)(process.execPath, [bin, 'lint', file]).catch((e) => e);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/bad\.yaml:\d+:\d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('egress-guard edge', () => {
  it('runs the built command: an explicit proxy that denies an unlisted CONNECT, and stops on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const net = await import('node:net');
    const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [bin, 'edge', '--policy', example, '--explicit', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`edge did not start: ${stderr}`)), 15_000);
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /explicit 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () =>
        s.write('CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'),
      );
      let data = '';
      s.on('data', (d) => {
        data += d;
      });
      s.on('close', () => resolve(data));
      s.on('error', () => resolve(data));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 403/);
    child.kill('SIGTERM');
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const decision = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e['event.name'] === 'egress.decision');
    expect(decision).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
      'egress.hook': 'edge.explicit',
    });
  });

  it('refuses bad flags in one line with the usage', async () => {
    const r = await run('edge', '--explicit', 'nonsense');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/egress-guard edge:/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});

describe('every command', async () => {
  // Every command `egress-guard --help` lists, so that a new one is held to the same rules.
  const listed = await run('--help');
  const commands = [...listed.out.matchAll(/^ {2}egress-guard ([a-z]+) /gm)].map((m) => m[1]!);
  it('lists the commands', () => {
    expect(commands).toEqual(
      expect.arrayContaining(['lint', 'check', 'edge', 'schema', 'learn', 'diff', 'report']),
    );
  });

  it.each(commands)('%s --help and -h answer the usage with exit 0', async (name) => {
    for (const flag of ['--help', '-h']) {
      const r = await run(name, flag);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(new RegExp(`usage: egress-guard ${name}\\b`));
      expect(r.err).toBe('');
    }
  });

  it.each(commands)('%s names an unknown flag in one line, exit 2', async (name) => {
    const r = await run(name, '--no-such-flag', 'x');
    expect(r.code).toBe(2);
    if (name === 'edge') {
      // The edge lists every problem of its flags and config file at once, one per line.
      expect(r.err).toMatch(/^egress-guard edge: invalid edge arguments/);
      expect(r.err).toMatch(/^ {2}--no-such-flag: unknown flag$/m);
    } else {
      expect(r.err).toMatch(new RegExp(`^egress-guard ${name}: unknown flag --no-such-flag\\b[^\\n]*$`));
    }
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('answers --help and --version at the top level', async () => {
    const help = await run('--help');
    expect(help.code).toBe(0);
    for (const name of commands) expect(help.out).toContain(`egress-guard ${name}`);
    const version = await run('--version');
    expect(version.code).toBe(0);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(version.out).toBe(pkg.version);
  });

  it('gives lint warnings their line and column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-cli-'));
    const file = join(dir, 'egress.yaml');
    writeFileSync(
      file,
      'version: 1\nallow:\n  - name: pages\n    hosts:\n      - api.example.com\n      - "*.github.io"\n',
    );
    const r = await run('lint', file);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(
      new RegExp(
        `^warning: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:9 allow\\[0\\]\\.hosts\\[1\\]: `,
      ),
    );
  });
});

describe('a reader that closes the pipe early', () => {
  const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

  /** Runs the built command with stdout on a real pipe whose read end is closed before it writes. */
  async function withClosedStdout(argv: string[]) {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [bin, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    return { code, stderr };
  }

  it('ends check, schema and diff quietly, with the status of SIGPIPE (141)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-cli-'));
    const log = join(dir, 'sdk.jsonl');
    const line = (host: string) =>
      JSON.stringify({
        time: '2026-01-31T09:00:00.000Z',
        'event.name': 'egress.decision',
        'egress.decision': 'allowed',
        'egress.reason': 'allowed',
        'egress.source': 'sdk',
        'egress.mode': 'enforce',
        'server.address': host,
        'server.port': 443,
        'url.scheme': 'https',
      });
    writeFileSync(
      log,
      `${Array.from({ length: 2000 }, (_, i) => line(`h${i}.unknown.example`)).join('\n')}\n`,
    );
    for (const argv of [
      ['check', example, 'https://pastebin.com/raw/x'],
      ['schema'],
      ['diff', example, log, '--top', '1000'],
    ]) {
      const r = await withClosedStdout(argv);
      expect(r.stderr, argv.join(' ')).toBe('');
      expect(r.code, argv.join(' ')).toBe(141);
    }
  });

  it('ends quietly in a shell pipeline: egress-guard schema | head -1', async () => {
    const r = await promisify(execFile)('/bin/sh', [
      '-c',
      `"${process.execPath}" "${bin}" schema | head -1; "${process.execPath}" "${bin}" check "${example}" https://pastebin.com/raw/x | head -1`,
    ]);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['{', 'DENIED  https://pastebin.com/raw/x']);
    expect(r.stderr).toBe('');
  });
});
