/**
 * Options: defaults in one place, validation listing every problem, the flags of `egress-guard edge`
 * (parseEdgeArgs), and the small config file (JSON or a plain YAML subset).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigFileError,
  EDGE_DEFAULTS,
  EdgeConfigError,
  parseConfigText,
  parseEdgeArgs,
  resolveEdgeOptions,
} from '../src/index.js';
import { policyOf, tempDir } from './helpers/edge-kit.js';

let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
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

describe('resolveEdgeOptions', () => {
  const policy = policyOf('version: 1\nallow:\n  - name: a\n    hosts: [a.example.com]\n');

  it('applies every default', () => {
    const o = resolveEdgeOptions({ policy, listeners: [{ kind: 'sni', port: 8443 }] });
    expect(o.limits).toEqual(EDGE_DEFAULTS.limits);
    expect(o.dns).toEqual(EDGE_DEFAULTS.dns);
    expect(o.listeners[0]).toMatchObject({ host: '127.0.0.1', port: 8443, upstreamPort: 443 });
    expect(o).toMatchObject({ watch: false, signals: false, admin: undefined, defaultMetrics: true });
  });

  it('parses durations and lists every problem at once, with hints', () => {
    const o = resolveEdgeOptions({
      policy,
      listeners: [{ kind: 'explicit', port: 3128 }],
      limits: { helloTimeout: '2s', idleTimeout: 60_000 },
    });
    expect(o.limits.helloTimeout).toBe(2000);
    expect(o.limits.idleTimeout).toBe(60_000);
    const problems = problemsOf(() =>
      resolveEdgeOptions({
        policy: '',
        listeners: [{ kind: 'bogus' as 'sni', port: 70000, host: 'example.com' }],
        limits: { helloTimout: '5s', maxConnections: -1 } as never,
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^policy: required/),
        expect.stringMatching(/^listeners\[0\]\.kind: expected one of explicit, transparent, sni/),
        expect.stringMatching(/^listeners\[0\]\.host: expected an IP address/),
        expect.stringMatching(/^listeners\[0\]\.port: expected a port/),
        'limits.helloTimout: unknown option (did you mean "helloTimeout"?)',
        expect.stringMatching(/^limits\.maxConnections: expected a positive whole number/),
      ]),
    );
  });

  it('refuses options that belong to another listener kind', () => {
    const problems = problemsOf(() =>
      resolveEdgeOptions({ policy, listeners: [{ kind: 'explicit', port: 1, upstreamPort: 443 }] }),
    );
    expect(problems).toEqual(['listeners[0].upstreamPort: only sni listeners have an upstream port']);
  });
});

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
    expect(second).toEqual([expect.stringMatching(/^limits\.helloTimeout: expected a positive duration/)]);
  });

  it('reads a YAML config file; flags win, paths are relative to the file', async () => {
    dir = await tempDir();
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
    dir = await tempDir();
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

describe('parseConfigText', () => {
  it('reads nested mappings, block and flow lists, quotes and comments', () => {
    expect(
      parseConfigText(`a: 1
b: "two # not a comment"
c: [x, 'y', 3]
d:
  e: true
  f:
    - g
    - h # comment
`),
    ).toEqual({ a: 1, b: 'two # not a comment', c: ['x', 'y', 3], d: { e: true, f: ['g', 'h'] } });
  });

  it('refuses what it does not support, with the line', () => {
    expect(() => parseConfigText('a: &anchor 1\n', 'edge.yaml')).toThrow(ConfigFileError);
    expect(() => parseConfigText('a:\n  - b: 1\n', 'edge.yaml')).toThrow(/edge\.yaml:2: lists of mappings/);
    expect(() => parseConfigText('a: 1\na: 2\n', 'edge.yaml')).toThrow(/edge\.yaml:2: duplicate key "a"/);
    expect(() => parseConfigText('a: 1\n   b: 2\n', 'edge.yaml')).toThrow(/edge\.yaml:2/);
  });
});
