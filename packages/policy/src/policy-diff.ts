import { canonicalJson } from './canonical-json.js';
import type { PolicyDiffSummary } from './events.js';
import type { Policy } from './policy.js';

/** Rules added, removed and changed between two policies, named `service/rule` inside services. */
export function diffPolicies(previous: Policy | undefined, next: Policy): PolicyDiffSummary {
  const key = (r: Policy['rules'][number]) => `${r.service ? `${r.service}/` : ''}${r.kind}:${r.name}`;
  const before = new Map((previous?.rules ?? []).map((r) => [key(r), canonicalJson(r.canonical)]));
  const after = new Map(next.rules.map((r) => [key(r), canonicalJson(r.canonical)]));
  const diff: PolicyDiffSummary = { added: [], removed: [], changed: [] };
  for (const [k, v] of after) {
    const old = before.get(k);
    if (old === undefined) diff.added.push(k);
    else if (old !== v) diff.changed.push(k);
  }
  for (const k of before.keys()) if (!after.has(k)) diff.removed.push(k);
  return diff;
}
