import { type Decision, EgressTimeoutError, formatDuration, type TimeoutKind } from '@egress-guard/policy';

/** The error for an elapsed limit: which one, its value, the rule, and where to change it. */
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
