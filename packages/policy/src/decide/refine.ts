import type { ReasonCode } from '../reason-codes.js';
import type { Decision } from '../types.js';

/**
 * A later decision in a request's or a flow's life (a TLS version seen, a claim checked, a limit hit)
 * built on the decision that let it start: same rule, settings, service, mode and policy hash, with
 * `reason` in place of the decider's. `denied`, or `reported` when the policy runs in report mode (report
 * mode blocks nothing: the would-deny is recorded and the traffic goes ahead), unless `enforce`.
 *
 * @param how What was found and how to allow it, for the message.
 * @param enforce Deny even in report mode: for what cannot go ahead whatever the mode (bytes that cannot
 *   be routed at all, limits that protect the enforcer itself, an open breaker). Default false.
 */
export function refineDecision(base: Decision, reason: ReasonCode, how: string, enforce = false): Decision {
  const reported = !enforce && base.mode === 'report';
  const message = `egress denied: ${describeDestination(base)} [${reason}]: ${how}`;
  return {
    ...base,
    result: reported ? 'reported' : 'denied',
    allowed: reported,
    reason,
    message: reported ? `would be ${message} (report mode)` : message,
  };
}

/** `scheme://host:port`, with the dialled address when it differs from the host: the subject of messages. */
export function describeDestination(d: Decision): string {
  const host = d.host ?? d.address ?? '(unknown destination)';
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return `${d.scheme}://${bracketed}:${d.port}${d.address && d.host && d.address !== d.host ? ` (${d.address})` : ''}`;
}
