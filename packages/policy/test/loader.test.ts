import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  EgressError,
  EgressPolicyError,
  loadPolicyFile,
  loadPolicyFileSync,
  parsePolicy,
  policyJsonSchema,
} from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

async function problemsOf(name: string) {
  const error = await loadPolicyFile(fixture(name)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EgressPolicyError);
  expect(error).toBeInstanceOf(EgressError);
  const e = error as EgressPolicyError;
  expect(e.code).toBe('EGRESS_ERR_POLICY');
  for (const p of e.problems) expect(p.file).toBe(fixture(name));
  return e.problems;
}

describe('loading policy files', () => {
  it('loads the full example from policy.md', async () => {
    const p = await loadPolicyFile(fixture('full-example.yaml'));
    expect(p.services).toEqual(['payments']);
    expect(p.rules.map((r) => r.name)).toEqual([
      'stripe',
      'object-storage',
      'instance-metadata',
      'paste-sites',
      'payments-bank',
    ]);
    expect(loadPolicyFileSync(fixture('full-example.yaml')).hash).toBe(p.hash);
    // *.s3.eu-west-1.amazonaws.com is a private-section public suffix: allowed, with a warning
    expect(p.warnings).toHaveLength(1);
    expect(p.warnings[0]!.path).toBe('allow[1].hosts[0]');
  });

  it('reads JSON as well as YAML, to the same hash', () => {
    const yaml = parsePolicy('version: 1\nallow:\n  - { name: a, hosts: [api.example.com] }\n');
    const json = parsePolicy(
      JSON.stringify({ version: 1, allow: [{ name: 'a', hosts: ['api.example.com'] }] }),
    );
    expect(json.hash).toBe(yaml.hash);
  });

  it.each([
    [
      'invalid-middle-glob.yaml',
      [{ path: 'allow[0].hosts[0]', line: 4, column: 13, message: /leftmost label/ }],
    ],
    [
      'invalid-public-suffix-wildcard.yaml',
      [
        { path: 'allow[0].hosts[0]', line: 4, message: /"com" is a public suffix/ },
        { path: 'allow[1].hosts[0]', line: 6, message: /"co.uk" is a public suffix/ },
        { path: 'allow[2].hosts[0]', line: 8, message: /matches every name/ },
      ],
    ],
    [
      'invalid-unknown-keys.yaml',
      [
        { path: 'allow[0]', line: 3, message: /neither hosts nor addresses/ },
        {
          path: 'allow[0].hots',
          line: 4,
          column: 5,
          message: /unknown key "hots"/,
          hint: /did you mean "hosts"/,
        },
        {
          path: 'defualts',
          line: 5,
          column: 1,
          message: /unknown key "defualts"/,
          hint: /did you mean "defaults"/,
        },
      ],
    ],
    ['invalid-verify-in-defaults.yaml', [{ path: 'defaults.tls.verify', line: 3, hint: /only on a rule/ }]],
    [
      'invalid-duration.yaml',
      [{ path: 'defaults.timeouts.connect', line: 3, message: /not a duration/, hint: /250ms/ }],
    ],
    [
      'invalid-duplicate-rule-name.yaml',
      [{ path: 'services.payments.allow[0].name', line: 8, message: /already used at allow\.0/ }],
    ],
    ['invalid-tcp-without-ports.yaml', [{ path: 'allow[0].schemes', line: 5, message: /no default port/ }]],
    ['invalid-methods-on-tcp.yaml', [{ path: 'allow[0].methods', line: 7, message: /HTTP schemes only/ }]],
    ['invalid-cidr-host-bits.yaml', [{ path: 'allow[0].addresses[0]', line: 4, message: /10\.0\.0\.0\/8/ }]],
    ['invalid-yaml-syntax.yaml', [{ path: '', line: 5, message: /end with a \]/ }]],
    [
      'invalid-many-problems.yaml',
      [
        { path: 'version', line: 1 },
        { path: 'mode', line: 2 },
        { path: 'allow[0]', line: 4, message: /neither hosts nor addresses/ },
        { path: 'allow[1].ports[0]', line: 7, message: /70000/ },
        { path: 'allow[1].ports[1]', line: 7, message: /90-80/ },
        { path: 'allow[2].schemes[0]', line: 10, message: /a scheme is one of/ },
      ],
    ],
  ])('%s: every problem, with its place', async (name, expected) => {
    const problems = await problemsOf(name);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((want, i) => {
      const got = problems[i]!;
      const { message, hint, ...exact } = want as { message?: RegExp; hint?: RegExp } & Record<
        string,
        unknown
      >;
      expect(got).toMatchObject(exact);
      if (message) expect(got.message).toMatch(message);
      if (hint) expect(got.hint).toMatch(hint);
    });
  });

  it('says clearly when the file is missing', async () => {
    const problems = await problemsOf('does-not-exist.yaml');
    expect(problems[0]!.message).toBe('file not found');
  });

  it('formats every problem as file:line:column in the error message', async () => {
    const error = await loadPolicyFile(fixture('invalid-many-problems.yaml')).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/6 problems/);
    expect((error as Error).message).toMatch(/invalid-many-problems\.yaml:7:\d+ allow\[1\]\.ports\[0\]/);
  });

  it('exports a JSON Schema that describes the shape', () => {
    const schema = policyJsonSchema();
    expect(schema.$schema).toMatch(/json-schema\.org/);
    const props = schema.properties as Record<string, unknown>;
    expect(Object.keys(props)).toEqual(
      expect.arrayContaining(['version', 'mode', 'reportUntil', 'defaults', 'allow', 'deny', 'services']),
    );
    expect(schema.additionalProperties).toBe(false);
  });
});
