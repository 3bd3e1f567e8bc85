import type { ReasonCode } from './reason-codes.js';

/** Schemes a rule may list. `tls`, `tcp` and `ssh` are raw connections (no HTTP method or path). */
export const SCHEMES = ['https', 'http', 'wss', 'ws', 'tls', 'tcp', 'ssh'] as const;
export type Scheme = (typeof SCHEMES)[number];

/** Default ports of each scheme. `tcp` has none: a rule listing `tcp` must list its ports. */
export const DEFAULT_PORTS: Readonly<Record<Scheme, number | undefined>> = {
  https: 443,
  http: 80,
  wss: 443,
  ws: 80,
  tls: 443,
  tcp: undefined,
  ssh: 22,
};

/** Schemes that carry HTTP, where `methods` and `paths` apply. */
export const HTTP_SCHEMES: ReadonlySet<Scheme> = new Set(['https', 'http', 'wss', 'ws']);
/** Schemes that run over TLS, where the TLS floor applies. */
export const TLS_SCHEMES: ReadonlySet<Scheme> = new Set(['https', 'wss', 'tls']);

/**
 * DNS query types an allow rule may list in `dns.types` (the edge's DNS guard). Zone transfers (AXFR,
 * IXFR) are absent on purpose: the guard never forwards them.
 */
export const DNS_QUERY_TYPES = [
  'A',
  'AAAA',
  'CNAME',
  'HTTPS',
  'SVCB',
  'TXT',
  'MX',
  'SRV',
  'NS',
  'PTR',
  'CAA',
  'SOA',
  'DS',
  'DNSKEY',
  'TLSA',
  'NAPTR',
  'NULL',
  'ANY',
] as const;
export type DnsQueryType = (typeof DNS_QUERY_TYPES)[number];
/** What every allowed name may be asked for when its rule has no `dns` key. */
export const DEFAULT_DNS_TYPES: readonly DnsQueryType[] = ['A', 'AAAA', 'CNAME', 'HTTPS', 'SVCB'];

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';
export type Mode = 'enforce' | 'report';

/**
 * What a hook asks about: one outbound request or connection.
 *
 * `host` is what the caller named (a DNS name or an IP literal in any spelling); `address` is the IP
 * actually being dialled, when known (set by dial-time checks). Method and path are given only where the
 * hook can see them (HTTP through the SDK, plaintext HTTP at the edge); when absent those dimensions are
 * not checked, as policy.md says for TLS at the edge.
 */
export interface Destination {
  scheme: Scheme;
  /** Host name or IP literal, as written by the caller. Normalised by the decider. */
  host?: string | undefined;
  /** The IP address being dialled (canonical or any spelling), when known. */
  address?: string | undefined;
  port: number;
  method?: string | undefined;
  /** URL path without the query string. */
  path?: string | undefined;
  /** The service making the call (a key of `services`), if any. */
  service?: string | undefined;
}

/** Effective TLS settings for an allowed destination. */
export interface EffectiveTls {
  minVersion: TlsVersion;
  /** False only where a rule says `tls.verify: false`. */
  verify: boolean;
}

/** Effective timeouts, in milliseconds. */
export interface EffectiveTimeouts {
  connect: number;
  response: number;
  idle: number;
  total: number;
}

/** Effective circuit-breaker settings (durations in milliseconds). */
export interface EffectiveBreaker {
  errorThresholdPercentage: number;
  volumeThreshold: number;
  resetTimeout: number;
  rollingWindow: number;
}

/**
 * The decider's answer.
 *
 * `result` is what the hook must do: `allowed`, `denied`, or `reported` (the policy would deny but runs in
 * report mode: the hook lets it through and the event records the would-be denial with its reason).
 */
export interface Decision {
  result: 'allowed' | 'denied' | 'reported';
  /** True when the hook should let the traffic through (`allowed` or `reported`). */
  allowed: boolean;
  reason: ReasonCode;
  /** Name of the rule that made the decision; undefined when no rule matched (default deny). */
  rule: string | undefined;
  /** Which list the rule came from. */
  ruleKind: 'allow' | 'deny' | undefined;
  /** The service whose section applied, if any. */
  service: string | undefined;
  /** The mode in force at the moment of the decision (report turns to enforce after `reportUntil`). */
  mode: Mode;
  /** The normalised host (A-label, lower case), or the canonical address for IP literals. */
  host: string | undefined;
  /** Canonical form of the dialled address, if any. */
  address: string | undefined;
  port: number;
  scheme: Scheme;
  tls: EffectiveTls;
  timeouts: EffectiveTimeouts;
  breaker: EffectiveBreaker | false;
  /** Whether special-purpose addresses may be dialled for this destination. */
  privateAddresses: 'allow' | 'deny';
  /** A message for people: what was denied, why, and how to allow it. */
  message: string;
  /** sha256 of the canonical policy. */
  policyHash: string;
}
