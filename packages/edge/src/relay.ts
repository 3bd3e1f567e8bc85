/**
 * From an allowed flow to a spliced one: dial the checked addresses, forward the client's first bytes
 * unchanged, let the flow's upstream check read the upstream's first answer, then splice. The flow's
 * decision event is written here, once that check has settled it (see {@link FlowRecord.hold}).
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Decision } from '@egress-guard/policy';
import type { Connection } from './connection.js';
import { DialError, dial } from './dialer.js';
import type { FlowOutcome, FlowRecord } from './flow-record.js';
import { closeGently } from './replies.js';
import type { EdgeRuntime } from './runtime.js';
import { splice } from './splice.js';

/** An upstream check's verdict on the first answer the upstream sent. */
export type Verified =
  | {
      ok: true;
      /** Report mode: the would-deny the check found, which becomes the flow's decision. */
      decision?: Decision | undefined;
    }
  | {
      ok: false;
      outcome: FlowOutcome;
      closeReason: string;
      toClient?: Buffer | undefined;
      errorType?: string | undefined;
      /** The refusal (from refineDecision), when the edge refused rather than the upstream failed. */
      decision?: Decision | undefined;
    };

/** Reads and checks the upstream's first answer. */
export type UpstreamCheck = (upstream: net.Socket) => Promise<Verified>;

/** Everything needed to dial and relay an allowed flow. */
export interface RelayPlan {
  decision: Decision;
  addresses: string[];
  port: number;
  /** The client's bytes read so far, forwarded first and unchanged. */
  first: Buffer;
  verify?: UpstreamCheck | undefined;
  /** Sent to the client when the upstream cannot be reached (a TLS alert). */
  failReply?: Buffer | undefined;
}

/**
 * Dials the checked addresses, forwards the client's first bytes unchanged, lets `verify` read the
 * upstream's first answer, then splices both ways until both sides close. The flow's decision is held
 * (not yet written) on entry and written once final: the plan's, or the refusal `verify` made.
 */
export async function relay(
  rt: EdgeRuntime,
  conn: Connection,
  flow: FlowRecord,
  plan: RelayPlan,
): Promise<void> {
  flow.hold(plan.decision);
  const client = conn.client;
  const timeoutMs = Math.min(plan.decision.timeouts.connect, rt.limits.connectTimeout);
  const abort = new AbortController();
  const onClientClose = () => abort.abort();
  client.once('close', onClientClose);
  const started = performance.now();
  let upstream: net.Socket;
  try {
    upstream = await dial({ addresses: plan.addresses, port: plan.port, timeoutMs, signal: abort.signal });
  } catch (error) {
    client.off('close', onClientClose);
    const code = error instanceof DialError ? error.code : 'ERROR';
    if (code === 'ABORTED') {
      flow.complete('ok', conn.abortReason ?? 'client_closed');
      return;
    }
    closeGently(client, plan.failReply);
    flow.complete(code === 'timeout' ? 'timeout' : 'error', 'upstream_unreachable', code);
    return;
  }
  client.off('close', onClientClose);
  conn.addUpstream(upstream);
  rt.metrics.forListener(conn.listener).connect.observe((performance.now() - started) / 1000);
  if (client.destroyed) {
    upstream.destroy();
    flow.complete('ok', conn.abortReason ?? 'client_closed');
    return;
  }
  if (plan.first.length > 0) upstream.write(plan.first);
  if (plan.verify) {
    const verified = await plan.verify(upstream);
    if (!verified.ok) {
      flow.decide(verified.decision ?? plan.decision);
      flow.sent = upstream.bytesWritten;
      flow.received = upstream.bytesRead;
      upstream.destroy();
      closeGently(client, verified.toClient);
      flow.complete(verified.outcome, conn.abortReason ?? verified.closeReason, verified.errorType);
      return;
    }
    flow.decide(verified.decision ?? plan.decision);
  } else flow.decide(plan.decision);
  splice(conn, flow, upstream, Math.min(plan.decision.timeouts.idle, rt.limits.idleTimeout));
}
