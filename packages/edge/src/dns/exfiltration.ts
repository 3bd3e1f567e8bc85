/**
 * DNS exfiltration signals, measured on every refused question: data encoded in names makes long labels,
 * high character entropy, and many distinct names under one parent domain in a short time (a tunnel
 * asks `<chunk1>.t.example`, `<chunk2>.t.example`, ...). The guard refuses those names anyway; the
 * signals go into the event and a metric so that a SIEM can tell a tunnel from a typo.
 */
import { getDomain } from 'tldts';

/** The signals of one name. */
export interface ExfiltrationSignals {
  /** The longest label, in bytes. */
  labelMaxLength: number;
  /** Shannon entropy (bits per character) of the part below the parent. */
  entropy: number;
  /** The registrable domain (public suffix list), or the last two labels when there is none. */
  parent: string;
  /** Distinct names seen under `parent` within the window, this one included. */
  parentDistinctNames: number;
}

/** Options of {@link ExfiltrationTracker}. */
export interface ExfiltrationTrackerOptions {
  /** Window of the distinct-name count. Default `60_000` ms. */
  windowMs?: number | undefined;
  /** Parents tracked; the least recent goes beyond it. Default `10_000`. */
  maxParents?: number | undefined;
  /** Names counted per parent (the count saturates there). Default `1_000`. */
  maxNamesPerParent?: number | undefined;
  now?: (() => number) | undefined;
}

/** Counts distinct names per parent over a sliding window, with bounded memory. */
export class ExfiltrationTracker {
  private readonly windowMs: number;
  private readonly maxParents: number;
  private readonly maxNames: number;
  private readonly now: () => number;
  /** parent -> name -> last seen (epoch ms). */
  private readonly parents = new Map<string, Map<string, number>>();

  constructor(options: ExfiltrationTrackerOptions = {}) {
    this.windowMs = options.windowMs ?? 60_000;
    this.maxParents = options.maxParents ?? 10_000;
    this.maxNames = options.maxNamesPerParent ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /** Measures `name` (lower case, no trailing dot) and counts it under its parent. */
  observe(name: string): ExfiltrationSignals {
    const labels = name.split('.');
    const parent = parentOf(name, labels);
    const below = name.length > parent.length ? name.slice(0, name.length - parent.length - 1) : name;
    const now = this.now();
    let names = this.parents.get(parent);
    if (names) this.parents.delete(parent);
    names ??= new Map();
    for (const [n, seen] of names) if (seen <= now - this.windowMs) names.delete(n);
    if (names.has(name) || names.size < this.maxNames) {
      names.delete(name);
      names.set(name, now);
    }
    this.parents.set(parent, names);
    while (this.parents.size > this.maxParents) {
      const oldest = this.parents.keys().next().value;
      if (oldest === undefined) break;
      this.parents.delete(oldest);
    }
    return {
      labelMaxLength: Math.max(0, ...labels.map((l) => Buffer.byteLength(l, 'latin1'))),
      entropy: Math.round(shannonEntropy(below.replaceAll('.', '')) * 1000) / 1000,
      parent,
      parentDistinctNames: names.size,
    };
  }
}

function parentOf(name: string, labels: readonly string[]): string {
  const domain = getDomain(name, { allowPrivateDomains: true });
  if (domain) return domain;
  return labels.slice(-2).join('.');
}

/** Bits per character of `text`'s character distribution; 0 for empty text. */
export function shannonEntropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const c of counts.values()) {
    const p = c / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}
