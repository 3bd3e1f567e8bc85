import type { WeakerDimension } from './dimensions.js';
import type { ExportPlan } from './plan.js';

/** Where an engine sees the destination name: the TLS ClientHello's SNI, or a plain HTTP request's Host. */
export type Transport = 'tls' | 'http';

/**
 * How an engine matches names, which decides what the core hands it:
 * - `ordered-regex`: a first-match list of anchored, case-insensitive regexes (nginx map, HAProxy ACLs,
 *   Squid ACLs in http_access/ssl_bump order). The core gives each listener its ordered entries: deny
 *   rules, exact allows, the wildcard guards, wildcard allows. Exactly the policy's precedence.
 * - `patterns`: the engine takes our patterns as such (Cilium `toFQDNs`, domain lists...). The core gives
 *   each listener its allowed patterns; constructs the target cannot express exactly, and allows a deny
 *   carves into when the target has no deny precedence, are dropped with a warning (narrower).
 */
export type HostMatching = 'ordered-regex' | 'patterns';

/**
 * Where the engine sends a connection whose name it allows. This decides two dimensions our edge enforces
 * (its claims-vs-facts check: the name a client presents must resolve to the address it connects to):
 * - `resolves-name`: the engine resolves the allowed name itself and connects there (a proxy: nginx,
 *   HAProxy, Squid, Envoy). The client's choice of address plays no part: both dimensions hold.
 * - `client-address`: the engine checks the name the client presents (SNI, Host) and lets the connection go
 *   to the address the client chose (a passive firewall; a proxy forwarding to the original destination).
 *   A client can present an allowed name to any address: `destination-binding` is not enforced.
 * - `resolved-addresses`: the engine allows the addresses the allowed names resolved to and never reads the
 *   connection itself (Cilium `toFQDNs`). Any protocol, and any name sharing such an address (a CDN, a
 *   shared load balancer), gets through on the allowed ports: `server-name` is not enforced.
 */
export type Destination = 'resolves-name' | 'client-address' | 'resolved-addresses';

/** What a target can express, per construct of ours. */
export interface TargetSemantics {
  hostMatching: HostMatching;
  /** Pattern kinds the engine matches with exactly our meaning (`patterns` targets; regex targets: all). */
  constructs: { oneLabel: boolean; labelGlob: boolean; multiLabel: boolean };
  /** Whether a deny can win over an allow that covers it ("allow *.x except y.x"). */
  denyPrecedence: boolean;
  /** Where the engine reads names. A rule for another transport is dropped with a warning (narrower). */
  transports: readonly Transport[];
  /**
   * Dimensions the engine enforces; every other dimension a rule uses is "not enforced by <target>".
   * `destination-binding` and `server-name` are not listed here: they follow from {@link destination};
   * nor is `name-validity`: it follows from {@link wildcardsRefuseInvalidNames}.
   */
  enforces: readonly Exclude<WeakerDimension, 'destination-binding' | 'server-name' | 'name-validity'>[];
  /**
   * Whether the engine's wildcards match only names our decider accepts as valid. True for `ordered-regex`
   * targets: the core places `WILDCARD_GUARDS` before their wildcard allows. False for an engine whose
   * wildcard takes any label characters (Cilium's `*`, Istio's `*.` suffix match): each allow rule with an
   * exported wildcard pattern is then weaker `name-validity` (name-validity.ts).
   */
  wildcardsRefuseInvalidNames: boolean;
  /**
   * Where allowed connections go, for exact names and for wildcard patterns (they differ on Istio: exact
   * names go through the egress gateway, which resolves them; wildcard hosts leave from the sidecar to the
   * address the client resolved).
   */
  destination: { exact: Destination; wildcard: Destination };
  /** Whether the engine can run in an audit mode matching our report mode (`true`: see the target's docs). */
  auditMode: boolean;
}

/**
 * A proxy that reads the SNI and Host, decides on the core's ordered regexes (every construct exact, deny
 * first) and dials the allowed name itself; enforcing nothing else. Targets spread it and state only how
 * they differ (`{ ...NAME_DIALLING_PROXY, enforces: ['tls-floor'] }`), so the differences stand out.
 */
export const NAME_DIALLING_PROXY: TargetSemantics = {
  hostMatching: 'ordered-regex',
  constructs: { oneLabel: true, labelGlob: true, multiLabel: true },
  denyPrecedence: true,
  transports: ['tls', 'http'],
  enforces: [],
  auditMode: false,
  destination: { exact: 'resolves-name', wildcard: 'resolves-name' },
  // The core's WILDCARD_GUARDS refuse invalid names before the wildcard allows.
  wildcardsRefuseInvalidNames: true,
};

/** What a target's render receives besides the plan. */
export interface RenderOptions {
  /** The policy file as named on the command line, for the header comment (basename only). */
  policyFileName: string;
  /** `--listen`: the address the engine listens on; undefined: every address (the engine's default). */
  listenAddress?: string | undefined;
  /** `--resolver`: the DNS resolver an engine uses to reach allowed names (`ip` or `ip:port`). */
  resolver?: string | undefined;
  /** `--runtime-dir`: where an engine keeps sockets, pid and cache files. */
  runtimeDir?: string | undefined;
  /** `--proxy-port`: the port of an explicit proxy (Squid); default 3128. */
  proxyPort?: number | undefined;
}

/** Defaults of {@link RenderOptions}, for the targets and the docs. */
export const RENDER_DEFAULTS = { resolver: '127.0.0.1', runtimeDir: '/run/egress-guard' } as const;

/** `address:port` for a listen directive, bracketing IPv6. */
export function listenOn(options: RenderOptions, port: number): string {
  const a = options.listenAddress;
  if (a === undefined) return String(port);
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/** One export target. Register it in src/export/targets.ts. */
export interface ExportTarget {
  /** The `--to` name. */
  name: string;
  /** One line for `export --help`. */
  summary: string;
  semantics: TargetSemantics;
  /** The complete, documented configuration. Must be deterministic: same plan, same bytes. */
  render(plan: ExportPlan, options: RenderOptions): string;
}
