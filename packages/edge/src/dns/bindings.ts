/**
 * Name → address bindings from the answers the DNS guard handed out, kept for the answer's TTL but never
 * less than a floor (`--dns-min-ttl`, default 5 minutes). A client connects to an address it was given
 * for as long as it likes to: if the name's addresses rotate meanwhile, the transparent listener's
 * claims-vs-facts check still finds the binding, and the connection is not dropped (the FQDN-filter
 * flake Cilium's toFQDNs users report). Bounded in names; the least recently answered goes first.
 */

/** Options of {@link DnsBindings}. */
export interface DnsBindingsOptions {
  /** Shortest time a binding is kept, whatever the TTL. Default `300_000` ms. */
  minTtlMs?: number | undefined;
  /** Longest time a binding is kept, whatever the TTL. Default `86_400_000` ms (a day). */
  maxTtlMs?: number | undefined;
  /** Names kept. Default `100_000`. */
  maxNames?: number | undefined;
  /** Clock, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** What the claims check asks of bindings. */
export interface AddressBindings {
  /** Whether `name` (normalised) was answered with `address` (canonical) recently enough. */
  holds(name: string, address: string): boolean;
}

/** The bindings of one edge. */
export class DnsBindings implements AddressBindings {
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly maxNames: number;
  private readonly now: () => number;
  /** name -> address -> expiry (epoch ms). Map order is recency of the last answer. */
  private readonly entries = new Map<string, Map<string, number>>();

  constructor(options: DnsBindingsOptions = {}) {
    this.minTtl = options.minTtlMs ?? 300_000;
    this.maxTtl = Math.max(this.minTtl, options.maxTtlMs ?? 86_400_000);
    this.maxNames = options.maxNames ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** Names bound now (expired addresses are removed lazily). */
  get size(): number {
    return this.entries.size;
  }

  /** Records that `name` was answered with `address`, for `ttlSeconds` (floored and capped). */
  bind(name: string, address: string, ttlSeconds: number): void {
    const now = this.now();
    const keep = Math.min(this.maxTtl, Math.max(this.minTtl, ttlSeconds * 1000));
    let entry = this.entries.get(name);
    if (entry) this.entries.delete(name);
    entry ??= new Map();
    entry.set(address, Math.max(entry.get(address) ?? 0, now + keep));
    for (const [a, expiry] of entry) if (expiry <= now) entry.delete(a);
    this.entries.set(name, entry);
    while (this.entries.size > this.maxNames) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  holds(name: string, address: string): boolean {
    const expiry = this.entries.get(name)?.get(address);
    return expiry !== undefined && expiry > this.now();
  }
}
