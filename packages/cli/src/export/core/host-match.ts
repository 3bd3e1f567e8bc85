import { compileHostPattern, type HostPattern } from '@egress-guard/policy';

/**
 * One entry of a rule's `hosts`, with its exact meaning spelled out for engines (policy.md, host-pattern.ts):
 * - `exact`: that name only (lower case, A-label, no trailing dot). `example.com` does not match `a.example.com`.
 * - `one-label`: exactly one label before `suffix`, never the apex, never two labels. `labelGlob` (lower
 *   case) narrows that label (`api-*`): `*` any run of label characters, `?` one.
 * - `multi-label`: one or more labels before `suffix` (`**.x`), never the apex `x` itself.
 * Names are compared after normalisation: case-insensitive, one trailing dot ignored.
 */
export type HostMatch =
  | { kind: 'exact'; name: string; text: string }
  | { kind: 'one-label'; suffix: string; labelGlob: string | undefined; text: string }
  | { kind: 'multi-label'; suffix: string; text: string };

/** The export form of a compiled pattern. */
export function hostMatchOf(pattern: HostPattern): HostMatch {
  switch (pattern.kind) {
    case 'exact':
      return { kind: 'exact', name: pattern.name, text: pattern.text };
    case 'multi-label':
      return { kind: 'multi-label', suffix: pattern.suffix, text: pattern.text };
    case 'one-label': {
      const first = (pattern.text.toLowerCase().split('.')[0] ?? '*').trim();
      return {
        kind: 'one-label',
        suffix: pattern.suffix,
        labelGlob: pattern.label === undefined || first === '*' ? undefined : first,
        text: pattern.text,
      };
    }
  }
}

/** Compiles a host entry of a validated policy (schema validation already refused the bad ones). */
export function hostMatchFromText(text: string): HostMatch | undefined {
  const compiled = compileHostPattern(text);
  return compiled.ok ? hostMatchOf(compiled.pattern) : undefined;
}

/** How a pattern reads in a comment: `*.example.com (one label, not the apex)`. */
export function describeHostMatch(match: HostMatch): string {
  switch (match.kind) {
    case 'exact':
      return `${match.name} (exactly)`;
    case 'one-label':
      return `${match.labelGlob ?? '*'}.${match.suffix} (one label, not ${match.suffix} itself)`;
    case 'multi-label':
      return `**.${match.suffix} (one or more labels, not ${match.suffix} itself)`;
  }
}

/** The normalised form, as a stable key (sorting, dedup). */
export function hostMatchKey(match: HostMatch): string {
  switch (match.kind) {
    case 'exact':
      return match.name;
    case 'one-label':
      return `${match.labelGlob ?? '*'}.${match.suffix}`;
    case 'multi-label':
      return `**.${match.suffix}`;
  }
}

/**
 * Whether two patterns may match a common name. Over-approximates (true when unsure): callers use it to drop
 * allows that a deny might carve into, so a false "overlap" only makes the export narrower, never wider.
 */
export function hostMatchesMayOverlap(a: HostMatch, b: HostMatch): boolean {
  if (a.kind === 'exact' && b.kind === 'exact') return a.name === b.name;
  const nameOf = (m: HostMatch) => (m.kind === 'exact' ? m.name : m.suffix);
  const an = nameOf(a);
  const bn = nameOf(b);
  return an === bn || an.endsWith(`.${bn}`) || bn.endsWith(`.${an}`);
}
