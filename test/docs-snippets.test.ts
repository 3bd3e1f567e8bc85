/**
 * Every code block in README.md and docs/*.md that can run on one machine runs here, so the docs cannot
 * drift from the product. Blocks run in the order of their document, all blocks of one document in one
 * temporary directory (a file written by one block is there for the next), with the built packages
 * installed there as a user would have them: `node_modules/@egress-guard/*` and `node_modules/.bin/egress-guard`
 * (so `npx egress-guard` runs ours, offline), `PATH` starting with that `.bin`. Each directory starts with
 * `egress.yaml`, the README's example policy (its block marked `file egress.yaml`), which most commands in
 * the docs name.
 *
 * What runs, by the block's language:
 *   sh, bash, shell     bash -euo pipefail, in the document's directory. `npm install <packages>` checks
 *                       that each package is installed there (a workspace package or one of its
 *                       dependencies) instead of fetching it: the registry is never used.
 *   js, mjs             node, as an ES module in the document's directory.
 *   ts                  tsx, likewise.
 *   yaml, json          a policy (its first key is `version`) is linted with `egress-guard lint`; other
 *                       YAML and JSON (configs, manifests, event samples) runs only with a `file` marker.
 *   anything else       (no language, ini, text, output samples): not code, never run.
 *
 * Markers: an HTML comment on the line right before the opening fence (blank lines between are allowed),
 * one directive per comment, several comments may stack:
 *
 *   <!-- doc-test: skip REASON -->       not run. The reason is required and says why it cannot run on one
 *                                        machine, or which test runs it instead, e.g.
 *                                        `<!-- doc-test: skip needs root and iptables on the host -->`,
 *                                        `<!-- doc-test: skip a Kubernetes manifest -->`.
 *   <!-- doc-test: file NAME -->         written to NAME in the document's directory (a policy or config
 *                                        a later block uses); a policy is linted too; nothing else runs.
 *   <!-- doc-test: exit N -->            the block must exit with status N (default 0), e.g. a `check`
 *                                        that denies (1).
 *   <!-- doc-test: background READY -->  sh only: a server. Started, and the next blocks run once its output
 *                                        contains READY (within 20 s); stopped (SIGTERM) when the next
 *                                        background block starts (two servers would want the same ports)
 *                                        or after the document's last block.
 *
 * Safety: shell blocks run in a network namespace of their own (one per document, loopback only), so a
 * recipe's iptables or nft rules, a server it starts and anything it dials stay inside it; and a block
 * that would change the host itself (users, services, packages, kernel settings, remote hosts) is not run
 * at all: the test fails until the block carries a `skip` marker saying why.
 *
 * A block that fails shows its output. Adding a runnable block to a doc adds a test here automatically.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliBin = join(root, 'packages/cli/dist/bin.js');
const tsx = join(root, 'node_modules/.bin/tsx');

/** One fenced block of a document, with the directives before it. */
interface DocBlock {
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  skip?: string | undefined;
  file?: string | undefined;
  exit: number;
  background?: string | undefined;
  /** A directive that is not one of the above, or `skip` without a reason. */
  invalid?: string | undefined;
}

const DIRECTIVE = /^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$/;

/** The fenced blocks of a Markdown text and their markers. */
function extractBlocks(text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).exec(lines[j]!);
      if (close) break;
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!);
    }
    const block: DocBlock = { line: i + 1, lang: lang.toLowerCase(), code: `${body.join('\n')}\n`, exit: 0 };
    // Directives: the comments right above the fence, blank lines allowed between.
    for (let k = i - 1; k >= 0; k--) {
      if (lines[k]!.trim() === '') continue;
      const m = DIRECTIVE.exec(lines[k]!);
      if (!m) break;
      const [verb, ...rest] = m[1]!.split(/\s+/);
      const arg = rest.join(' ');
      if (verb === 'skip' && arg) block.skip = arg;
      else if (verb === 'file' && arg) block.file = arg;
      else if (verb === 'exit' && /^\d+$/.test(arg)) block.exit = Number(arg);
      else if (verb === 'background' && arg) block.background = arg;
      else
        block.invalid = `line ${k + 1}: "${m[1]}" is not a doc-test directive (skip REASON, file NAME, exit N, background READY)`;
    }
    blocks.push(block);
    i = j;
  }
  return blocks;
}

const SHELL = new Set(['sh', 'bash', 'shell']);
const SCRIPT = new Set(['js', 'mjs', 'ts']);

/** What the harness does with a block. */
function actionOf(b: DocBlock): 'skip' | 'file' | 'shell' | 'script' | 'policy' | 'not-code' {
  if (b.skip) return 'skip';
  if (b.file) return 'file';
  if (SHELL.has(b.lang)) return 'shell';
  if (SCRIPT.has(b.lang)) return 'script';
  if ((b.lang === 'yaml' || b.lang === 'json') && isPolicy(b)) return 'policy';
  return 'not-code';
}

function isPolicy(b: DocBlock): boolean {
  if (b.lang === 'json') return /^\s*\{\s*"version"\s*:/.test(b.code);
  const first = b.code.split('\n').find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  return first !== undefined && /^version:\s/.test(first);
}

/** The README's example policy, which every document's directory starts with. */
const readmePolicy = extractBlocks(readFileSync(join(root, 'README.md'), 'utf8')).find(
  (b) => b.file === 'egress.yaml',
)?.code;

/** A directory set up as a user's project with the built packages installed. */
function projectDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'doc-test-'));
  if (readmePolicy === undefined)
    throw new Error('README.md has no block marked <!-- doc-test: file egress.yaml -->');
  writeFileSync(join(dir, 'egress.yaml'), readmePolicy);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'doc-test', private: true, type: 'module' }),
  );
  const scope = join(dir, 'node_modules/@egress-guard');
  mkdirSync(scope, { recursive: true });
  for (const pkg of ['policy', 'node', 'edge', 'cli'])
    symlinkSync(join(root, 'packages', pkg), join(scope, pkg));
  // Dependencies that the docs' own code imports or installs, from where the workspace has them.
  for (const [name, from] of [
    ['undici', 'packages/node'],
    ['pino', 'packages/node'],
    ['koffi', 'packages/edge'],
  ] as const) {
    const pkgJson = createRequire(join(root, from, 'package.json')).resolve(`${name}/package.json`);
    symlinkSync(dirname(pkgJson), join(dir, 'node_modules', name));
  }
  const bin = join(dir, 'node_modules/.bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'egress-guard'), `#!/bin/sh\nexec "${process.execPath}" "${cliBin}" "$@"\n`);
  chmodSync(join(bin, 'egress-guard'), 0o755);
  return dir;
}

/** Commands that change the host outside a network namespace, or reach other machines. */
const HOST_CHANGING =
  /(^|[\s;&|(`])(useradd|userdel|usermod|groupadd|systemctl|service|kubectl|helm|sudo|su|apt|apt-get|dnf|yum|sysctl|modprobe|mount|scp|ssh|docker|crontab)(?=\s|$)/m;

/**
 * A network namespace for one document's shell blocks: a process holding it, entered with nsenter.
 * Root makes one directly; otherwise a user namespace maps us to root inside it.
 */
async function networkNamespace(): Promise<{ enter: string[]; holder: ChildProcess }> {
  for (const flags of [['-n'], ['-r', '-n']]) {
    const holder = spawn('unshare', [...flags, 'sleep', 'infinity'], { stdio: 'ignore' });
    const failed = await new Promise<boolean>((resolve) => {
      holder.once('exit', () => resolve(true));
      holder.once('error', () => resolve(true));
      setTimeout(() => resolve(false), 300);
    });
    if (failed || holder.pid === undefined) continue;
    const enter = [
      'nsenter',
      '-t',
      String(holder.pid),
      '-n',
      ...(flags.includes('-r') ? ['-U', '--preserve-credentials'] : []),
    ];
    const up = await run(enter[0]!, [...enter.slice(1), 'ip', 'link', 'set', 'lo', 'up'], tmpdir());
    if (up.code === 0) return { enter, holder };
    holder.kill();
  }
  throw new Error('cannot make a network namespace (unshare -n): the doc blocks would run on the host');
}

/** Sourced before each shell block: `npm install` checks instead of fetching. */
const PRELUDE = `
npm() {
  case "$1" in
    install|i|add)
      shift
      for p in "$@"; do
        case "$p" in -*) ;; *)
          [ -e "node_modules/$p" ] || { echo "doc-test: $p is not a package of this workspace" >&2; return 1; } ;;
        esac
      done ;;
    *) command npm "$@" ;;
  esac
}
`;

function env(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${join(dir, 'node_modules/.bin')}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    // npx finds the local bin; anything it would fetch fails instead.
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    NODE_OPTIONS: '',
  };
}

function run(
  file: string,
  args: string[],
  dir: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: dir, env: env(dir), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a background block; resolves once its output contains `ready`. */
function startBackground(enter: string[], code: string, dir: string, ready: string): Promise<ChildProcess> {
  const child = spawn(
    enter[0]!,
    [...enter.slice(1), 'bash', '-euo', 'pipefail', '-c', `${PRELUDE}\n${code}`],
    {
      cwd: dir,
      env: env(dir),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`never printed "${ready}":\n${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d;
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (c) => {
      clearTimeout(timer);
      reject(new Error(`exited (${c}) before printing "${ready}":\n${output}`));
    });
  });
}

const documents = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

describe('the marker convention', () => {
  it('reads skip, file, exit and background, and refuses a skip without a reason', () => {
    const blocks = extractBlocks(
      [
        '<!-- doc-test: skip needs root -->',
        '```sh',
        'iptables -L',
        '```',
        '<!-- doc-test: file egress.yaml -->',
        '',
        '```yaml',
        'version: 1',
        '```',
        '<!-- doc-test: exit 1 -->',
        '```sh',
        'false',
        '```',
        '<!-- doc-test: skip -->',
        '```js',
        '```',
      ].join('\n'),
    );
    expect(blocks.map((b) => [b.line, b.lang, b.skip, b.file, b.exit, b.invalid !== undefined])).toEqual([
      [2, 'sh', 'needs root', undefined, 0, false],
      [7, 'yaml', undefined, 'egress.yaml', 0, false],
      [11, 'sh', undefined, undefined, 1, false],
      [15, 'js', undefined, undefined, 0, true],
    ]);
    expect(blocks.map(actionOf)).toEqual(['skip', 'file', 'shell', 'script']);
  });
});

for (const doc of documents) {
  const blocks = extractBlocks(readFileSync(join(root, doc), 'utf8')).filter(
    (b) => actionOf(b) !== 'not-code' || b.invalid,
  );
  if (blocks.length === 0) continue;

  describe(doc, () => {
    let dir: string;
    let netns: Awaited<ReturnType<typeof networkNamespace>> | undefined;
    const servers: ChildProcess[] = [];
    beforeAll(async () => {
      dir = projectDir();
      if (blocks.some((b) => actionOf(b) === 'shell' || actionOf(b) === 'script'))
        netns = await networkNamespace();
    });
    const stopServers = async () => {
      for (const s of servers.splice(0)) {
        if (s.exitCode !== null || s.pid === undefined) continue;
        const exited = new Promise((resolve) => s.on('exit', resolve));
        process.kill(-s.pid, 'SIGTERM');
        await exited;
      }
    };
    afterAll(async () => {
      await stopServers();
      netns?.holder.kill();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const block of blocks) {
      const action = actionOf(block);
      const title = `line ${block.line} (${block.lang || 'text'}): ${action === 'skip' ? `skipped: ${block.skip}` : action}`;
      it(title, async () => {
        expect(block.invalid, `${doc}:${block.line}`).toBeUndefined();
        if (action === 'skip') return;
        const where = `${doc}:${block.line}`;
        if (action === 'file' || action === 'policy') {
          const name = block.file ?? `block-${block.line}.${block.lang}`;
          writeFileSync(join(dir, name), block.code);
          if (!isPolicy(block)) return;
          const r = await run(process.execPath, [cliBin, 'lint', name], dir);
          expect(r.code, `${where}: egress-guard lint\n${r.stdout}${r.stderr}`).toBe(0);
          return;
        }
        if (action === 'shell') {
          const host = HOST_CHANGING.exec(block.code);
          expect(
            host,
            `${where}: "${host?.[2]}" would change this machine or reach another: mark the block <!-- doc-test: skip REASON -->`,
          ).toBeNull();
        }
        const enter = netns?.enter ?? [];
        if (action === 'shell' && block.background) {
          await stopServers();
          servers.push(await startBackground(enter, block.code, dir, block.background));
          return;
        }
        const r =
          action === 'shell'
            ? await run(
                enter[0]!,
                [...enter.slice(1), 'bash', '-euo', 'pipefail', '-c', `${PRELUDE}\n${block.code}`],
                dir,
              )
            : await (() => {
                const file = join(dir, `block-${block.line}.${block.lang === 'ts' ? 'ts' : 'mjs'}`);
                writeFileSync(file, block.code);
                const runner = block.lang === 'ts' ? [tsx, file] : [process.execPath, file];
                return run(enter[0]!, [...enter.slice(1), ...runner], dir);
              })();
        expect(r.code, `${where} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(
          block.exit,
        );
      });
    }
  });
}
