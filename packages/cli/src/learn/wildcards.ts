import { compileHostPattern } from '@egress-guard/policy';
import { emptyObserved, mergeInto, type Observed } from './observe.js';

/** Default number of distinct sibling names that become one `*.parent` rule. */
export const DEFAULT_WILDCARD_THRESHOLD = 5;

/**
 * Groups sibling host names (`a.example.com`, `b.example.com`, ...) into one `*.example.com` entry when
 * `threshold` or more distinct names share the parent. Never into a pattern the policy refuses
 * (`*.com`, `*.co.uk`: a public suffix) nor one over a private-section suffix (`*.github.io`: any
 * customer's name), which `compileHostPattern` reports as a warning.
 */
export function groupWildcards(targets: Map<string, Observed>, threshold: number): Map<string, Observed> {
  const byParent = new Map<string, Observed[]>();
  for (const o of targets.values()) {
    // A name only looked up is not folded: many unique names under one parent, looked up and never
    // connected to, is how data leaves over DNS; a wildcard would allow the channel.
    if (o.kind !== 'host' || o.origins.size === 0) continue;
    const dot = o.target.indexOf('.');
    if (dot === -1) continue;
    const parent = o.target.slice(dot + 1);
    const list = byParent.get(parent) ?? [];
    list.push(o);
    byParent.set(parent, list);
  }
  const out = new Map(targets);
  for (const [parent, siblings] of byParent) {
    if (siblings.length < threshold) continue;
    const pattern = `*.${parent}`;
    const compiled = compileHostPattern(pattern);
    if (!compiled.ok || compiled.warning) {
      // Say why, or a reviewer will wonder why so many siblings were not folded into one rule.
      const why = `one of ${siblings.length} names under ${parent}, not grouped into ${pattern}: ${parent} is a public suffix (any other customer's names would match)`;
      for (const s of siblings) s.ungrouped = why;
      continue;
    }
    const grouped = emptyObserved(siblings[0]!.service, pattern, 'wildcard');
    for (const s of siblings) {
      mergeInto(grouped, s);
      out.delete(s.target);
    }
    out.set(pattern, grouped);
  }
  return out;
}
