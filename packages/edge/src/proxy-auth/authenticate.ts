/**
 * The explicit proxy's gate: with `proxyAuth` configured, the first request head of a connection must
 * carry credentials of a service, which then decides every flow of the connection. A refusal is decided
 * by the policy package (`decideProxyAuth`), written as a decision and a completion like any other flow,
 * and answered `407` (or `429` past the failure limit); nothing is dialled.
 */
import { decideProxyAuth } from '@egress-guard/policy';
import type { Connection } from '../connection.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import type { ProxyAuth } from './proxy-auth.js';
import { proxyAuthReply } from './proxy-auth.js';

/** What the head named as its destination, for the refusal's event. */
export interface RequestedDestination {
  host?: string | undefined;
  port: number;
}

/**
 * Checks the credentials of `head` (its first `headerBytes`); on success records the service on `conn`
 * and returns true, else refuses the connection and returns false.
 */
export function authenticateConnection(
  rt: EdgeRuntime,
  auth: ProxyAuth,
  conn: Connection,
  head: Buffer,
  headerBytes: number,
  requested: RequestedDestination,
): boolean {
  const result = auth.check(head, headerBytes, conn.source);
  if (result.ok) {
    conn.identity = result.service;
    return true;
  }
  const decision = decideProxyAuth(rt.policy, {
    failure: result.failure,
    host: requested.host,
    port: requested.port,
    service: result.service,
    detail: result.detail,
  });
  refuse(conn, rt.newFlow(conn), decision, proxyAuthReply(decision, result.retryAfter));
  return false;
}
