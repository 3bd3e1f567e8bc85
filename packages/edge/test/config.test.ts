/**
 * Options: defaults in one place, validation listing every problem, and the config file (YAML or JSON;
 * its own parser is covered in config-file.test.ts). The flags of `egress-guard edge` are read by the CLI
 * (packages/cli/test/edge-args.test.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  ConfigFileError,
  EDGE_DEFAULTS,
  EdgeConfigError,
  parseConfigText,
  resolveEdgeOptions,
} from '../src/index.js';
import { policyOf } from './helpers/edge-kit.js';

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

  it('refuses anchors and aliases as docs/edge.md says, and places errors', () => {
    expect(() => parseConfigText('a: &anchor 1\nb: *anchor\n', 'edge.yaml')).toThrow(
      /^edge\.yaml:1:4 anchor &anchor is not accepted \(write the value out where it is used\)\nedge\.yaml:2:4 alias \*anchor is not accepted/,
    );
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
      'colour: unknown option (known options here: policy, listeners, admin, limits, dns, watch, watchDebounce, signals, events, logger, destination, resolver, lookup, registry, defaultMetrics, workers, proxyAuth)',
    ]);
  });

  it('throws an EdgeConfigError whose message lists the problems', () => {
    expect(() => resolveEdgeOptions({ policy, listeners: [{ kind: 'sni', port: -1 }] })).toThrow(
      'invalid edge options: 1 problem\n  listeners[0].port: expected a port 0-65535, got -1',
    );
  });
});
