/**
 * Claims against facts. A client's claim (the TLS SNI, the HTTP Host, the CONNECT host) is only a
 * string it chose; the facts are what the edge can see or find out itself: the address the client
 * connected to (transparent mode) and what the name resolves to through the edge's own resolver.
 */
import dns from 'node:dns';
import type net from 'node:net';
import { normaliseHostName, parseIpLiteral, unmapIpv4 } from '@egress-guard/policy';

/** One address with its TTL in seconds, as `dns.promises.Resolver#resolve4(name, { ttl: true })` gives it. */
export interface DnsAnswer {
  address: string;
  ttl: number;
}

/**
 * What the edge needs from a resolver: `dns.promises.Resolver` fits. Errors such as `ENOTFOUND` and
 * `ENODATA` mean "no addresses of that family".
 */
export interface EdgeResolver {
  resolve4(hostname: string, options: { ttl: true }): Promise<DnsAnswer[]>;
  resolve6(hostname: string, options: { ttl: true }): Promise<DnsAnswer[]>;
  /**
   * Optional, for a resolver that caches: drop what it holds for `hostname`. Called before the claim
   * check asks again, because the client may have got a newer answer than the cached one.
   */
  forget?(hostname: string): void;
}

/** Options of {@link ResolverCache}. */
export interface ResolverCacheOptions {
  /** Default: a `dns.promises.Resolver` on `servers` (or the system's servers). */
  resolver?: EdgeResolver | undefined;
  /** Resolver addresses when no resolver is given. Default: the system's. */
  servers?: string[] | undefined;
  /** Shortest time an answer is kept for {@link ResolverCache.resolvesTo}. Default `5000` ms. */
  minRetentionMs?: number | undefined;
  /** Longest time an answer is kept. Default `3_600_000` ms. */
  maxRetentionMs?: number | undefined;
  /** Names kept; the least recently resolved is dropped beyond it. Default `10000`. */
  maxNames?: number | undefined;
  /** Time limit of one look-up. Default `5000` ms. */
  timeoutMs?: number | undefined;
  /** Clock, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
  /**
   * Bindings from the answers the DNS guard handed out (`dns/bindings.ts`), consulted before the cache
   * and the resolver: an address the client was given for the name is what it connects to.
   */
  bindings?: { holds(name: string, address: string): boolean } | undefined;
}

/**
 * Resolves names for the edge and remembers every answer for its TTL (bounded by a minimum and a
 * maximum retention), per name and per address. Keeping all recent answers, not only the latest, is what
 * stops round-robin names (a different address on every query) from failing the transparent-mode check
 * at random: the client resolved the name a moment before the edge did, and may have got another answer.
 */
export class ResolverCache {
  private readonly resolver: EdgeResolver;
  private readonly minRetention: number;
  private readonly maxRetention: number;
  private readonly maxNames: number;
  private readonly timeout: number;
  private readonly now: () => number;
  private readonly bindings: ResolverCacheOptions['bindings'];
  /** name -> canonical address -> expiry (epoch ms). Map order is recency of the last look-up. */
  private readonly entries = new Map<string, Map<string, number>>();

  constructor(options: ResolverCacheOptions = {}) {
    this.resolver = options.resolver ?? systemResolver(options.servers, options.timeoutMs ?? 5000);
    this.minRetention = options.minRetentionMs ?? 5000;
    this.maxRetention = options.maxRetentionMs ?? 3_600_000;
    this.maxNames = options.maxNames ?? 10_000;
    this.timeout = options.timeoutMs ?? 5000;
    this.now = options.now ?? Date.now;
    this.bindings = options.bindings;
  }

  /** Names currently cached. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Resolves `name` now (A and AAAA in parallel), records the answers, and returns the current addresses,
   * IPv4 first, in canonical form. The addresses returned are the ones to check and then dial: the edge
   * never resolves a second time between deciding and connecting. Empty when the name does not resolve.
   */
  async resolve(name: string): Promise<string[]> {
    const [v4, v6] = await Promise.all([this.query('resolve4', name), this.query('resolve6', name)]);
    const now = this.now();
    const answers = [...v4, ...v6];
    const addresses: string[] = [];
    let entry = this.entries.get(name);
    if (entry) this.entries.delete(name);
    entry ??= new Map();
    for (const a of answers) {
      const canonical = canonicalAddress(a.address);
      if (canonical === undefined) continue;
      if (!addresses.includes(canonical)) addresses.push(canonical);
      const keep = Math.min(this.maxRetention, Math.max(this.minRetention, a.ttl * 1000));
      entry.set(canonical, Math.max(entry.get(canonical) ?? 0, now + keep));
    }
    for (const [address, expiry] of entry) if (expiry <= now) entry.delete(address);
    if (entry.size > 0) this.entries.set(name, entry);
    while (this.entries.size > this.maxNames) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return addresses;
  }

  /**
   * Whether `name` resolves, now or within the retention of a recent answer, to `address`. A binding from
   * the DNS guard or a recent matching answer is enough (no query); otherwise the name is resolved again.
   */
  async resolvesTo(name: string, address: string): Promise<boolean> {
    const target = canonicalAddress(address);
    if (target === undefined) return false;
    if (this.bindings?.holds(normaliseHostName(name) ?? name, target)) return true;
    const expiry = this.entries.get(name)?.get(target);
    if (expiry !== undefined && expiry > this.now()) return true;
    this.resolver.forget?.(name);
    const fresh = await this.resolve(name);
    return fresh.includes(target);
  }

  private async query(method: 'resolve4' | 'resolve6', name: string): Promise<DnsAnswer[]> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.resolver[method](name, { ttl: true }),
        new Promise<DnsAnswer[]>((resolve) => {
          timer = setTimeout(() => resolve([]), this.timeout);
        }),
      ]);
    } catch {
      // ENOTFOUND, ENODATA, SERVFAIL, timeouts: no usable answer of this family.
      return [];
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
}

function systemResolver(servers: string[] | undefined, timeoutMs: number): EdgeResolver {
  // A fresh Resolver per query: c-ares 1.33 (Node 20.18) caches answers inside a Resolver for their TTL,
  // which would hide a round-robin name's other answers from the edge's own TTL-keeping cache.
  const fresh = () => {
    const resolver = new dns.promises.Resolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 2 });
    if (servers && servers.length > 0) resolver.setServers(servers);
    return resolver;
  };
  return {
    resolve4: (hostname, options) => fresh().resolve4(hostname, options),
    resolve6: (hostname, options) => fresh().resolve6(hostname, options),
  };
}

/**
 * Adapts a `dns.lookup`-compatible function (such as the test kit's `lookupVia`) to {@link EdgeResolver}.
 * Look-ups carry no TTL, so answers are kept for the cache's minimum retention.
 */
export function resolverFromLookup(lookup: net.LookupFunction): EdgeResolver {
  const run = (hostname: string, family: 4 | 6): Promise<DnsAnswer[]> =>
    new Promise((resolve) => {
      try {
        lookup(hostname, { family, all: true }, (err, addresses) => {
          if (err || !Array.isArray(addresses)) return resolve([]);
          resolve(addresses.filter((a) => a.family === family).map((a) => ({ address: a.address, ttl: 0 })));
        });
      } catch {
        resolve([]);
      }
    });
  return { resolve4: (h) => run(h, 4), resolve6: (h) => run(h, 6) };
}

/** The canonical form of an IP address (IPv4-mapped IPv6 unmapped), or undefined when it is not one. */
export function canonicalAddress(address: string): string | undefined {
  const unbracketed = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const ip = parseIpLiteral(unbracketed);
  return ip ? unmapIpv4(ip).canonical : undefined;
}

/** A claimed name compared the way the policy compares names: lower case, no trailing dot, A-labels. */
export function sameName(a: string, b: string): boolean {
  const na = normaliseHostName(a);
  return na !== undefined && na === normaliseHostName(b);
}
