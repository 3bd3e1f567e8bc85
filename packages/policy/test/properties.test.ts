import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileHostPattern,
  createPolicy,
  type Destination,
  hostPatternMatches,
  normaliseHostName,
} from '../src/index.js';

// A small universe so that random rules and random hosts collide often.
const label = fc.constantFrom('api', 'www', 'a', 'b', 'api-eu', 'x1', 'cdn');
const domain = fc.constantFrom('example.com', 'example.org', 'corp.example.net', 'evil.io');
const hostName = fc
  .tuple(fc.array(label, { minLength: 0, maxLength: 3 }), domain)
  .map(([labels, d]) => [...labels, d].join('.'));
const pattern = fc.oneof(
  hostName,
  domain.map((d) => `*.${d}`),
  domain.map((d) => `**.${d}`),
  domain.map((d) => `api-*.${d}`),
);
const scheme = fc.constantFrom('https' as const, 'http' as const);
const rule = (kind: 'allow' | 'deny') =>
  fc
    .record(
      {
        hosts: fc.array(pattern, { minLength: 1, maxLength: 3 }),
        schemes: fc.option(fc.uniqueArray(scheme, { minLength: 1, maxLength: 2 }), { nil: undefined }),
        methods: fc.option(fc.uniqueArray(fc.constantFrom('GET', 'POST'), { minLength: 1 }), {
          nil: undefined,
        }),
      },
      { requiredKeys: ['hosts'] },
    )
    .map((r) => ({ ...r, kind }));
const destination = fc.record({
  scheme,
  host: hostName,
  method: fc.constantFrom('GET', 'POST', 'PUT'),
});

type RuleDoc = {
  hosts: string[];
  schemes?: ('https' | 'http')[] | undefined;
  methods?: string[] | undefined;
};
const named = (rules: RuleDoc[], prefix: string) =>
  rules.map((r, i) => {
    const out: Record<string, unknown> = { name: `${prefix}${i}`, hosts: r.hosts };
    if (r.schemes) out.schemes = r.schemes;
    if (r.methods) out.methods = r.methods;
    return out;
  });

function reference(
  allow: RuleDoc[],
  deny: RuleDoc[],
  d: { scheme: 'https' | 'http'; host: string; method: string },
) {
  const hostMatch = (r: RuleDoc) =>
    r.hosts.some((h) => {
      const c = compileHostPattern(h);
      return c.ok && hostPatternMatches(c.pattern, d.host);
    });
  const dims = (r: RuleDoc, kind: 'allow' | 'deny') =>
    (r.schemes ? r.schemes.includes(d.scheme) : kind === 'deny' || d.scheme === 'https') &&
    (!r.methods || r.methods.includes(d.method));
  if (deny.some((r) => hostMatch(r) && dims(r, 'deny'))) return 'deny';
  return allow.some((r) => hostMatch(r) && dims(r, 'allow')) ? 'allow' : 'none';
}

const port = (s: 'https' | 'http') => (s === 'https' ? 443 : 80);

describe('decider properties', () => {
  it('the indexed decider agrees with a brute-force reading of the rules', () => {
    fc.assert(
      fc.property(
        fc.array(rule('allow'), { maxLength: 6 }),
        fc.array(rule('deny'), { maxLength: 3 }),
        fc.array(destination, { minLength: 1, maxLength: 8 }),
        (allow, deny, dests) => {
          const p = createPolicy({ version: 1, allow: named(allow, 'a'), deny: named(deny, 'd') });
          for (const d of dests) {
            const got = p.decide({ ...d, port: port(d.scheme) } as Destination);
            const want = reference(allow, deny, d);
            expect(got.allowed).toBe(want === 'allow');
            if (want === 'deny') expect(got.reason).toBe('explicit_deny');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('deny always wins: adding a matching deny rule never leaves a destination allowed', () => {
    fc.assert(
      fc.property(fc.array(rule('allow'), { minLength: 1, maxLength: 6 }), destination, (allow, d) => {
        const p = createPolicy({
          version: 1,
          allow: named(allow, 'a'),
          deny: [{ name: 'blk', hosts: [d.host] }],
        });
        const got = p.decide({ ...d, port: port(d.scheme) } as Destination);
        expect(got.allowed).toBe(false);
        expect(got.reason).toBe('explicit_deny');
      }),
      { numRuns: 300 },
    );
  });

  it('rule order changes only which rule is reported, never whether it is allowed', () => {
    fc.assert(
      fc.property(
        fc.array(rule('allow'), { minLength: 1, maxLength: 6 }),
        fc.array(rule('deny'), { maxLength: 2 }),
        destination,
        (allow, deny, d) => {
          const p1 = createPolicy({ version: 1, allow: named(allow, 'a'), deny: named(deny, 'd') });
          const p2 = createPolicy({
            version: 1,
            allow: named(allow, 'a').reverse(),
            deny: named(deny, 'd').reverse(),
          });
          const dest = { ...d, port: port(d.scheme) } as Destination;
          expect(p2.decide(dest).allowed).toBe(p1.decide(dest).allowed);
          expect(p2.decide(dest).reason === 'explicit_deny').toBe(p1.decide(dest).reason === 'explicit_deny');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('no host outside a pattern’s literal suffix ever matches it', () => {
    fc.assert(
      fc.property(pattern, fc.domain(), (pat, host) => {
        const p = createPolicy({ version: 1, allow: [{ name: 'p', hosts: [pat] }] });
        const d = p.decide({ scheme: 'https', host, port: 443 });
        if (!d.allowed) return;
        const literal = pat.replace(/^(\*\*|\*|api-\*)\./, '');
        const name = normaliseHostName(host)!;
        expect(name === literal || name.endsWith(`.${literal}`)).toBe(true);
        if (pat.startsWith('*') || pat.startsWith('api-*')) expect(name).not.toBe(literal);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('normalisation properties', () => {
  const anyHost = fc.oneof(
    fc.domain(),
    fc.webUrl().map((u) => new URL(u).hostname),
    fc.string(),
    fc.string({ unit: 'grapheme' }).map((s) => `${s}.example`),
  );
  it('normalising twice changes nothing', () => {
    fc.assert(
      fc.property(anyHost, (h) => {
        const once = normaliseHostName(h);
        if (once !== undefined) expect(normaliseHostName(once)).toBe(once);
      }),
      { numRuns: 3000 },
    );
  });
  it('agrees with the WHATWG URL parser on every name it accepts', () => {
    fc.assert(
      fc.property(fc.domain(), (h) => {
        const once = normaliseHostName(h);
        if (once !== undefined) expect(new URL(`https://${h}/`).hostname.replace(/\.$/, '')).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });
});
