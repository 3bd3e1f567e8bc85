import type { HostMatch } from '../core/index.js';

/** A `toFQDNs` / `rules.dns` entry. */
export type FqdnSelector = { matchName: string } | { matchPattern: string };

/**
 * One host pattern as a Cilium FQDN selector, or why it has none.
 *
 * Cilium's `matchPattern` (pkg/fqdn/matchpattern): `*` stands for zero or more DNS characters inside one label,
 * so `*.example.com` is one label, as ours, and `api-*.example.com` a glob within one label, as ours. `**.` is
 * one or more labels only from Cilium 1.19; before, it is read as `*.` (one label): narrower than our `**.`,
 * never wider, so it is written as `**.` with a note. `?`, brackets and braces have no Cilium form.
 */
export type FqdnSelectorResult =
  | { ok: true; selector: FqdnSelector; note?: string }
  | { ok: false; reason: string; choices: string[] };

export function fqdnSelector(pattern: HostMatch): FqdnSelectorResult {
  switch (pattern.kind) {
    case 'exact':
      return { ok: true, selector: { matchName: pattern.name } };
    case 'multi-label':
      return {
        ok: true,
        selector: { matchPattern: `**.${pattern.suffix}` },
        note: `"**.${pattern.suffix}" matches one or more labels from Cilium 1.19 on; earlier versions read it as "*.${pattern.suffix}" (one label: narrower)`,
      };
    case 'one-label': {
      const glob = pattern.labelGlob;
      if (glob === undefined) return { ok: true, selector: { matchPattern: `*.${pattern.suffix}` } };
      if (!/^[a-z0-9_*-]+$/.test(glob)) {
        return {
          ok: false,
          reason: `Cilium's matchPattern has only "*": the label glob "${glob}" has no Cilium form`,
          choices: [`list the names "${glob}" stands for`, `use "*" in the glob where that is acceptable`],
        };
      }
      return { ok: true, selector: { matchPattern: `${glob}.${pattern.suffix}` } };
    }
  }
}
