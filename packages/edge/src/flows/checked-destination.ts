/**
 * The step every tunnelled flow shares between reading the client's first bytes and dialling: decide
 * with the policy in force, resolve what to dial (each address decided again), and decide again from the
 * start whenever a reload swapped the policy during an await, so that nothing is dialled on a decision
 * the policy in force no longer makes.
 */
import { blankDecision, type Decision, type Policy, refineDecision } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import { type Checks, type DestinationQuery, resolveDestination } from '../destination.js';
import type { FlowRecord } from '../flow-record.js';
import { closeGently, refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import { ALERT } from '../tls-wire.js';

/** A flow's checks under one policy, before anything is resolved. */
export type Assessment =
  /** Refused already: `reply` goes to the client (an HTTP error or a TLS alert). */
  | { status: 'refused'; decision: Decision; reply?: Buffer | string | undefined }
  /** Allowed (or only reported) so far: resolve `query`, recording further checks in `checks`. */
  | { status: 'checked'; checks: Checks; query: DestinationQuery };

/** Where an allowed flow goes, and under which decision and policy. */
export interface CheckedDestination {
  decision: Decision;
  dial: string[];
  policy: Policy;
}

/**
 * Runs `assess` with the policy in force, resolves what to dial, and when the policy was reloaded during
 * the resolution, starts again with the new one. Ends the flow itself when there is nothing to dial (a
 * refusal, an unresolved name, a client gone) and returns undefined; else the final decision and the
 * addresses to dial. `alertReply` makes the TLS alert sent with a refusal (TLS flows only).
 */
export async function checkedDestination(
  rt: EdgeRuntime,
  conn: Connection,
  flow: FlowRecord,
  assess: (policy: Policy) => Assessment,
  alertReply?: (description: number) => Buffer,
): Promise<CheckedDestination | undefined> {
  let policy = rt.policy;
  for (;;) {
    const assessed = assess(policy);
    if (assessed.status === 'refused') {
      refuse(conn, flow, assessed.decision, assessed.reply);
      return undefined;
    }
    const { checks, query: q } = assessed;
    const result = await resolveDestination(rt, policy, q, checks);
    if (rt.policy !== policy) {
      // A reload landed while the name was being resolved: decide again under the policy now in force.
      policy = rt.policy;
      continue;
    }
    if (conn.client.destroyed) {
      flow.decide(
        checks.reported ??
          policy.decide({
            scheme: q.scheme,
            host: q.name ?? q.literal,
            address: q.original,
            port: q.port,
            service: q.service,
          }),
      );
      flow.complete('ok', conn.abortReason ?? 'client_closed');
      return undefined;
    }
    if (checks.denied) {
      refuse(conn, flow, checks.denied, alertReply?.(checks.alert));
      return undefined;
    }
    if (result.status === 'nothing') {
      const d = refineDecision(
        checks.reported ?? blankDecision(policy, q.service, q.port),
        'sni_missing',
        'no name to route by',
        true,
      );
      refuse(conn, flow, d, alertReply?.(ALERT.accessDenied));
      return undefined;
    }
    if (result.status === 'unresolved') {
      flow.decide(
        checks.reported ??
          policy.decide({ scheme: q.scheme, host: q.name, port: q.port, service: q.service }),
      );
      closeGently(conn.client, alertReply?.(ALERT.internalError));
      flow.complete('error', 'upstream_unreachable', 'ENOTFOUND');
      return undefined;
    }
    return { decision: checks.reported ?? result.decision, dial: result.dial, policy };
  }
}
