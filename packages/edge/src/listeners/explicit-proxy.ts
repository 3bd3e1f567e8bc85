import { decideTunnelOpening, refineDecision } from '@egress-guard/policy';
/**
 * The explicit proxy listener: clients configured with `HTTPS_PROXY`/`HTTP_PROXY` send `CONNECT host:port`
 * (a tunnel, whose contents are then sniffed like any other flow, with the CONNECT host as the claim the
 * SNI must match) or absolute-form plaintext requests (`GET http://host/path`), each decided on its own.
 */

import type { Connection } from '../connection.js';
import { readFirstBytes } from '../first-bytes.js';
import { runTunnel } from '../flows/tunnel.js';
import { authenticateConnection } from '../proxy-auth/authenticate.js';
import { closeGently, httpError, refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import { parseHttpHead } from '../sniff/index.js';

const EMPTY = Buffer.alloc(0);
const CONNECT_OK = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/** Reads the first request head of an explicit-proxy connection and routes it. Never throws. */
export async function handleExplicit(rt: EdgeRuntime, conn: Connection): Promise<void> {
  const max = rt.limits.helloMaxBytes;
  const read = await readFirstBytes(
    conn.client,
    EMPTY,
    (b) => {
      const r = parseHttpHead(b, max);
      return r.status === 'need-more' ? undefined : r;
    },
    { deadline: conn.helloDeadline, maxBytes: max },
  );
  const policy = rt.policy;
  const service = policy.serviceForAddress(conn.source);
  const base = () => policy.decide({ scheme: 'tcp', port: conn.localPort, service });
  if (read.status !== 'ok') {
    const flow = rt.newFlow(conn);
    if (read.status === 'timeout') {
      const d = refineDecision(
        base(),
        'hello_timeout',
        `no complete request head within ${rt.limits.helloTimeout / 1000}s`,
        true,
      );
      refuse(conn, flow, d, httpError(408, d.reason, d.message));
    } else if (read.status === 'too_large') {
      const d = refineDecision(base(), 'hello_too_large', `request head larger than ${max} bytes`, true);
      refuse(conn, flow, d, httpError(431, d.reason, d.message));
    } else {
      flow.decide(
        refineDecision(
          base(),
          'protocol_not_allowed',
          'the client closed before a complete request head',
          true,
        ),
      );
      conn.client.destroy();
      flow.complete('denied', conn.abortReason ?? 'client_closed');
    }
    return;
  }
  const head = read.value;
  if (head.status === 'error') {
    const flow = rt.newFlow(conn);
    const reason = head.reason === 'too_large' ? 'hello_too_large' : 'protocol_not_allowed';
    const d = refineDecision(
      base(),
      reason,
      `not an acceptable HTTP/1.x proxy request: ${head.detail}`,
      true,
    );
    refuse(conn, flow, d, httpError(reason === 'hello_too_large' ? 431 : 400, reason, d.message));
    return;
  }
  // Credentials, when required, come before anything else the request asks for.
  if (rt.proxyAuth) {
    const requested = head.authorityForm ?? {
      host: head.absoluteUrl?.host,
      port: head.absoluteUrl?.port ?? (head.absoluteUrl ? 80 : conn.localPort),
    };
    if (!authenticateConnection(rt, rt.proxyAuth, conn, read.buffer, head.headerBytes, requested)) return;
  }
  if (head.method === 'CONNECT' && head.authorityForm) {
    return openTunnel(
      rt,
      conn,
      head.authorityForm.host,
      head.authorityForm.port,
      read.buffer.subarray(head.headerBytes),
    );
  }
  rt.http.serve(conn, read.buffer, { kind: 'explicit' });
}

/**
 * Handles `CONNECT host:port`: refuses at once (403, nothing dialled) when the policy allows the host on
 * that port for no scheme at all (`decideTunnelOpening`); otherwise answers 200 and sniffs what the client sends through the
 * tunnel. Nothing is dialled before the client's first bytes are checked against the CONNECT host.
 */
export async function openTunnel(
  rt: EdgeRuntime,
  conn: Connection,
  host: string,
  port: number,
  rest: Buffer,
): Promise<void> {
  const policy = rt.policy;
  const service = conn.serviceIn(policy);
  const pre = decideTunnelOpening(policy, { host, port, service });
  if (pre.result === 'denied') {
    refuse(conn, rt.newFlow(conn), pre, httpError(403, pre.reason, pre.message));
    return;
  }
  if (!conn.client.writable) {
    conn.client.destroy();
    return;
  }
  conn.client.write(CONNECT_OK);
  await runTunnel(rt, conn, { kind: 'connect', host, port }, rest);
}

/** For a CONNECT that arrives on a connection that already carried plaintext requests. */
export function connectAfterRequests(
  rt: EdgeRuntime,
  conn: Connection,
  authority: string,
  head: Buffer,
): void {
  const parsed = parseHttpHead(Buffer.from(`CONNECT ${authority} HTTP/1.1\r\n\r\n`, 'latin1'));
  if (parsed.status !== 'ok' || !parsed.authorityForm) {
    closeGently(
      conn.client,
      httpError(400, 'protocol_not_allowed', `invalid CONNECT target ${JSON.stringify(authority)}`),
    );
    return;
  }
  conn.helloDeadline = Date.now() + rt.limits.helloTimeout;
  void openTunnel(rt, conn, parsed.authorityForm.host, parsed.authorityForm.port, head);
}
