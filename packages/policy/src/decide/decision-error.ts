import { formatDuration } from '../duration.js';
import {
  EgressCircuitOpenError,
  EgressDeniedError,
  type EgressError,
  EgressTimeoutError,
  EgressTlsError,
  type TimeoutKind,
} from '../errors.js';
import type { Decision } from '../types.js';

/**
 * The error a refused call fails with: the class for its reason (`EGRESS_ERR_TLS` for the TLS floor and
 * verification, `EGRESS_ERR_CIRCUIT_OPEN` for an open breaker, `EGRESS_ERR_DENIED` otherwise), the
 * decision's message (what, why, how to allow it), reason, rule, host, port and policy hash.
 */
export function errorForDecision(decision: Decision, cause?: unknown): EgressError {
  const fields = {
    reason: decision.reason,
    rule: decision.rule,
    host: decision.host,
    port: decision.port,
    policyHash: decision.policyHash,
    cause,
  };
  switch (decision.reason) {
    case 'tls_version':
    case 'tls_verify_disabled':
      return new EgressTlsError(decision.message, fields);
    case 'circuit_open':
      return new EgressCircuitOpenError(decision.message, fields);
    default:
      return new EgressDeniedError(decision.message, fields);
  }
}

/** The error for an elapsed limit of the decision's rule: which one, its value, and where to change it. */
export function timeoutError(
  kind: TimeoutKind,
  limitMs: number,
  decision: Decision,
  cause?: unknown,
): EgressTimeoutError {
  const where = decision.rule ? `rule "${decision.rule}"` : 'defaults';
  return new EgressTimeoutError(
    `egress ${kind} timeout: ${decision.host}:${decision.port} took longer than ${formatDuration(limitMs)}; raise timeouts.${kind} in ${where} if that is expected`,
    {
      timeout: kind,
      limitMs,
      rule: decision.rule,
      host: decision.host,
      port: decision.port,
      policyHash: decision.policyHash,
      cause,
    },
  );
}
