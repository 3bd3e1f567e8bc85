import { decideConnection, type Policy } from '@egress-guard/policy';
import fc from 'fast-check';
import { expect } from 'vitest';

/**
 * Server names near the patterns of a policy: its suffixes with zero to three labels in front, labels at the
 * edges of validity (a hyphen at either end, underscores, 64 characters, IDN, broken punycode), any case,
 * sometimes a trailing dot.
 */
export function serverNamesNear(suffixes: readonly string[]): fc.Arbitrary<string> {
  const label = fc.oneof(
    fc.constantFrom(
      'api',
      'API',
      'api-eu',
      'api-',
      '-x',
      'admin',
      'ADMIN',
      'www',
      'a_b',
      'xn--bcher-kva',
      'xn--zz',
      's3',
    ),
    fc.stringMatching(/^[a-z0-9-]{1,6}$/),
    fc.constant('c'.repeat(64)),
  );
  return fc
    .tuple(fc.array(label, { maxLength: 3 }), fc.constantFrom(...suffixes), fc.boolean(), fc.boolean())
    .map(([ls, s, dot, upper]) => {
      const name = `${[...ls, s].join('.')}${dot ? '.' : ''}`;
      return upper ? name.toUpperCase() : name;
    });
}

/**
 * The engine lets a TLS connection through only if `egress-guard check` allows it; where the engine refuses
 * what the policy allows, it is the documented narrowing (an IDN label under a wildcard).
 */
export function expectNeverWider(
  policy: Policy,
  engineAllows: (serverName: string) => boolean,
  suffixes: readonly string[],
  port = 443,
): void {
  fc.assert(
    fc.property(serverNamesNear(suffixes), (sni) => {
      const decision = decideConnection(policy, { transport: 'tls', host: sni, port });
      if (engineAllows(sni)) expect(decision.allowed, sni).toBe(true);
      else if (decision.allowed) expect(sni.toLowerCase(), sni).toMatch(/(^|\.)xn--/);
    }),
    { numRuns: 4000 },
  );
}
