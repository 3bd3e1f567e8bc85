import type { Decision, Destination, Scheme } from '../types.js';
import type { DecisionSource } from './decision-source.js';

/**
 * What a connection carries when its content is not in view: a TLS connection may be HTTPS, a secure
 * WebSocket or any other TLS protocol; a plaintext one HTTP, a WebSocket or raw TCP. The edge never sees
 * inside TLS, and the SDK's connection-level hooks (its undici connector, its agents, a socket opened for a
 * request a hook allowed) decide the connection apart from the requests it will carry.
 */
export const CONNECTION_SCHEMES: Readonly<Record<ConnectionTransport, readonly Scheme[]>> = {
  tls: ['https', 'wss', 'tls'],
  plain: ['http', 'ws', 'tcp'],
  // A tunnel before its first bytes (a CONNECT at the edge): it may carry anything.
  any: ['https', 'wss', 'tls', 'ssh', 'tcp', 'http', 'ws'],
};

/** What is known of a connection's content: TLS, plaintext, or nothing yet. */
export type ConnectionTransport = 'tls' | 'plain' | 'any';

/** A connection whose content is not in view: where it goes and whether it is TLS. */
export interface ConnectionDestination extends Omit<Destination, 'scheme' | 'method' | 'path'> {
  transport: ConnectionTransport;
}

/**
 * Decides a connection whose content is not in view, the same way on both halves. Each scheme it may
 * carry is asked in turn: a deny rule matching any of them wins (the connection could be the denied
 * kind); otherwise the first scheme allowed; otherwise the answer for the first scheme, whose reason
 * explains the denial. So a policy that allows `x` for `https` and denies it for `wss` denies a TLS
 * connection to `x` wherever the content cannot be seen, in the SDK as at the edge.
 */
export function decideConnection(
  policy: DecisionSource,
  dest: ConnectionDestination,
  now: number = Date.now(),
): Decision {
  const { transport, ...where } = dest;
  return decideAnyScheme(policy, CONNECTION_SCHEMES[transport], where, now);
}

/**
 * Decides `dest` for each scheme in turn, with the rule of {@link decideConnection}: an explicit deny for
 * any scheme wins, then the first allowing scheme, then the first scheme's answer.
 */
export function decideAnyScheme(
  policy: DecisionSource,
  schemes: readonly Scheme[],
  dest: Omit<Destination, 'scheme'>,
  now: number = Date.now(),
): Decision {
  let first: Decision | undefined;
  let allowed: Decision | undefined;
  for (const scheme of schemes) {
    const d = policy.decide({ ...dest, scheme }, now);
    if (d.reason === 'explicit_deny') return d;
    first ??= d;
    if (!allowed && d.result === 'allowed') allowed = d;
  }
  if (!first) throw new RangeError('decideAnyScheme needs at least one scheme');
  return allowed ?? first;
}

/**
 * A base decision when nothing is known yet about the destination (a connection refused at accept, bytes
 * that never formed a request): the policy's mode, service and hash, no rule, the defaults' settings.
 * Refine it with the reason that applies.
 */
export function blankDecision(
  policy: DecisionSource,
  service: string | undefined,
  port: number,
  now: number = Date.now(),
): Decision {
  const safePort = Number.isInteger(port) && port > 0 && port <= 65535 ? port : 1;
  // The decider answers invalid_destination when neither host nor address is given: a denial to refine.
  return policy.decide({ scheme: 'tcp', port: safePort, service }, now);
}
