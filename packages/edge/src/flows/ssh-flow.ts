/**
 * A tunnel whose first bytes are an SSH identification line: SSH-2 only, decided by the CONNECT host or
 * (transparent) the original address, and the server's own identification checked before the splice.
 */
import { blankDecision, refineDecision } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import { decisionsFor } from '../decision-memo.js';
import { Checks } from '../destination.js';
import { relay } from '../relay.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import type { SshBannerParse } from '../sniff/index.js';
import { verifySshBanner } from '../upstream-checks.js';
import { checkedDestination } from './checked-destination.js';
import { connectHost, contextDecision, decideTarget, type TunnelTarget } from './tunnel-target.js';

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

/** Decides and relays an SSH flow whose client banner was read into `buffer`. */
export async function sshFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  parse: Done<SshBannerParse>,
): Promise<void> {
  const flow = rt.newFlow(conn);
  const port = target.port;
  if (parse.status === 'error') {
    const policy = rt.policy;
    const base = contextDecision(policy, conn.serviceIn(policy), target);
    const reason = parse.reason === 'too_large' ? 'hello_too_large' : 'protocol_not_allowed';
    const how =
      parse.reason === 'ssh1'
        ? `SSH protocol 1 is not allowed (${parse.detail})`
        : `SSH banner refused: ${parse.detail}`;
    refuse(conn, flow, refineDecision(base, reason, how, true));
    return;
  }
  if (target.kind === 'sni') {
    const policy = rt.policy;
    const how = 'an SSH connection carries no name to route by on an SNI listener';
    const base = blankDecision(policy, conn.serviceIn(policy), port);
    refuse(conn, flow, refineDecision(base, 'protocol_not_allowed', how, true));
    return;
  }
  const { name, literal } = connectHost(target);
  const checked = await checkedDestination(rt, conn, flow, (policy) => {
    const service = conn.serviceIn(policy);
    const decider = decisionsFor(policy);
    // Transparent SSH has no name to claim: only `addresses` rules can allow it.
    const decision = decideTarget(decider, 'ssh', target, name ?? literal, service, Date.now());
    const checks = new Checks();
    if (checks.fail(decision)) return { status: 'refused', decision };
    const original = target.kind === 'original' ? target.address : undefined;
    return { status: 'checked', checks, query: { scheme: 'ssh', port, service, name, literal, original } };
  });
  if (!checked) return;
  const decision = checked.decision;
  await relay(rt, conn, flow, {
    decision,
    addresses: checked.dial,
    port,
    first: buffer,
    verify: (upstream) => verifySshBanner(rt, conn, upstream, decision),
  });
}
