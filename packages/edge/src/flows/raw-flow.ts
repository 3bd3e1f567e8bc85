/**
 * A tunnel whose first bytes are neither TLS, HTTP nor SSH: relayed only where a rule allows `tcp` to the
 * destination (the CONNECT host, or the original address in transparent mode); never on an SNI listener.
 */
import { blankDecision, refineDecision } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import { decisionsFor } from '../decision-memo.js';
import { Checks } from '../destination.js';
import { relay } from '../relay.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import { checkedDestination } from './checked-destination.js';
import { connectHost, decideTarget, type TunnelTarget } from './tunnel-target.js';

const HOW = 'the first bytes are neither TLS, HTTP nor SSH-2, and no rule allows tcp to this destination';

/** Decides and relays raw bytes (`buffer`, read so far) to the tunnel's target. */
export async function rawFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
): Promise<void> {
  const flow = rt.newFlow(conn);
  const port = target.port;
  if (target.kind === 'sni') {
    const policy = rt.policy;
    const base = blankDecision(policy, conn.serviceIn(policy), port);
    refuse(conn, flow, refineDecision(base, 'protocol_not_allowed', HOW, true));
    return;
  }
  const { name, literal } = connectHost(target);
  const checked = await checkedDestination(rt, conn, flow, (policy) => {
    const service = conn.serviceIn(policy);
    const decider = decisionsFor(policy);
    const tcp = decideTarget(decider, 'tcp', target, name ?? literal, service, Date.now());
    // A refusal here is about the bytes, not the name: say so, unless a deny rule named the destination.
    const first =
      (!tcp.allowed || tcp.result === 'reported') && tcp.reason !== 'explicit_deny'
        ? refineDecision(tcp, 'protocol_not_allowed', HOW)
        : tcp;
    const checks = new Checks();
    if (checks.fail(first)) return { status: 'refused', decision: first };
    const original = target.kind === 'original' ? target.address : undefined;
    return { status: 'checked', checks, query: { scheme: 'tcp', port, service, name, literal, original } };
  });
  if (!checked) return;
  await relay(rt, conn, flow, { decision: checked.decision, addresses: checked.dial, port, first: buffer });
}
