/**
 * The edge's own resolver when no custom one is given: the hosts file first, as the system resolver
 * does, then DNS (`--dns-server`, else resolv.conf), with every answer cached for its TTL. Without the
 * cache each flow cost an A and an AAAA query: a round trip to the resolver and c-ares work on the edge's
 * one thread, for an answer that had not changed.
 */
import dns from 'node:dns';
import { LRUCache } from 'lru-cache';
import type { DnsAnswer, EdgeResolver } from './claims.js';
import { HostsFile } from './hosts-file.js';

/** Options of {@link SystemResolver}. */
export interface SystemResolverOptions {
  /** Resolver addresses (`10.0.0.2`, `10.0.0.2:5353`). Default: the system's (`/etc/resolv.conf`). */
  servers?: string[] | undefined;
  /** The hosts file, or `false` to ask DNS for every name. Default `/etc/hosts`. */
  hostsFile?: string | false | undefined;
  /** Time limit of one query, in milliseconds (c-ares tries twice, half each). Default `5000`. */
  timeoutMs?: number | undefined;
  /** Answers kept (a name's A and AAAA answers are two); the least recently used goes first. Default `20000`. */
  maxAnswers?: number | undefined;
  /** Longest time an answer is kept, whatever its TTL, in milliseconds. Default `3_600_000`. */
  maxTtlMs?: number | undefined;
  /**
   * How long "no such name" and "no records of this type" are kept, in milliseconds. The answer carries
   * no TTL that Node exposes (the SOA minimum is not given), so a short fixed time: long enough that an
   * IPv4-only name does not cost an AAAA query per flow, short enough that a name just created works
   * soon. Server failures and timeouts are never kept. Default `5000`.
   */
  negativeTtlMs?: number | undefined;
  /** Clock, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** Default path of the hosts file. */
export const DEFAULT_HOSTS_FILE = '/etc/hosts';

/** Errors that mean the name or the record type does not exist: an answer, kept for the negative TTL. */
const NEGATIVE = new Set<string>([dns.NOTFOUND, dns.NODATA]);

interface CachedAnswer {
  answers: DnsAnswer[];
  /** Epoch ms after which the answer is asked again. */
  expires: number;
}

/**
 * Resolves names for the edge: hosts file, then DNS through one c-ares resolver, answers cached by name
 * and type until their TTL runs out (TTL 0 is never cached), concurrent questions for the same name
 * sharing one query. Answers come back with the TTL that remains. {@link SystemResolver.clear} forgets
 * everything (the edge calls it on every configuration reload).
 */
export class SystemResolver implements EdgeResolver {
  private readonly servers: string[] | undefined;
  private readonly timeout: number;
  private readonly maxTtl: number;
  private readonly negativeTtl: number;
  private readonly now: () => number;
  private readonly hosts: HostsFile | undefined;
  private readonly cache: LRUCache<string, CachedAnswer>;
  private readonly inFlight = new Map<string, Promise<DnsAnswer[]>>();
  private generation = 0;

  constructor(options: SystemResolverOptions = {}) {
    this.servers = options.servers;
    this.timeout = options.timeoutMs ?? 5000;
    this.maxTtl = options.maxTtlMs ?? 3_600_000;
    this.negativeTtl = options.negativeTtlMs ?? 5000;
    this.now = options.now ?? Date.now;
    const hostsFile = options.hostsFile ?? DEFAULT_HOSTS_FILE;
    this.hosts = hostsFile === false ? undefined : new HostsFile(hostsFile, { now: this.now });
    this.cache = new LRUCache({ max: options.maxAnswers ?? 20_000 });
  }

  /** Answers cached now (for metrics and tests). */
  get cachedAnswers(): number {
    return this.cache.size;
  }

  resolve4(hostname: string, _options?: { ttl: true }): Promise<DnsAnswer[]> {
    return this.answer(hostname, 4);
  }

  resolve6(hostname: string, _options?: { ttl: true }): Promise<DnsAnswer[]> {
    return this.answer(hostname, 6);
  }

  /**
   * Forgets the cached answers for one name, so the next question goes to DNS: the transparent claim check
   * asks again when the address a client connected to is not among the answers the edge has seen.
   */
  forget(hostname: string): void {
    const name = hostname.toLowerCase().replace(/\.$/, '');
    this.cache.delete(`4 ${name}`);
    this.cache.delete(`6 ${name}`);
  }

  /** Forgets every cached answer and re-reads the hosts file. Queries in flight finish; their answers are not kept. */
  clear(): void {
    this.generation++;
    this.cache.clear();
    this.inFlight.clear();
    this.hosts?.refresh();
  }

  private answer(hostname: string, family: 4 | 6): Promise<DnsAnswer[]> {
    const name = hostname.toLowerCase().replace(/\.$/, '');
    const pinned = this.hosts?.lookup(name, family);
    // TTL 0: the hosts file is re-read on change, so nothing downstream should keep its answers long.
    if (pinned) return Promise.resolve(pinned.map((address) => ({ address, ttl: 0 })));
    const key = `${family} ${name}`;
    const now = this.now();
    const cached = this.cache.get(key);
    if (cached && cached.expires > now) {
      const remaining = Math.ceil((cached.expires - now) / 1000);
      return Promise.resolve(cached.answers.map((a) => ({ address: a.address, ttl: remaining })));
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const query = this.query(key, name, family);
    this.inFlight.set(key, query);
    return query;
  }

  private async query(key: string, name: string, family: 4 | 6): Promise<DnsAnswer[]> {
    const generation = this.generation;
    const keep = (answers: DnsAnswer[], ttlMs: number) => {
      if (generation !== this.generation || ttlMs <= 0) return;
      this.cache.set(key, { answers, expires: this.now() + Math.min(ttlMs, this.maxTtl) });
    };
    try {
      // A fresh c-ares resolver per query (a cache miss): c-ares 1.33 (Node 20.18) keeps answers inside a
      // Resolver by TTL on its own clock, which would answer for this cache after clear() or expiry.
      const resolver = this.freshResolver();
      const answers =
        family === 4
          ? await resolver.resolve4(name, { ttl: true })
          : await resolver.resolve6(name, { ttl: true });
      // The set is as fresh as its shortest-lived record.
      keep(answers, answers.length === 0 ? 0 : Math.min(...answers.map((a) => a.ttl)) * 1000);
      return answers;
    } catch (error) {
      if (NEGATIVE.has((error as NodeJS.ErrnoException).code ?? '')) keep([], this.negativeTtl);
      throw error;
    } finally {
      if (generation === this.generation) this.inFlight.delete(key);
    }
  }

  private freshResolver(): dns.promises.Resolver {
    const resolver = new dns.promises.Resolver({
      timeout: Math.max(1, Math.floor(this.timeout / 2)),
      tries: 2,
    });
    if (this.servers && this.servers.length > 0) resolver.setServers(this.servers);
    return resolver;
  }
}
