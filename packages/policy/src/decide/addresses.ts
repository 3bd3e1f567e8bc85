import type { Decision, Destination } from '../types.js';
import type { DecisionSource } from './decision-source.js';

/** What {@link decideAddresses} found. */
export interface AddressDecision {
  /** The decision for the first address allowed, or for the first refused one when none is. */
  decision: Decision;
  /** Addresses that may be dialled, in order: the allowed ones (or, in report mode, all of them). */
  dial: string[];
}

/**
 * Decides a destination again for each address its name resolved to, with `address` set, so that the
 * special-purpose rule and deny rules on addresses apply to exactly what will be dialled.
 */
export function decideAddresses(
  policy: DecisionSource,
  dest: Destination,
  addresses: readonly string[],
  now: number = Date.now(),
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
 * Decides one address a connection is about to dial, for a connection whose destination (`decided`) was
 * already decided: the same destination with the address set (and its method and path where the
 * connection carries exactly one plaintext request, as the edge decides plaintext HTTP). A name whose answers mix allowed and
 * refused addresses is refused by the caller as a whole (a rebinding attempt is not a reason to pick one).
 */
export function decideDialledAddress(
  policy: DecisionSource,
  decided: Pick<Destination, 'scheme' | 'host' | 'port' | 'service' | 'method' | 'path'>,
  address: string,
  now: number = Date.now(),
): Decision {
  return policy.decide({ ...decided, address }, now);
}
