import type { LookupFunction } from 'node:net';
import type { Decision, Scheme } from '@egress-guard/policy';

/**
 * What a request-level hook already decided about a connection it is about to open. It travels to the
 * socket layer inside the `lookup` option, the one option that Node passes unchanged from an agent's or
 * undici's connect call through `tls.connect` down to `net.Socket#connect`.
 */
export interface ConnectionContext {
  scheme: Scheme;
  /** The host the hook decided on (a name or an IP literal). */
  host: string;
  port: number;
  service: string | undefined;
  decision: Decision;
  hook: string;
  /**
   * The request's method and path, where the connection carries exactly that request in plaintext (as
   * the edge sees it): dial-time checks then apply rules limited to methods or paths as the request's own
   * decision did. Absent for TLS and for connections that carry many requests.
   */
  method?: string | undefined;
  path?: string | undefined;
  /** The decision event's id, so dial-time denials can be tied to the request. */
  id: string | undefined;
  /**
   * The hook already applied the TLS floor and the verification rule to this connection and logged what
   * it found (e.g. the guard's https agents): `tls.connect` does not check and log them a second time.
   */
  tlsChecked?: boolean | undefined;
}

const CONTEXT = Symbol.for('egress-guard.connection-context');

/** A lookup function that carries the decision of the hook that opened the connection. */
export type ContextLookup = LookupFunction & { [CONTEXT]?: ConnectionContext };

export function attachContext(lookup: LookupFunction, context: ConnectionContext): ContextLookup {
  (lookup as ContextLookup)[CONTEXT] = context;
  return lookup as ContextLookup;
}

export function contextOf(lookup: unknown): ConnectionContext | undefined {
  return typeof lookup === 'function' ? (lookup as ContextLookup)[CONTEXT] : undefined;
}
