/**
 * What a policy decides that an engine may not enforce. An export that leaves one unenforced is weaker
 * than the policy: it fails unless `--allow-weaker` names every such dimension.
 */
export const WEAKER_DIMENSIONS = {
  methods: 'HTTP methods (allow and deny rules with methods)',
  paths: 'HTTP paths (allow and deny rules with paths)',
  'tls-floor': 'the TLS floor (tls.minVersion)',
  'report-mode': 'report mode (the engine enforces where the policy only reports)',
  services: 'per-service sections (the engine does not know which service is calling)',
  addresses: 'deny rules on addresses (the engine resolves names itself and does not check the address)',
  'private-addresses': 'special-purpose addresses (privateAddresses: deny) for names that resolve to them',
  'destination-binding':
    'the address behind the name (the connection goes where the client chose: an allowed SNI or Host can be presented to any address)',
  'server-name':
    'the name and protocol on the connection (the engine opens the addresses allowed names resolve to, for any protocol and any name sharing them)',
  'name-validity':
    'valid names under wildcards (the engine\'s wildcard also matches names the policy denies as invalid: a label with "-" at an edge, broken punycode, an over-long label or name)',
} as const;

export type WeakerDimension = keyof typeof WEAKER_DIMENSIONS;

export const WEAKER_DIMENSION_NAMES = Object.keys(WEAKER_DIMENSIONS) as WeakerDimension[];

/**
 * Parses `--allow-weaker` values: comma-separated names, the flag repeatable
 * (`--allow-weaker methods,paths --allow-weaker tls-floor`). Throws a one-line message for an unknown name.
 */
export function parseAllowWeaker(values: readonly string[]): Set<WeakerDimension> {
  const out = new Set<WeakerDimension>();
  for (const value of values) {
    for (const raw of value.split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      if (!(name in WEAKER_DIMENSIONS)) {
        throw new Error(
          `--allow-weaker: unknown dimension "${name}" (one of ${WEAKER_DIMENSION_NAMES.join(', ')})`,
        );
      }
      out.add(name as WeakerDimension);
    }
  }
  return out;
}
