/**
 * Where a tunnel goes as far as its listener knows before the client's bytes are read, and the
 * decisions that can be made from that alone (the base every later refusal is refined from).
 */
import {
  blankDecision,
  CONNECTION_SCHEMES,
  type Decision,
  type DecisionSource,
  decideAnyScheme,
  parseHost,
} from '@egress-guard/policy';
import { canonicalAddress } from '../claims.js';

/** Where a tunnel goes, as far as the listener knows before reading the client's bytes. */
export type TunnelTarget =
  /** Explicit proxy: the CONNECT target (a name or an IP literal, as sent). */
  | { kind: 'connect'; host: string; port: number }
  /** Transparent: the address and port the client connected to before the redirect. */
  | { kind: 'original'; address: string; port: number }
  /** SNI-routed: only the port; the name comes from the SNI (or HTTP Host). */
  | { kind: 'sni'; port: number };

/** A tunnel whose target is known without a name from the client's bytes (not SNI-routed). */
export type AddressedTarget = Exclude<TunnelTarget, { kind: 'sni' }>;

/** A decision about what is known of the destination before any byte: the base for edge reasons. */
export function contextDecision(
  policy: DecisionSource,
  service: string | undefined,
  target: TunnelTarget,
): Decision {
  const now = Date.now();
  const port = target.port;
  if (target.kind === 'connect')
    return decideAnyScheme(policy, CONNECTION_SCHEMES.tls, { host: target.host, port, service }, now);
  if (target.kind === 'original')
    return policy.decide({ scheme: 'tcp', address: target.address, port, service }, now);
  return blankDecision(policy, service, port, now);
}

/** The name or literal a CONNECT target names (the decider's reading of it). */
export function connectHost(target: TunnelTarget): {
  name?: string | undefined;
  literal?: string | undefined;
} {
  if (target.kind !== 'connect') return {};
  const parsed = parseHost(target.host);
  if (parsed.kind === 'ip') return { literal: canonicalAddress(parsed.ip.canonical) };
  if (parsed.kind === 'name') return { name: parsed.name };
  return {};
}

/**
 * Decides a flow that carries no name of its own (SSH, raw TCP): by the original address in transparent
 * mode (only `addresses` rules can allow it), by the CONNECT host otherwise.
 */
export function decideTarget(
  policy: DecisionSource,
  scheme: 'ssh' | 'tcp',
  target: AddressedTarget,
  host: string | undefined,
  service: string | undefined,
  now: number,
): Decision {
  return target.kind === 'original'
    ? policy.decide({ scheme, address: target.address, port: target.port, service }, now)
    : policy.decide({ scheme, host: host ?? target.host, port: target.port, service }, now);
}
