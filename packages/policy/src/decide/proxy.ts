import type { Decision, Scheme } from '../types.js';
import { CONNECTION_SCHEMES, decideAnyScheme } from './connection.js';
import type { DecisionSource } from './decision-source.js';
import { decideInvalid } from './invalid.js';

/** A forward proxy a client dials: where it listens and whether the client speaks TLS to it. */
export interface ProxyHop {
  host: string;
  port: number;
  /** The client speaks TLS to the proxy itself (an `https://` proxy). */
  secure: boolean;
  service: string | undefined;
}

/**
 * Decides the hop to a forward proxy as a transport: the proxy must be listed, as `http` (`https` for a
 * TLS proxy) or as a raw `tcp` (`tls`) destination; methods and paths do not apply to the hop. The request
 * it carries is decided on its own. A deny rule for either reading wins.
 */
export function decideProxyHop(policy: DecisionSource, hop: ProxyHop, now: number = Date.now()): Decision {
  const schemes: readonly Scheme[] = hop.secure ? ['https', 'tls'] : ['http', 'tcp'];
  return decideAnyScheme(policy, schemes, { host: hop.host, port: hop.port, service: hop.service }, now);
}

/** The target of a tunnel, as `CONNECT host:port` names it. */
export interface TunnelTarget {
  host: string;
  port: number;
}

/**
 * Decides the target of a tunnel opened through a proxy (`CONNECT host:port`, or an HTTP/2 CONNECT
 * stream's `:authority`) when no request above it was decided: the tunnel carries bytes nobody reads, so
 * its target must be allowed as a raw destination (`tcp`, or `tls`). A deny rule for either wins. An
 * authority that does not parse is an invalid destination. The SDK lets a tunnel through without this
 * when it carries a request a hook just allowed (that request was decided with its method and path).
 */
export function decideTunnelTarget(
  policy: DecisionSource,
  authority: string,
  service: string | undefined,
  now: number = Date.now(),
): { decision: Decision; target: TunnelTarget | undefined } {
  const target = parseAuthority(authority);
  if (!target) {
    return {
      decision: decideInvalid(policy, `CONNECT ${authority.slice(0, 200)}`, { service, port: 443 }, now),
      target: undefined,
    };
  }
  const where = { ...target, service };
  // Whatever the tunnel will carry, a deny rule for any scheme holds it (ssh included); then it must be
  // allowed as a raw destination.
  const any = decideAnyScheme(policy, CONNECTION_SCHEMES.any, where, now);
  if (any.reason === 'explicit_deny') return { decision: any, target };
  return { decision: decideAnyScheme(policy, ['tcp', 'tls'], where, now), target };
}

/**
 * May a tunnel be opened at all, before its first bytes are seen (the edge's explicit proxy answers a
 * `CONNECT` before the client speaks, and decides the tunnel's content once it does): yes when some scheme
 * allows the destination; otherwise the explicit deny, or the first scheme's denial. A deny rule for one
 * scheme does not refuse the tunnel here: the content is decided with it when it is known.
 */
export function decideTunnelOpening(
  policy: DecisionSource,
  dest: { host: string; port: number; service: string | undefined },
  now: number = Date.now(),
): Decision {
  let first: Decision | undefined;
  let deny: Decision | undefined;
  for (const scheme of CONNECTION_SCHEMES.any) {
    const d = policy.decide({ ...dest, scheme }, now);
    if (d.result === 'allowed') return d;
    first ??= d;
    if (!deny && d.reason === 'explicit_deny') deny = d;
  }
  return deny ?? first!;
}

/** `host:port` or `[v6]:port`, as a CONNECT request names its target (RFC 9110 9.3.6). */
export function parseAuthority(authority: string): TunnelTarget | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:/\s[\]]+)):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host: (m[1] ?? m[2])!, port } : undefined;
}
