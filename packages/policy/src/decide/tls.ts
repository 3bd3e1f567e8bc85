import type { Decision } from '../types.js';
import { refineDecision } from './refine.js';

/** TLS protocol versions as Node names them, in order. */
export const TLS_VERSION_RANK: Readonly<Record<string, number>> = {
  SSLv3: 0,
  TLSv1: 1,
  'TLSv1.1': 2,
  'TLSv1.2': 3,
  'TLSv1.3': 4,
};

/** Whether `version` (as Node or the wire names it, e.g. `TLSv1.2`) is at or above `floor`. Unknown: no. */
export function meetsTlsFloor(version: string | undefined, floor: string): boolean {
  const rank = version === undefined ? undefined : TLS_VERSION_RANK[version];
  return rank !== undefined && rank >= (TLS_VERSION_RANK[floor] ?? Number.POSITIVE_INFINITY);
}

/**
 * A connection below the TLS floor of the decision's rule: the server negotiated an older version, the
 * caller capped the version below the floor, or the handshake found no common version at or above it.
 *
 * @param what What was seen, e.g. `the server negotiated TLSv1.1`.
 */
export function decideTlsVersion(decision: Decision, what: string): Decision {
  const floor = decision.tls.minVersion;
  const rule = decision.rule ? ` of rule "${decision.rule}"` : '';
  return refineDecision(
    decision,
    'tls_version',
    `${what}, below the floor ${floor}${rule}; the server must support ${floor} or the rule's tls.minVersion must be lowered`,
  );
}

/**
 * A caller that turned certificate verification off (`rejectUnauthorized: false`,
 * `NODE_TLS_REJECT_UNAUTHORIZED=0`). Allowed only where the rule says `tls.verify: false` (and then
 * recorded on every use: the decision is returned as is, `allowed`); otherwise `tls_verify_disabled`.
 */
export function decideVerifyDisabled(decision: Decision): Decision {
  if (decision.allowed && decision.tls.verify === false) return decision;
  const rule = decision.rule ? `rule "${decision.rule}"` : 'the rule';
  return refineDecision(
    decision,
    'tls_verify_disabled',
    `the caller turned off certificate verification (rejectUnauthorized: false or NODE_TLS_REJECT_UNAUTHORIZED=0) but ${rule} does not allow it; to allow it, set tls: { verify: false } on that rule`,
  );
}
