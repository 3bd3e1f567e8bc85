/**
 * How the edge asks the shared decider. The edge sees less than the SDK (a TLS flow could be https,
 * wss or raw tls; no path inside TLS), so it asks for each scheme the bytes could carry, and it adds its
 * own reasons (claims, TLS floor, hello limits) to decisions the decider made.
 */
import type { Decision, Destination, Policy, ReasonCode, Scheme } from '@egress-guard/policy';

/** The schemes a TLS flow may carry, in the order they are asked. */
export const TLS_FLOW_SCHEMES: readonly Scheme[] = ['https', 'wss', 'tls'];
/** Every scheme, for the CONNECT pre-check (the tunnel's contents are not known yet). */
export const ANY_SCHEME: readonly Scheme[] = ['https', 'wss', 'tls', 'ssh', 'tcp', 'http', 'ws'];

/**
 * Decides `dest` for each scheme in turn. A deny rule matching any of them wins (the edge cannot tell
 * which of these schemes the flow really is, so it takes the denying reading); otherwise the first
 * allowing scheme; otherwise the answer for the first scheme (its reason explains the denial).
 */
export function decideSchemes(
  policy: Policy,
  schemes: readonly Scheme[],
  dest: Omit<Destination, 'scheme'>,
  now = Date.now(),
): Decision {
  const decisions = schemes.map((scheme) => policy.decide({ ...dest, scheme }, now));
  const denied = decisions.find((d) => d.reason === 'explicit_deny');
  if (denied) return denied;
  return decisions.find((d) => d.result === 'allowed') ?? decisions[0]!;
}

/** What {@link decideAddresses} found. */
export interface AddressDecision {
  /** The decision for the first address dialled, or for the first refused one when none is allowed. */
  decision: Decision;
  /** Addresses that may be dialled, in order: the allowed ones (or, in report mode, all of them). */
  dial: string[];
}

/**
 * Decides a destination again for each address a name resolved to, with `address` set, so the
 * special-purpose rule (and deny rules on addresses) applies to exactly what will be dialled.
 */
export function decideAddresses(
  policy: Policy,
  dest: Destination,
  addresses: readonly string[],
  now = Date.now(),
): AddressDecision {
  const allowed: string[] = [];
  let firstAllowed: Decision | undefined;
  let firstRefused: Decision | undefined;
  for (const address of addresses) {
    const d = policy.decide({ ...dest, address }, now);
    if (d.result === 'allowed') {
      allowed.push(address);
      firstAllowed ??= d;
    } else firstRefused ??= d;
  }
  if (firstAllowed) return { decision: firstAllowed, dial: allowed };
  const refused = firstRefused ?? policy.decide(dest, now);
  return { decision: refused, dial: refused.result === 'reported' ? [...addresses] : [] };
}

/**
 * A decision with an edge reason in place of the decider's: `denied`, or `reported` when the policy
 * runs in report mode and `enforce` is not set. Settings, rule and service come from `base`.
 *
 * @param enforce Deny even in report mode: for limits and bytes that cannot be routed at all.
 */
export function withReason(base: Decision, reason: ReasonCode, how: string, enforce = false): Decision {
  const reported = !enforce && base.mode === 'report';
  const message = `egress denied: ${describe(base)} [${reason}]: ${how}`;
  return {
    ...base,
    result: reported ? 'reported' : 'denied',
    allowed: reported,
    reason,
    message: reported ? `would be ${message} (report mode)` : message,
  };
}

/**
 * A base decision when nothing is known yet about the destination (a connection refused at accept, or
 * bytes that never formed a request): the policy's mode, service and hash, no rule.
 */
export function blankDecision(
  policy: Policy,
  service: string | undefined,
  port: number,
  now = Date.now(),
): Decision {
  const safePort = Number.isInteger(port) && port > 0 && port <= 65535 ? port : 1;
  // The decider answers invalid_destination when neither host nor address is given; only its shape is used.
  return policy.decide({ scheme: 'tcp', port: safePort, service }, now);
}

function describe(d: Decision): string {
  const host = d.host ?? d.address ?? '(unknown destination)';
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return `${d.scheme}://${bracketed}:${d.port}${d.address && d.host && d.address !== d.host ? ` (${d.address})` : ''}`;
}
