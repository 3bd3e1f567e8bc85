/**
 * Questions per second per source address: a token bucket each, so a burst (a page load's look-ups) goes
 * through and a flood (a tunnel, a reflection attempt with a spoofed source) is dropped without an
 * answer. Dropping, not REFUSED: an answer to a spoofed source is what reflection wants. Memory is
 * bounded: the least recently seen source is forgotten first (it starts again with a full bucket).
 */

/** Options of {@link SourceRateLimiter}. */
export interface SourceRateLimiterOptions {
  /** Sustained questions per second per source. Default `200`. */
  perSecond?: number | undefined;
  /** Burst size. Default twice `perSecond`. */
  burst?: number | undefined;
  /** Sources tracked. Default `65_536`. */
  maxSources?: number | undefined;
  now?: (() => number) | undefined;
}

/** Token buckets by source. */
export class SourceRateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: SourceRateLimiterOptions = {}) {
    this.rate = options.perSecond ?? 200;
    this.burst = options.burst ?? this.rate * 2;
    this.maxSources = options.maxSources ?? 65_536;
    this.now = options.now ?? Date.now;
  }

  /** Takes one token for `source`; false when its bucket is empty (drop the question). */
  take(source: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(source);
    if (bucket) {
      this.buckets.delete(source);
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
      bucket.at = now;
    } else {
      bucket = { tokens: this.burst, at: now };
    }
    this.buckets.set(source, bucket);
    if (this.buckets.size > this.maxSources) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
