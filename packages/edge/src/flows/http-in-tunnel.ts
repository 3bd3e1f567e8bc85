/**
 * A tunnel whose first bytes are an HTTP request head: handed to the plaintext HTTP forwarder, which
 * decides every request on its own, with what the tunnel knows (CONNECT host, original address, port)
 * as the context its Host headers are checked against. A CONNECT inside a tunnel, or a head that is not
 * acceptable HTTP/1.x, is refused here.
 */
import { refineDecision } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import type { HttpContext } from '../http-context.js';
import { httpError, refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import type { HttpHeadParse } from '../sniff/index.js';
import { contextDecision, type TunnelTarget } from './tunnel-target.js';

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

/** Refuses or hands over a tunnel whose first bytes (`buffer`) are an HTTP request head. */
export function httpInTunnel(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  parse: Done<HttpHeadParse>,
): void {
  if (parse.status === 'ok' && parse.method !== 'CONNECT') {
    rt.http.serve(conn, buffer, httpContextOf(target));
    return;
  }
  const flow = rt.newFlow(conn);
  const policy = rt.policy;
  const reason =
    parse.status === 'error' && parse.reason === 'too_large' ? 'hello_too_large' : 'protocol_not_allowed';
  const detail =
    parse.status === 'error'
      ? `the request head is not acceptable HTTP/1.x: ${parse.detail}`
      : 'CONNECT inside a tunnel';
  const base = contextDecision(policy, conn.serviceIn(policy), target);
  refuse(conn, flow, refineDecision(base, reason, detail, true), httpError(400, reason, detail));
}

function httpContextOf(target: TunnelTarget): HttpContext {
  switch (target.kind) {
    case 'connect':
      return { kind: 'connect', host: target.host, port: target.port };
    case 'original':
      return { kind: 'original', address: target.address, port: target.port };
    default:
      return { kind: 'sni', port: target.port };
  }
}
