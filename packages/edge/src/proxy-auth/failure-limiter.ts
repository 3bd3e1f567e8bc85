/**
 * Failed proxy credentials, counted per source address in fixed windows. Past the limit a source is
 * refused without its credentials being checked until its window ends, so tokens cannot be guessed at
 * line rate. Bounded: the least recently seen sources are forgotten first (a flood of sources each
 * failing once costs a fixed amount of memory).
 */
import { LRUCache } from 'lru-cache';

/** Options of {@link FailureLimiter}. */
export interface FailureLimiterOptions {
  /** Failures allowed per source per window. Default `10`. */
  maxFailures?: number | undefined;
  /** Length of a window in milliseconds. Default `60_000`. */
  windowMs?: number | undefined;
  /** Sources remembered. Default `10_000`. */
  maxSources?: number | undefined;
  /** Clock, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
}

interface Window {
  failures: number;
  /** Epoch ms when the window ends. */
  ends: number;
}

export class FailureLimiter {
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly sources: LRUCache<string, Window>;

  constructor(options: FailureLimiterOptions = {}) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.sources = new LRUCache({ max: options.maxSources ?? 10_000 });
  }

  /** Seconds until `source` may try again, or undefined when it may try now. */
  blockedFor(source: string): number | undefined {
    const w = this.sources.get(source);
    const now = this.now();
    if (!w || w.ends <= now || w.failures < this.maxFailures) return undefined;
    return Math.ceil((w.ends - now) / 1000);
  }

  /** Records a failure of `source`. */
  fail(source: string): void {
    const now = this.now();
    const w = this.sources.get(source);
    if (!w || w.ends <= now) this.sources.set(source, { failures: 1, ends: now + this.windowMs });
    else w.failures++;
  }
}
