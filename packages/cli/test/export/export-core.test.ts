import { decideConnection, parsePolicy } from '@egress-guard/policy';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildExportPlan,
  ExportError,
  type ExportProblem,
  type ExportTarget,
  type Listener,
  parseAllowWeaker,
  type TargetSemantics,
} from '../../src/export/core/index.js';
import { nginxTarget } from '../../src/export/nginx/nginx-target.js';
import { EXPORT_TARGETS } from '../../src/export/targets.js';

/*
 * The core's analysis, target-independent: the ordered match list of a listener is run here with
 * JavaScript regexes (the same syntax subset the engines read) against the decider, for many names; and
 * every refusal carries the rule, the reason and the choices.
 */

const WEAKER = parseAllowWeaker(['tls-floor,private-addresses']);

/** A `patterns` target with every construct, no deny precedence, dialling names; `semantics` overrides. */
function patternsTarget(semantics: Partial<TargetSemantics>): ExportTarget {
  return {
    name: 'test-engine',
    summary: 'test target',
    semantics: {
      hostMatching: 'patterns',
      constructs: { oneLabel: true, labelGlob: true, multiLabel: true },
      denyPrecedence: false,
      transports: ['tls', 'http'],
      enforces: [],
      auditMode: false,
      destination: { exact: 'resolves-name', wildcard: 'resolves-name' },
      wildcardsRefuseInvalidNames: true,
      ...semantics,
    },
    render: () => '',
  };
}

/** The problems of the ExportError `build` throws (fails the test if it throws nothing else). */
function problemsOf(build: () => unknown): readonly ExportProblem[] {
  try {
    build();
  } catch (error) {
    if (error instanceof ExportError) return error.problems;
    throw error;
  }
  throw new Error('expected an ExportError');
}

/** First match wins, no match denies: what nginx's map, HAProxy's ACL list and Squid's http_access do. */
function firstMatchAllows(listener: Listener, name: string): boolean {
  for (const e of listener.entries) if (new RegExp(e.regex, 'i').test(name)) return e.action === 'allow';
  return false;
}

const POLICY = `
version: 1
allow:
  - name: exact
    hosts: [api.example.com, example.net]
  - name: one-label
    hosts: ["*.example.com"]
  - name: glob
    hosts: ["api-?-*.example.org"]
  - name: any-depth
    hosts: ["**.example.net"]
deny:
  - name: carve
    hosts: [secret.example.com, "**.internal.example.net", "*.x.example.net"]
`;

describe('ordered match lists', () => {
  const policy = parsePolicy(POLICY);
  const plan = buildExportPlan(policy, nginxTarget, { allowWeaker: WEAKER });
  const listener = plan.listeners[0]!;

  const label = fc.oneof(
    fc.constantFrom(
      'api',
      'secret',
      'internal',
      'x',
      'api-1-z',
      'api-1-',
      'api--z',
      'xn--bcher-kva',
      '-a',
      'a-',
      'A',
      'Api',
    ),
    fc.stringMatching(/^[a-zA-Z0-9_-]{1,12}$/),
    fc.constant('a'.repeat(64)),
  );
  const suffix = fc.constantFrom(
    'example.com',
    'example.net',
    'example.org',
    'evil.io',
    'example.com.evil.io',
    'com',
  );
  const name = fc
    .tuple(fc.array(label, { minLength: 0, maxLength: 3 }), suffix, fc.boolean())
    .map(([labels, s, dot]) => `${[...labels, s].join('.')}${dot ? '.' : ''}`);

  it('never allows what the policy denies, and allows what it allows but for xn-- under a wildcard', () => {
    fc.assert(
      fc.property(name, (n) => {
        const policyAllows = decideConnection(policy, { transport: 'tls', host: n, port: 443 }).allowed;
        const engineAllows = firstMatchAllows(listener, n);
        if (engineAllows) expect(policyAllows, n).toBe(true);
        if (policyAllows && !engineAllows) expect(n.toLowerCase(), n).toMatch(/(^|\.)xn--/);
      }),
      { numRuns: 2000 },
    );
  });

  it('puts deny rules before exact allows, and the guards before wildcard allows', () => {
    const kinds = listener.entries.map((e) => `${e.action}:${e.rule ?? `guard:${e.pattern}`}`);
    expect(kinds.slice(0, 3)).toEqual(['deny:carve', 'deny:carve', 'deny:carve']);
    const firstGuard = kinds.findIndex((k) => k.includes('guard:'));
    const firstWildAllow = listener.entries.findIndex((e) => e.action === 'allow' && e.pattern.includes('*'));
    expect(firstGuard).toBeGreaterThan(kinds.lastIndexOf('allow:exact'));
    expect(firstWildAllow).toBeGreaterThan(firstGuard);
  });
});

describe('refusals name the rule, the reason and the choices', () => {
  const refused = (text: string, allowWeaker = WEAKER) => {
    try {
      buildExportPlan(parsePolicy(text), nginxTarget, { allowWeaker });
    } catch (error) {
      expect(error).toBeInstanceOf(ExportError);
      return (error as ExportError).problems;
    }
    throw new Error('export was not refused');
  };

  it('a label glob with braces is not translated', () => {
    const [p] = refused('version: 1\nallow:\n  - name: braces\n    hosts: ["{a,b}.example.com"]\n');
    expect(p).toMatchObject({ rule: 'braces' });
    expect(p!.reason).toMatch(/brackets or braces/);
    expect(p!.choices.join(' ')).toMatch(/list the names/);
  });

  it('a port range too wide for one listener per port', () => {
    const [p] = refused(
      'version: 1\nallow:\n  - name: wide\n    hosts: [db.example.com]\n    schemes: [tls]\n    ports: ["1000-2000"]\n',
    );
    expect(p).toMatchObject({ rule: 'wide' });
    expect(p!.reason).toMatch(/1001 listeners/);
  });

  it('methods and paths without --allow-weaker', () => {
    const problems = refused(
      'version: 1\nallow:\n  - name: posts\n    hosts: [api.example.com]\n    methods: [POST]\n    paths: ["/v1/**"]\n',
    );
    expect(problems.map((p) => p.reason.split(':')[0])).toEqual([
      'HTTP methods (allow and deny rules with methods)',
      'HTTP paths (allow and deny rules with paths)',
    ]);
    expect(problems[0]!.choices[0]).toBe('accept it: --allow-weaker methods,paths');
    expect(problems[0]!.reason).toMatch(/not enforced by nginx/);
  });

  it('report mode, services and deny addresses are weaker dimensions too', () => {
    const problems = refused(
      'version: 1\nmode: report\nallow:\n  - name: a\n    hosts: [a.example.com]\ndeny:\n  - name: metadata\n    addresses: [169.254.169.254/32]\nservices:\n  s:\n    allow:\n      - name: b\n        hosts: [b.example.com]\n',
    );
    expect(problems.map((p) => `${p.rule}:${p.reason.split(':')[0]}`).sort()).toEqual([
      'metadata:deny rules on addresses (the engine resolves names itself and does not check the address)',
      'undefined:per-service sections (the engine does not know which service is calling)',
      'undefined:report mode (the engine enforces where the policy only reports)',
    ]);
  });

  it('an unknown --service', () => {
    const policy = parsePolicy('version: 1\nallow:\n  - name: a\n    hosts: [a.example.com]\n');
    expect(() => buildExportPlan(policy, nginxTarget, { service: 'nope', allowWeaker: WEAKER })).toThrow(
      /the policy has no service "nope" \(choices: one of: \(no services\); omit --service\)/,
    );
  });
});

describe('targets without deny precedence or some wildcards narrow, with a warning', () => {
  const allowListOnly: ExportTarget = {
    name: 'allowlist-only',
    summary: 'test target',
    semantics: {
      hostMatching: 'patterns',
      constructs: { oneLabel: true, labelGlob: false, multiLabel: false },
      denyPrecedence: false,
      transports: ['tls'],
      enforces: [],
      auditMode: false,
      destination: { exact: 'resolves-name', wildcard: 'resolves-name' },
      wildcardsRefuseInvalidNames: true,
    },
    render: () => '',
  };

  it('drops the allows a deny carves into, and the constructs it lacks; keeps the rest', () => {
    const plan = buildExportPlan(
      parsePolicy(`
version: 1
allow:
  - name: a
    hosts: ["*.example.com", ok.example.org, "api-*.example.org", "**.example.net", secret.example.org]
deny:
  - name: d
    hosts: [secret.example.com, secret.example.org]
`),
      allowListOnly,
      { allowWeaker: WEAKER },
    );
    expect(plan.listeners[0]!.allowed.map((h) => h.match.text)).toEqual(['ok.example.org']);
    const messages = plan.warnings.map((w) => w.message).join('\n');
    expect(messages).toMatch(/"\*\.example\.com" dropped: deny rule "d" carves "secret\.example\.com"/);
    expect(messages).toMatch(/"secret\.example\.org" dropped: deny rule "d"/);
    expect(messages).toMatch(/"api-\*\.example\.org" dropped: allowlist-only has no exact form/);
    expect(messages).toMatch(/"\*\*\.example\.net" dropped/);
  });
});

describe('--allow-weaker syntax', () => {
  it('takes comma lists, repeated', () => {
    expect([...parseAllowWeaker(['methods,paths', 'tls-floor'])].sort()).toEqual([
      'methods',
      'paths',
      'tls-floor',
    ]);
  });
  it('refuses unknown names with the list', () => {
    expect(() => parseAllowWeaker(['method'])).toThrow(/unknown dimension "method" \(one of methods, paths/);
  });
});

describe('TLS floors on ordered entries', () => {
  it("each allow entry carries its rule's floor, raised (with a warning) where a stricter rule overlaps", () => {
    const plan = buildExportPlan(
      parsePolicy(`
version: 1
allow:
  - name: strict-wildcard
    hosts: ["*.example.com"]
    tls: { minVersion: TLSv1.3 }
  - name: lax-exact
    hosts: [api.example.com, other.example.org]
`),
      nginxTarget,
      { allowWeaker: parseAllowWeaker(['private-addresses']) },
    );
    const floors = Object.fromEntries(
      plan.listeners[0]!.entries.filter((e) => e.action === 'allow').map((e) => [e.pattern, e.tlsMinVersion]),
    );
    expect(floors).toEqual({
      'api.example.com': 'TLSv1.3',
      'other.example.org': 'TLSv1.2',
      '*.example.com': 'TLSv1.3',
    });
    expect(plan.warnings.map((w) => w.message)).toContain(
      'TLS (SNI) port 443: "api.example.com" needs TLSv1.3, the floor of another rule whose names overlap it (narrower)',
    );
    // nginx enforces the floor: it is not among the weaker dimensions.
    expect(plan.weaker.map((w) => w.dimension)).not.toContain('tls-floor');
  });
});

describe('where allowed connections go: destination-binding and server-name', () => {
  const POLICY_WITH_WILDCARDS = `
version: 1
allow:
  - name: exact-only
    hosts: [api.example.com]
  - name: wildcard
    hosts: ["**.example.org", example.org]
    schemes: [https, http]
  - name: dropped-everywhere
    hosts: ["*.example.net"]
deny:
  - name: carve
    hosts: [secret.example.net]
`;
  const targetGoingTo = (destination: TargetSemantics['destination']) => patternsTarget({ destination });
  const findings = (destination: TargetSemantics['destination'], extra: string[] = []) =>
    buildExportPlan(parsePolicy(POLICY_WITH_WILDCARDS), targetGoingTo(destination), {
      allowWeaker: parseAllowWeaker(['tls-floor,private-addresses', ...extra]),
    }).weaker.filter((w) => w.dimension === 'destination-binding' || w.dimension === 'server-name');

  it('an engine that dials the allowed name itself leaves neither unenforced', () => {
    expect(findings({ exact: 'resolves-name', wildcard: 'resolves-name' })).toEqual([]);
  });

  it('a passive engine: destination-binding per allow rule, with the exported names and ports', () => {
    const all = findings({ exact: 'client-address', wildcard: 'client-address' }, ['destination-binding']);
    expect(all).toEqual([
      {
        rule: 'exact-only',
        dimension: 'destination-binding',
        detail: 'api.example.com on TLS 443 goes to whatever address the client chose',
      },
      {
        rule: 'wildcard',
        dimension: 'destination-binding',
        detail: '**.example.org, example.org on TLS 443, HTTP 80 goes to whatever address the client chose',
      },
      // "dropped-everywhere" opens nothing (the deny carves into its only pattern): it weakens nothing.
    ]);
  });

  it('an address-level engine: server-name, on TCP ports', () => {
    const all = findings({ exact: 'resolved-addresses', wildcard: 'resolved-addresses' }, ['server-name']);
    expect(all.map((w) => [w.rule, w.dimension, w.detail])).toEqual([
      [
        'exact-only',
        'server-name',
        'the addresses of api.example.com are open on TCP 443 to any protocol and name',
      ],
      [
        'wildcard',
        'server-name',
        'the addresses of **.example.org, example.org are open on TCP 80, TCP 443 to any protocol and name',
      ],
    ]);
  });

  it('exact names resolved, wildcards to the client address (Istio): only the rules with a wildcard', () => {
    const all = findings({ exact: 'resolves-name', wildcard: 'client-address' }, ['destination-binding']);
    expect(all.map((w) => `${w.rule}: ${w.detail}`)).toEqual([
      'wildcard: **.example.org on TLS 443, HTTP 80 goes to whatever address the client chose',
    ]);
  });

  it('refused without --allow-weaker, naming each rule and the dimension to accept', () => {
    const plan = () =>
      buildExportPlan(
        parsePolicy(POLICY_WITH_WILDCARDS),
        targetGoingTo({ exact: 'client-address', wildcard: 'client-address' }),
        {
          allowWeaker: parseAllowWeaker(['tls-floor,private-addresses']),
        },
      );
    expect(plan).toThrow(ExportError);
    const problems = problemsOf(plan);
    expect(problems.map((p) => p.rule)).toEqual(['exact-only', 'wildcard']);
    expect(problems[0]!.reason).toMatch(/^the address behind the name .*: not enforced by test-engine/);
    expect(problems[0]!.choices[0]).toBe('accept it: --allow-weaker destination-binding');
  });
});

/** Rules with and without wildcards, one of them dropped by a deny on `patterns` targets. */
const WILDCARD_POLICY = `
version: 1
allow:
  - name: exact-only
    hosts: [api.example.com]
  - name: wildcards
    hosts: ["**.example.org", "*.example.com", example.org]
    schemes: [https, http]
  - name: glob-on-8443
    hosts: ["api-*.example.io"]
    ports: [8443]
  - name: dropped-everywhere
    hosts: ["*.example.net"]
deny:
  - name: carve
    hosts: [secret.example.net]
`;

describe('name-validity: wildcards that also match names the policy denies as invalid', () => {
  const targetWhoseWildcards = (refuseInvalid: boolean) =>
    patternsTarget({ wildcardsRefuseInvalidNames: refuseInvalid });
  const plan = (refuseInvalid: boolean, accept: string[]) =>
    buildExportPlan(parsePolicy(WILDCARD_POLICY), targetWhoseWildcards(refuseInvalid), {
      allowWeaker: parseAllowWeaker(['tls-floor,private-addresses', ...accept]),
    });

  it('an engine whose wildcards refuse invalid names raises nothing', () => {
    expect(plan(true, []).weaker.filter((w) => w.dimension === 'name-validity')).toEqual([]);
  });

  it('otherwise: per allow rule with an exported wildcard, naming its wildcard patterns and ports', () => {
    expect(plan(false, ['name-validity']).weaker.filter((w) => w.dimension === 'name-validity')).toEqual([
      {
        rule: 'wildcards',
        dimension: 'name-validity',
        detail:
          '**.example.org, *.example.com on TLS 443, HTTP 80 also matches names the policy denies as invalid',
      },
      {
        rule: 'glob-on-8443',
        dimension: 'name-validity',
        detail: 'api-*.example.io on TLS 8443 also matches names the policy denies as invalid',
      },
      // "exact-only" has no wildcard; "dropped-everywhere" exports none (the deny carves into it).
    ]);
  });

  it('a pattern the core drops for lack of an exact form raises nothing', () => {
    const noMultiLabel = patternsTarget({
      wildcardsRefuseInvalidNames: false,
      constructs: { oneLabel: false, labelGlob: false, multiLabel: true },
    });
    const weaker = buildExportPlan(parsePolicy(WILDCARD_POLICY), noMultiLabel, {
      allowWeaker: parseAllowWeaker(['tls-floor,private-addresses,name-validity']),
    }).weaker.filter((w) => w.dimension === 'name-validity');
    expect(weaker.map((w) => `${w.rule}: ${w.detail}`)).toEqual([
      'wildcards: **.example.org on TLS 443, HTTP 80 also matches names the policy denies as invalid',
    ]);
  });

  it('refused without --allow-weaker name-validity, naming each rule', () => {
    const problems = problemsOf(() => plan(false, []));
    expect(problems.map((p) => p.rule)).toEqual(['wildcards', 'glob-on-8443']);
    expect(problems[0]!.reason).toMatch(/^valid names under wildcards .*: not enforced by test-engine/);
    expect(problems[0]!.choices[0]).toBe('accept it: --allow-weaker name-validity');
  });
});

describe('name-validity on each target', () => {
  const EVERY_DIMENSION = parseAllowWeaker([
    'methods,paths,tls-floor,report-mode,services,addresses,private-addresses',
    'destination-binding,server-name,name-validity',
  ]);
  /**
   * The rules raising name-validity: none where the wildcards refuse invalid names (the ordered engines'
   * guards); every rule with an exported wildcard where they take any label characters (Cilium's `*`;
   * Istio's `*.`, which carries only `**.` patterns: the core drops the others).
   */
  const RAISED_FOR: Readonly<Record<string, readonly string[]>> = {
    nginx: [],
    haproxy: [],
    squid: [],
    envoy: [],
    'aws-network-firewall': [],
    cilium: ['wildcards', 'glob-on-8443'],
    istio: ['wildcards'],
  };
  const INVALID_NAMES = [
    '-a.example.org',
    'a-.example.com',
    'xn--zz.example.org',
    `${'a'.repeat(64)}.example.com`,
    `${'a.'.repeat(124)}example.org`,
  ];

  it('lists every target', () => {
    expect(Object.keys(RAISED_FOR).sort()).toEqual(Object.keys(EXPORT_TARGETS).sort());
  });

  for (const [name, target] of Object.entries(EXPORT_TARGETS)) {
    it(`${name}: ${RAISED_FOR[name]?.length ? 'raised for the rules with exported wildcards' : 'raises nothing'}`, () => {
      const plan = buildExportPlan(parsePolicy(WILDCARD_POLICY), target, {
        allowWeaker: EVERY_DIMENSION,
      });
      const rules = plan.weaker.filter((w) => w.dimension === 'name-validity').map((w) => w.rule);
      expect(rules).toEqual(RAISED_FOR[name]);
      if (target.semantics.hostMatching === 'ordered-regex') {
        // The declaration holds because the core's guards refuse invalid names before the wildcard allows.
        for (const listener of plan.listeners) {
          for (const invalid of INVALID_NAMES)
            expect(firstMatchAllows(listener, invalid), invalid).toBe(false);
          if (listener.port === 443) expect(firstMatchAllows(listener, 'a.b.example.org')).toBe(true);
        }
      }
    });
  }
});
