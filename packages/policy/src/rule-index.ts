import { CidrIndex, type IpAddress } from './address/index.js';
import type { CompiledRule } from './compiled-rule.js';
import type { Matcher } from './host-pattern.js';

const NONE: readonly CompiledRule[] = Object.freeze([]);

/**
 * The decider's index over one list of rules (allow or deny of one scope). Built once at load;
 * a look-up costs a few Map gets per label of the name, never a loop over every rule's pattern.
 */
export class RuleIndex {
  private readonly exact = new Map<string, CompiledRule[]>();
  private readonly oneLabel = new Map<string, Array<{ rule: CompiledRule; label: Matcher | undefined }>>();
  private readonly multiLabel = new Map<string, CompiledRule[]>();
  private readonly cidrs = new CidrIndex<CompiledRule>();
  private hasHostPatterns = false;

  add(rule: CompiledRule): void {
    for (const p of rule.hosts) {
      this.hasHostPatterns = true;
      if (p.kind === 'exact') push(this.exact, p.name, rule);
      else if (p.kind === 'multi-label') push(this.multiLabel, p.suffix, rule);
      else push(this.oneLabel, p.suffix, { rule, label: p.label });
    }
    for (const c of rule.addresses) this.cidrs.add(c, rule);
  }

  /** Rules with a host pattern matching the normalised name, in file order. */
  byName(name: string): readonly CompiledRule[] {
    if (!this.hasHostPatterns) return NONE;
    const found: CompiledRule[] = [];
    const exact = this.exact.get(name);
    if (exact) found.push(...exact);
    let dot = name.indexOf('.');
    if (dot > 0) {
      const first = name.slice(0, dot);
      const one = this.oneLabel.get(name.slice(dot + 1));
      if (one) {
        for (const { rule, label } of one) {
          if (label === undefined || label.test(first)) found.push(rule);
        }
      }
    }
    while (dot > 0) {
      const multi = this.multiLabel.get(name.slice(dot + 1));
      if (multi) found.push(...multi);
      dot = name.indexOf('.', dot + 1);
    }
    return found.length ? ordered(found) : NONE;
  }

  /** Rules with a CIDR containing the address, in file order. */
  byAddress(ip: IpAddress): readonly CompiledRule[] {
    if (this.cidrs.size === 0) return NONE;
    const found = this.cidrs.lookup(ip);
    return found.length ? ordered(found) : NONE;
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function ordered(rules: CompiledRule[]): CompiledRule[] {
  if (rules.length < 2) return rules;
  rules.sort((a, b) => a.order - b.order);
  // A rule can match through two of its patterns; report it once.
  return rules.filter((r, i) => i === 0 || rules[i - 1] !== r);
}
