/**
 * The DNS guard of one edge: its listeners, bindings, limits and metrics, started and stopped with the
 * edge server. The edge server owns the policy and the event emitter; this only asks for them.
 */
import { networkInterfaces } from 'node:os';
import type { EventEmitter, Policy } from '@egress-guard/policy';
import type { Registry } from 'prom-client';
import type { EdgeDns } from '../config.js';
import { DnsBindings } from './bindings.js';
import { DnsGuard } from './dns-guard.js';
import { DnsMetrics } from './dns-metrics.js';
import { ExfiltrationTracker } from './exfiltration.js';
import { DnsListener } from './listener.js';
import { SourceRateLimiter } from './rate-limit.js';
import { UpstreamClient, type UpstreamServer, upstreamServers } from './upstream.js';

/** A DNS listener as bound. */
export interface BoundDnsListener {
  host: string;
  /** The UDP and TCP port. */
  port: number;
}

/** The DNS guard's parts, for the edge server. */
export class DnsService {
  /** Name → address bindings from the answers handed out; the transparent claims check reads them. */
  readonly bindings: DnsBindings;
  private readonly listeners: DnsListener[] = [];
  private readonly guard: DnsGuard;
  private readonly metrics: DnsMetrics;
  private readonly upstream: UpstreamClient;
  private readonly servers: readonly UpstreamServer[];

  constructor(
    private readonly settings: EdgeDns,
    registry: Registry,
    policy: () => Policy,
    events: EventEmitter,
    nextId: () => string,
  ) {
    this.bindings = new DnsBindings({ minTtlMs: settings.minTtl });
    const servers = upstreamServers(settings.servers);
    this.servers = servers;
    this.upstream = new UpstreamClient(servers, settings.timeout);
    this.metrics = new DnsMetrics(registry);
    this.guard = new DnsGuard({
      policy,
      events,
      metrics: this.metrics,
      bindings: this.bindings,
      exfiltration: new ExfiltrationTracker(),
      rateLimiter: new SourceRateLimiter({ perSecond: settings.rateLimit }),
      upstream: this.upstream,
      servers,
      timeoutMs: settings.timeout,
      refusal: settings.refusal,
      nextId,
    });
  }

  /** The listeners as bound. */
  get bound(): BoundDnsListener[] {
    return this.listeners.map((l) => ({ host: l.host, port: l.port }));
  }

  /** Binds every configured listener (UDP and TCP each); throws on the first that cannot bind. */
  async start(): Promise<void> {
    for (const { host, port } of this.settings.listen) {
      const loop = this.servers.find(
        (s) => s.port === port && (s.host === host || (isWildcard(host) && isLocalAddress(s.host))),
      );
      if (loop) {
        // Forwarding to itself would send every allowed question round until the time limit.
        throw new Error(
          `the DNS guard on ${host}:${port} would forward to itself (${loop.host}:${loop.port}): give the edge its own resolver with --dns-server`,
        );
      }
      const listener = new DnsListener(this.guard, this.metrics, host, port);
      await listener.listen();
      this.listeners.push(listener);
    }
  }

  /** Closes every listener. */
  async close(): Promise<void> {
    await Promise.all(this.listeners.splice(0).map((l) => l.close()));
    this.upstream.close();
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * Whether a wildcard listener would receive what is sent to this address: loopback, or an address of one
 * of this machine's interfaces (a resolver elsewhere on port 53 is not the guard itself).
 */
function isLocalAddress(host: string): boolean {
  if (host === '::1' || host.startsWith('127.') || isWildcard(host)) return true;
  return Object.values(networkInterfaces()).some((addresses) =>
    (addresses ?? []).some((a) => a.address === host),
  );
}
