/**
 * The flags of `egress-guard edge` (parseEdgeArgs, on node:util parseArgs) and the `--config` file they
 * name: flags win, every problem listed at once in the user's terms (the flag, or the file's line and column).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeConfigError, resolveEdgeOptions } from '@egress-guard/edge';
import { afterEach, describe, expect, it } from 'vitest';
import { EDGE_FLAGS, edgeUsage, parseEdgeArgs } from '../src/commands/edge-args.js';

/** A temporary directory for config files, removed after each test. */
function tempDir() {
  const path = mkdtempSync(join(tmpdir(), 'edge-args-'));
  return {
    dir: path,
    async write(name: string, text: string) {
      const file = join(path, name);
      writeFileSync(file, text);
      return file;
    },
    async cleanup() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async () => {
  await dir?.cleanup();
  dir = undefined;
});

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof EdgeConfigError) return [...error.problems];
    throw error;
  }
  throw new Error('expected an EdgeConfigError');
}

const DURATION = 'expected a positive duration such as 250ms, 5s, 2m or a number of milliseconds';

describe('parseEdgeArgs', () => {
  it('turns flags into options for startEdge, with the command defaults', () => {
    const o = parseEdgeArgs([
      '--policy',
      'egress.yaml',
      '--explicit',
      '127.0.0.1:3128',
      '--transparent',
      '0.0.0.0:15001',
      '--sni',
      '[::]:8443=443',
      '--hello-timeout=5s',
      '--max-connections-per-source',
      '64',
      '--dns-server',
      '10.0.0.2:53',
    ]);
    expect(o).toMatchObject({
      policy: 'egress.yaml',
      listeners: [
        { kind: 'explicit', host: '127.0.0.1', port: 3128 },
        { kind: 'transparent', host: '0.0.0.0', port: 15001 },
        { kind: 'sni', host: '::', port: 8443, upstreamPort: 443 },
      ],
      admin: { host: '127.0.0.1', port: 9901 },
      limits: { helloTimeout: '5s', maxConnectionsPerSource: '64' },
      dns: { servers: ['10.0.0.2:53'] },
      signals: true,
      watch: true,
    });
    expect(resolveEdgeOptions(o).limits).toMatchObject({ helloTimeout: 5000, maxConnectionsPerSource: 64 });
  });

  it('explains every mistake', () => {
    const problems = problemsOf(() =>
      parseEdgeArgs(['--explicit', '3128', '--hello-timeout', 'soon', '--polcy', 'x.yaml', '--sni']),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        '--polcy: unknown flag (did you mean --policy?)',
        '--sni: needs a value',
        expect.stringMatching(/^--explicit 3128: expected host:port/),
        '--policy: required (the policy file the edge enforces)',
      ]),
    );
    const second = problemsOf(() =>
      parseEdgeArgs(['--policy', 'p.yaml', '--explicit', ':3128', '--hello-timeout', 'soon']),
    );
    expect(second).toEqual([expect.stringMatching(/^--hello-timeout: expected a positive duration/)]);
  });

  it('reads a YAML config file; flags win, paths are relative to the file', async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.yaml',
      `# edge settings
policy: policies/egress.yaml
explicit: [127.0.0.1:3128]
sni:
  - "0.0.0.0:443=443"
admin: 127.0.0.1:9902
limits:
  maxConnections: 500
  helloTimeout: 3s
dns:
  servers: [10.0.0.2]
watch: false
`,
    );
    const o = parseEdgeArgs(['--config', file, '--max-connections', '900', '--no-admin']);
    expect(o).toMatchObject({
      policy: `${dir.dir}/policies/egress.yaml`,
      listeners: [
        { kind: 'explicit', host: '127.0.0.1', port: 3128 },
        { kind: 'sni', host: '0.0.0.0', port: 443, upstreamPort: 443 },
      ],
      admin: undefined,
      limits: { maxConnections: '900', helloTimeout: '3s' },
      dns: { servers: ['10.0.0.2'] },
      watch: false,
    });
  });

  it('reads a JSON config file, and names unknown keys in it', async () => {
    dir = tempDir();
    const good = await dir.write(
      'edge.json',
      JSON.stringify({ policy: '/etc/egress.yaml', transparent: '0.0.0.0:15001' }),
    );
    expect(parseEdgeArgs(['--config', good]).listeners).toEqual([
      { kind: 'transparent', host: '0.0.0.0', port: 15001 },
    ]);
    const bad = await dir.write(
      'bad.json',
      JSON.stringify({ policy: '/etc/egress.yaml', explicitt: '1.2.3.4:1' }),
    );
    expect(problemsOf(() => parseEdgeArgs(['--config', bad]))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/explicitt: unknown option \(did you mean "explicit"\?\)/),
      ]),
    );
  });
});

describe('parseEdgeArgs: flags', () => {
  it('reads --flag value and --flag=value, repeated lists and switches', () => {
    const o = parseEdgeArgs([
      '--policy=egress.yaml',
      '--explicit',
      ':3128',
      '--explicit=[::1]:3129',
      '--admin',
      '0.0.0.0:9902',
      '--drain-timeout=1m',
      '--hello-max-bytes',
      '4096',
      '--dns-server',
      '10.0.0.2',
      '--dns-server',
      '[fd00::53]:53',
      '--dns-min-retention',
      '2s',
      '--watch-debounce',
      '1s',
      '--no-watch',
    ]);
    expect(o).toMatchObject({
      listeners: [
        { kind: 'explicit', host: '127.0.0.1', port: 3128 },
        { kind: 'explicit', host: '::1', port: 3129 },
      ],
      admin: { host: '0.0.0.0', port: 9902 },
      dns: { servers: ['10.0.0.2', '[fd00::53]:53'], minRetention: '2s' },
      watch: false,
      watchDebounce: '1s',
    });
    expect(resolveEdgeOptions(o)).toMatchObject({
      limits: { drainTimeout: 60_000, helloMaxBytes: 4096 },
      dns: { minRetention: 2000 },
      watchDebounce: 1000,
    });
    expect(parseEdgeArgs(['--policy', 'p.yaml', '--sni', ':443', '--no-admin']).admin).toBeUndefined();
  });

  it('lists the mistakes in the flags together with the invalid values', () => {
    expect(
      problemsOf(() =>
        parseEdgeArgs([
          'edge',
          '--policy',
          'a.yaml',
          '--policy',
          'b.yaml',
          '--no-watch=1',
          '--explicit',
          '3128',
          '--max-connections',
          'lots',
          '--dns-server',
          '',
          '--sni',
          '1.2.3.4:443=0',
          '--max-conections',
          '5',
        ]),
      ),
    ).toEqual([
      'edge: unknown argument',
      '--policy: given twice',
      '--no-watch: takes no value',
      '--max-conections: unknown flag (did you mean --max-connections?)',
      '5: unknown argument',
      '--explicit 3128: expected host:port (e.g. 127.0.0.1:3128 or [::]:3128), got "3128"',
      '--sni 1.2.3.4:443=0: invalid upstream port "0"',
      '--max-connections: expected a positive whole number, got "lots"',
      '--dns-server: expected an address such as 10.0.0.2 or 10.0.0.2:53, got ""',
    ]);
    expect(problemsOf(() => parseEdgeArgs([]))).toEqual([
      '--policy: required (the policy file the edge enforces)',
      'listeners: give at least one of --explicit, --transparent, --sni',
    ]);
  });
});

describe('parseEdgeArgs: the config file', () => {
  it('takes every setting from a YAML file', async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.yaml',
      `policy: /etc/egress/egress.yaml
transparent:
  - 0.0.0.0:15001
  - "[::]:15001"
admin: false
limits:
  helloTimeout: 2s
  connectTimeout: 2s
  maxConnectionsPerSource: 64
dns: {servers: [10.0.0.2], timeout: 3s}
watch: true
watchDebounce: 500
`,
    );
    const o = parseEdgeArgs(['--config', file]);
    expect(o).toMatchObject({
      policy: '/etc/egress/egress.yaml',
      listeners: [
        { kind: 'transparent', host: '0.0.0.0', port: 15001 },
        { kind: 'transparent', host: '::', port: 15001 },
      ],
      admin: undefined,
      watch: true,
      watchDebounce: 500,
      signals: true,
    });
    expect(resolveEdgeOptions(o)).toMatchObject({
      limits: { helloTimeout: 2000, connectTimeout: 2000, maxConnectionsPerSource: 64 },
      dns: { servers: ['10.0.0.2'], timeout: 3000 },
    });
  });

  it('lets flags win: listeners kind by kind, limits and dns key by key, admin and watch', async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.yaml',
      `policy: egress.yaml
explicit: 127.0.0.1:3128
sni: 0.0.0.0:8443=443
admin: 127.0.0.1:9902
limits: {maxConnections: 500, helloTimeout: soon}
dns: {servers: [10.0.0.2], timeout: 3s}
watch: true
watchDebounce: 2s
`,
    );
    const o = parseEdgeArgs([
      '--config',
      file,
      '--policy',
      '/srv/other.yaml',
      '--explicit',
      '127.0.0.1:4128',
      '--hello-timeout',
      '1s',
      '--dns-server',
      '10.9.9.9',
      '--admin',
      ':9999',
      '--no-watch',
      '--watch-debounce',
      '100ms',
    ]);
    expect(o).toMatchObject({
      policy: '/srv/other.yaml',
      listeners: [
        { kind: 'explicit', host: '127.0.0.1', port: 4128 },
        { kind: 'sni', host: '0.0.0.0', port: 8443, upstreamPort: 443 },
      ],
      admin: { host: '127.0.0.1', port: 9999 },
      // The file's bad helloTimeout is overridden, so it is never a problem.
      limits: { maxConnections: 500, helloTimeout: '1s' },
      dns: { servers: ['10.9.9.9'], timeout: '3s' },
      watch: false,
      watchDebounce: '100ms',
    });
    expect(parseEdgeArgs(['--config', file, '--no-admin', '--hello-timeout', '1s']).admin).toBeUndefined();
  });

  it('lists every problem in the file with its line and column, in file order, after the flags', async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.yaml',
      `policy: ""
explicit: [127.0.0.1:3128, nope]
transparent: 15001
admin: 127.0.0.1:99999
limits:
  maxConections: 5
  helloTimeout: soon
  helloMaxBytes: 512
dns:
  servers: [10.0.0.2, ""]
  timeout: 0
watch: "yes"
watchDebounce: []
sniff: 0.0.0.0:443
`,
    );
    expect(problemsOf(() => parseEdgeArgs(['--config', file, '--idle-timeout', 'later']))).toEqual([
      `--idle-timeout: ${DURATION}, got "later"`,
      `${file}:1:9 policy: expected a path`,
      `${file}:2:28 explicit[1]: expected host:port (e.g. 127.0.0.1:3128 or [::]:3128), got "nope"`,
      `${file}:3:14 transparent: expected host:port or a list of them`,
      `${file}:4:8 admin: port 99999 is out of range`,
      `${file}:6:3 limits.maxConections: unknown option (did you mean "maxConnections"?)`,
      `${file}:7:17 limits.helloTimeout: ${DURATION}, got "soon"`,
      `${file}:8:18 limits.helloMaxBytes: at least 1024 bytes`,
      `${file}:10:23 dns.servers[1]: expected an address such as 10.0.0.2 or 10.0.0.2:53, got ""`,
      `${file}:11:12 dns.timeout: ${DURATION}, got 0`,
      `${file}:12:8 watch: expected true or false`,
      `${file}:13:16 watchDebounce: ${DURATION}, got []`,
      `${file}:14:1 sniff: unknown option (did you mean "sni"?)`,
    ]);
  });

  it('places problems in a JSON file too, and names unknown keys at the key', async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.json',
      `{
  "policy": "egress.yaml",
  "explicit": ["127.0.0.1:3128"],
  "limits": { "drainTimout": "5s" },
  "metrics": true
}
`,
    );
    expect(problemsOf(() => parseEdgeArgs(['--config', file]))).toEqual([
      `${file}:4:15 limits.drainTimout: unknown option (did you mean "drainTimeout"?)`,
      expect.stringMatching(
        // Other settings may follow as the edge gains them.
        new RegExp(
          `^${file}:5:3 metrics: unknown option \\(known options here: policy, explicit, transparent, sni, admin, limits, dns, watch, watchDebounce\\b`,
        ),
      ),
    ]);
  });

  it('reports a file it cannot read or parse, with everything else', async () => {
    dir = tempDir();
    const missing = `${dir.dir}/missing.yaml`;
    expect(problemsOf(() => parseEdgeArgs(['--config', missing, '--sni', ':443']))).toEqual([
      `${missing}: cannot read the config file (ENOENT)`,
      '--policy: required (the policy file the edge enforces)',
    ]);
    const broken = await dir.write('broken.yaml', 'policy: egress.yaml\npolicy: again.yaml\nexplicit: [\n');
    expect(problemsOf(() => parseEdgeArgs(['--config', broken, '--hello-timeout', 'x']))).toEqual([
      '--policy: required (the policy file the edge enforces)',
      'listeners: give at least one of --explicit, --transparent, --sni',
      `--hello-timeout: ${DURATION}, got "x"`,
      `${broken}:2:1 Map keys must be unique (each key may appear once)`,
      expect.stringMatching(new RegExp(`^${broken}:4:1 .* \\(check the YAML syntax\\)$`)),
    ]);
    const list = await dir.write('list.yaml', '- policy: egress.yaml\n');
    expect(
      problemsOf(() => parseEdgeArgs(['--config', list, '--policy', 'p.yaml', '--sni', ':443'])),
    ).toEqual([`${list}:1:1 expected a mapping of settings at the top level`]);
  });

  it("refuses the YAML features docs/edge.md refuses, at their place, with the flags' problems", async () => {
    dir = tempDir();
    const file = await dir.write(
      'edge.yaml',
      'policy: egress.yaml\nexplicit: 127.0.0.1:3128\nlimits:\n  helloTimeout: &t 2s\n  connectTimeout: *t\n',
    );
    expect(problemsOf(() => parseEdgeArgs(['--config', file, '--max-connections', '0']))).toEqual([
      '--policy: required (the policy file the edge enforces)',
      'listeners: give at least one of --explicit, --transparent, --sni',
      '--max-connections: expected a positive whole number, got 0',
      `${file}:4:17 anchor &t is not accepted (write the value out where it is used)`,
      `${file}:5:19 alias *t is not accepted (write the value out where it is used)`,
    ]);
  });
});

describe('the flag table', () => {
  it('lists every flag in the help, once', () => {
    const usage = edgeUsage();
    for (const flag of EDGE_FLAGS) expect(usage).toContain(`--${flag.name}`);
    expect(new Set(EDGE_FLAGS.map((f) => f.name)).size).toBe(EDGE_FLAGS.length);
  });

  it('sends a flag whose setting is an option path to that option', () => {
    const o = parseEdgeArgs(['--policy', 'p.yaml', '--sni', ':443', '--connect-timeout', '3s']);
    expect(o.limits).toEqual({ connectTimeout: '3s' });
    expect(resolveEdgeOptions(o).limits.connectTimeout).toBe(3000);
  });
});
