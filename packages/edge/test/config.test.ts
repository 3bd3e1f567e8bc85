/**
 * Options: defaults in one place, validation listing every problem, the flags of `egress-guard edge`
 * (parseEdgeArgs), and the config file (YAML or JSON; its own parser is covered in config-file.test.ts).
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

  it('reads what the YAML subset it replaced refused (anchors, lists of mappings), and places errors', () => {
    expect(parseConfigText('a: &anchor 1\nb: *anchor\n')).toEqual({ a: 1, b: 1 });
    expect(parseConfigText('a:\n  - b: 1\n')).toEqual({ a: [{ b: 1 }] });
    expect(() => parseConfigText('a: 1\na: 2\n', 'edge.yaml')).toThrow(ConfigFileError);
    expect(() => parseConfigText('a: 1\na: 2\n', 'edge.yaml')).toThrow(
      /^edge\.yaml:2:1 Map keys must be unique \(each key may appear once\)/,
    );
  });
});

const DURATION = 'expected a positive duration such as 250ms, 5s, 2m or a number of milliseconds';

describe('resolveEdgeOptions: the schema', () => {
  const policy = policyOf('version: 1\nallow:\n  - name: a\n    hosts: [a.example.com]\n');

  it('takes every default from EDGE_DEFAULTS, in fresh objects', () => {
    const o = resolveEdgeOptions({
      policy: '/etc/egress.yaml',
      listeners: [{ kind: 'explicit', port: 3128 }],
      admin: { port: 0 },
      limits: { maxConnections: '12' as never },
    });
    expect(o).toMatchObject({
      listeners: [
        { kind: 'explicit', host: EDGE_DEFAULTS.listenerHost, port: 3128, upstreamPort: undefined },
      ],
      admin: { host: EDGE_DEFAULTS.adminHost, port: 0 },
      limits: { ...EDGE_DEFAULTS.limits, maxConnections: 12 },
      watch: true, // a policy path is watched
      watchDebounce: EDGE_DEFAULTS.watchDebounce,
      signals: EDGE_DEFAULTS.signals,
      defaultMetrics: EDGE_DEFAULTS.defaultMetrics,
    });
    o.limits.maxConnections = 1;
    o.dns.timeout = 1;
    expect(resolveEdgeOptions({ policy, listeners: [{ kind: 'sni', port: 1 }] })).toMatchObject({
      limits: EDGE_DEFAULTS.limits,
      dns: EDGE_DEFAULTS.dns,
    });
  });

  it('keeps what it does not validate by reference: the policy, functions, the resolver', () => {
    const reader = () => ({ address: '10.0.0.1', port: 443 });
    const resolver = { resolve4: async () => [], resolve6: async () => [] };
    const o = resolveEdgeOptions({
      policy,
      listeners: [{ kind: 'transparent', port: 15001, originalDestination: reader }],
      resolver: resolver as never,
      watch: true,
    });
    expect(o.policy).toBe(policy);
    expect(o.listeners[0]!.originalDestination).toBe(reader);
    expect(o.resolver).toBe(resolver);
    expect(o.watch).toBe(true);
  });

  it('lists cross-field problems even when the fields themselves are invalid', () => {
    expect(
      problemsOf(() =>
        resolveEdgeOptions({
          policy,
          listeners: [
            { kind: 'explicit', port: 3128 },
            { kind: 'explicit', port: 3128, host: '127.0.0.1' },
            { kind: 'sni', port: 0 },
            { kind: 'sni', port: 0 },
            // A non-integer must not stop the checks that follow (zod's z.int() would abort them).
            { kind: 'explicit', port: 80.5, upstreamPort: 443 },
          ],
          limits: { maxConnections: 1.5 },
          resolver: {} as never,
          lookup: 3 as never,
          dns: { servers: ['10.0.0.2', 5 as never] },
        }),
      ),
    ).toEqual([
      'listeners[4].port: expected a port 0-65535, got 80.5',
      'listeners[4].upstreamPort: only sni listeners have an upstream port',
      'listeners: 127.0.0.1:3128 is listed twice',
      'limits.maxConnections: expected a positive whole number, got 1.5',
      'dns.servers[1]: expected an address such as 10.0.0.2 or 10.0.0.2:53, got 5',
      'resolver: expected an object with resolve4 and resolve6 (like dns.promises.Resolver)',
      'lookup: expected a function',
      'resolver, lookup: give one of them, not both',
      'resolver, dns.servers: a custom resolver chooses its own servers',
    ]);
  });

  it('lists every problem of a listener, admin, limits and dns at once', () => {
    expect(
      problemsOf(() =>
        resolveEdgeOptions({
          policy: 42 as never,
          listeners: [
            'explicit' as never,
            { kind: 'explicit', port: 1.5, upstreamPort: 0, originalDestination: (() => {}) as never },
          ],
          admin: { host: '::1', port: -1 },
          limits: { helloMaxBytes: 512, drainTimeout: '0s', maxConnectionsPerSource: 'many' as never },
          dns: { maxNames: 0, minRetention: true as never },
          watch: 'yes' as never,
          watchDebounce: '1 minute',
        }),
      ),
    ).toEqual([
      'policy: required: a policy file path or a Policy (from loadPolicyFile)',
      'listeners[0]: expected an object',
      'listeners[1].port: expected a port 0-65535, got 1.5',
      'listeners[1].upstreamPort: expected a port 1-65535, got 0',
      'listeners[1].upstreamPort: only sni listeners have an upstream port',
      'listeners[1].originalDestination: only transparent listeners read an original destination',
      'admin.port: expected a port 0-65535, got -1',
      'limits.maxConnectionsPerSource: expected a positive whole number, got "many"',
      'limits.helloMaxBytes: at least 1024 bytes',
      `limits.drainTimeout: ${DURATION}, got "0s"`,
      `dns.minRetention: ${DURATION}, got true`,
      'dns.maxNames: expected a positive whole number, got 0',
      'watch: expected true or false',
      `watchDebounce: ${DURATION}, got "1 minute"`,
    ]);
    expect(problemsOf(() => resolveEdgeOptions(null as never))).toEqual(['options must be an object']);
    expect(problemsOf(() => resolveEdgeOptions({ policy } as never))).toEqual([
      'listeners: at least one listener is required (explicit, transparent or sni)',
    ]);
  });

  it('names unknown options at every level, with "did you mean" or the known options', () => {
    expect(
      problemsOf(() =>
        resolveEdgeOptions({
          policy,
          listeners: [{ kind: 'sni', port: 1, upstream_port: 443 }],
          admin: { port: 0, hots: '::' },
          limits: { idleTimout: '1m' },
          dns: { server: ['10.0.0.2'] },
          signal: true,
          colour: 'blue',
          // An option set to undefined is an option not given.
          nothing: undefined,
        } as never),
      ),
    ).toEqual([
      'listeners[0].upstream_port: unknown option (did you mean "upstreamPort"?)',
      'admin.hots: unknown option (did you mean "host"?)',
      'limits.idleTimout: unknown option (did you mean "idleTimeout"?)',
      'dns.server: unknown option (did you mean "servers"?)',
      'signal: unknown option (did you mean "signals"?)',
      'colour: unknown option (known options here: policy, listeners, admin, limits, dns, watch, watchDebounce, signals, events, logger, destination, resolver, lookup, registry, defaultMetrics)',
    ]);
  });

  it('throws an EdgeConfigError whose message lists the problems', () => {
    expect(() => resolveEdgeOptions({ policy, listeners: [{ kind: 'sni', port: -1 }] })).toThrow(
      'invalid edge options: 1 problem\n  listeners[0].port: expected a port 0-65535, got -1',
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
      'limits.maxConnections: expected a positive whole number, got "lots"',
      'dns.servers[0]: expected an address such as 10.0.0.2 or 10.0.0.2:53, got ""',
    ]);
    expect(problemsOf(() => parseEdgeArgs([]))).toEqual([
      '--policy: required (the policy file the edge enforces)',
      'listeners: give at least one of --explicit, --transparent, --sni',
    ]);
  });
});

describe('parseEdgeArgs: the config file', () => {
  it('takes every setting from a YAML file, with YAML features the old subset refused', async () => {
    dir = await tempDir();
    const file = await dir.write(
      'edge.yaml',
      `policy: /etc/egress/egress.yaml
transparent:
  - 0.0.0.0:15001
  - "[::]:15001"
admin: false
limits:
  helloTimeout: &short 2s
  connectTimeout: *short
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
    dir = await tempDir();
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
    dir = await tempDir();
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
      `limits.idleTimeout: ${DURATION}, got "later"`,
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
    dir = await tempDir();
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
      `${file}:5:3 metrics: unknown option (known options here: policy, explicit, transparent, sni, admin, limits, dns, watch, watchDebounce)`,
    ]);
  });

  it('reports a file it cannot read or parse, with everything else', async () => {
    dir = await tempDir();
    const missing = `${dir.dir}/missing.yaml`;
    expect(problemsOf(() => parseEdgeArgs(['--config', missing, '--sni', ':443']))).toEqual([
      `${missing}: cannot read the config file (ENOENT)`,
      '--policy: required (the policy file the edge enforces)',
    ]);
    const broken = await dir.write('broken.yaml', 'policy: egress.yaml\npolicy: again.yaml\nexplicit: [\n');
    expect(problemsOf(() => parseEdgeArgs(['--config', broken, '--hello-timeout', 'x']))).toEqual([
      '--policy: required (the policy file the edge enforces)',
      'listeners: give at least one of --explicit, --transparent, --sni',
      `limits.helloTimeout: ${DURATION}, got "x"`,
      `${broken}:2:1 Map keys must be unique (each key may appear once)`,
      expect.stringMatching(new RegExp(`^${broken}:4:1 .* \\(check the YAML syntax\\)$`)),
    ]);
    const list = await dir.write('list.yaml', '- policy: egress.yaml\n');
    expect(
      problemsOf(() => parseEdgeArgs(['--config', list, '--policy', 'p.yaml', '--sni', ':443'])),
    ).toEqual([`${list}:1:1 expected a mapping of settings at the top level`]);
  });
});
