/**
 * One tunnelled connection (a CONNECT tunnel, a transparent redirect, an SNI-routed connection): sniff
 * the client's first bytes under a byte cap and a deadline, then hand the flow to the file for what they
 * are (tls-flow, http-in-tunnel, ssh-flow, raw-flow). Every outcome ends in one decision event and one
 * completion event (plaintext HTTP: one pair per request, written by the forwarder).
 */
import { refineDecision } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import { type FirstBytes, readFirstBytes } from '../first-bytes.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import {
  detectProtocol,
  type HelloParse,
  type HttpHeadParse,
  parseClientHello,
  parseHttpHead,
  parseSshBanner,
  type SshBannerParse,
} from '../sniff/index.js';
import { httpInTunnel } from './http-in-tunnel.js';
import { rawFlow } from './raw-flow.js';
import { sshFlow } from './ssh-flow.js';
import { tlsFlow } from './tls-flow.js';
import { contextDecision, type TunnelTarget } from './tunnel-target.js';

export type { TunnelTarget } from './tunnel-target.js';

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

/** The client's first message, as far as the sniffers could read it. */
type FirstMessage =
  | { protocol: 'tls'; parse: Done<HelloParse> }
  | { protocol: 'http'; parse: Done<HttpHeadParse> }
  | { protocol: 'ssh'; parse: Done<SshBannerParse> }
  | { protocol: 'unknown' };

/** Parses whatever protocol the first bytes start; undefined while more bytes are needed. */
function parseFirst(buffer: Buffer, maxBytes: number): FirstMessage | undefined {
  switch (detectProtocol(buffer)) {
    case 'need-more':
      return undefined;
    case 'tls': {
      const parse = parseClientHello(buffer, maxBytes);
      return parse.status === 'need-more' ? undefined : { protocol: 'tls', parse };
    }
    case 'http': {
      const parse = parseHttpHead(buffer, maxBytes);
      return parse.status === 'need-more' ? undefined : { protocol: 'http', parse };
    }
    case 'ssh': {
      const parse = parseSshBanner(buffer, maxBytes, { role: 'client' });
      return parse.status === 'need-more' ? undefined : { protocol: 'ssh', parse };
    }
    default:
      return { protocol: 'unknown' };
  }
}

/**
 * Runs a tunnel: reads the client's first bytes (`initial` holds any already read), decides, and relays.
 * Never throws.
 */
export async function runTunnel(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  initial: Buffer,
): Promise<void> {
  const max = rt.limits.helloMaxBytes;
  const read = await readFirstBytes(conn.client, initial, (b) => parseFirst(b, max), {
    deadline: conn.helloDeadline,
    maxBytes: max,
  });
  if (read.status !== 'ok') return refuseUnread(rt, conn, read, target);
  const msg = read.value;
  switch (msg.protocol) {
    case 'tls':
      return tlsFlow(rt, conn, target, read.buffer, msg.parse);
    case 'ssh':
      return sshFlow(rt, conn, target, read.buffer, msg.parse);
    case 'http':
      return httpInTunnel(rt, conn, target, read.buffer, msg.parse);
    default:
      return rawFlow(rt, conn, target, read.buffer);
  }
}

/** Ends a tunnel whose first message never arrived whole: too slow, too large, or the client left. */
function refuseUnread(
  rt: EdgeRuntime,
  conn: Connection,
  read: FirstBytes<unknown>,
  target: TunnelTarget,
): void {
  const policy = rt.policy;
  const base = contextDecision(policy, conn.serviceIn(policy), target);
  const flow = rt.newFlow(conn);
  if (read.status === 'timeout') {
    const how = `no complete hello within ${rt.limits.helloTimeout / 1000}s (${read.buffer.length} bytes received)`;
    refuse(conn, flow, refineDecision(base, 'hello_timeout', how, true));
  } else if (read.status === 'too_large') {
    const how = `more than ${rt.limits.helloMaxBytes} bytes without a complete hello`;
    refuse(conn, flow, refineDecision(base, 'hello_too_large', how, true));
  } else {
    // The client closed (or failed) before its first message was complete: nothing to relay.
    const how = `the client closed after ${read.buffer.length} bytes, before a complete hello`;
    flow.decide(refineDecision(base, 'protocol_not_allowed', how, true));
    conn.client.destroy();
    flow.complete('denied', conn.abortReason ?? 'client_closed');
  }
}
