import type net from 'node:net';
import type { Decision, Destination } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import type { ConnectionContext } from '../socket/connection-context.js';
import { endOnClose, endRefused } from './connection-end.js';
import { Exchange } from './exchange.js';
import { recordDecision } from './record.js';

/** Where a raw connection goes, and whether it is TLS. */
export interface RawTarget {
  host: string;
  port: number;
  secure: boolean;
}

/**
 * The life of a raw connection: a `net` or `tls` socket that no request-level hook decided. It is decided
 * as scheme `tcp` (`tls` for TLS), which a rule must list explicitly, and its decision recorded; a refused
 * one ends `denied` (`tls` when its TLS options broke the rule); an allowed one writes its completion when
 * its socket closes (nothing above it would).
 *
 * A socket opened moments after a hook allowed a request to the same host and port (a caller's own
 * dispatcher or agent) carries that request: it is decided as the request's transport, and writes no
 * event of its own unless it is refused, so that the log says why the request failed.
 */
export class RawConnection {
  private constructor(
    private readonly guard: GuardCore,
    readonly target: RawTarget,
    readonly decision: Decision,
    readonly hook: string,
    /** Its own events' exchange; none for an allowed socket that carries a recently allowed request. */
    private readonly exchange: Exchange | undefined,
  ) {}

  /** Decides a raw connection (hook `net`, or `tls`), or takes the transport decision of a recent request. */
  static decide(guard: GuardCore, target: RawTarget, hook: string): RawConnection {
    const { host, port, secure } = target;
    const recent = guard.recentRequest(host, port);
    if (!recent) {
      const exchange = Exchange.begin(guard, { scheme: secure ? 'tls' : 'tcp', host, port }, hook);
      return new RawConnection(guard, target, exchange.decision, hook, exchange);
    }
    const decision = decideRecentTransport(guard, recent, target);
    if (decision.allowed) return new RawConnection(guard, target, decision, hook, undefined);
    const refused = recordDecision(guard, decision, { scheme: decision.scheme, host, port }, hook);
    return new RawConnection(guard, target, decision, hook, new Exchange(guard, refused, hook));
  }

  get allowed(): boolean {
    return this.decision.allowed;
  }

  /** The id of its decision event; undefined for a socket carrying a recent request (it has none). */
  get id(): string | undefined {
    return this.exchange?.id;
  }

  /**
   * Ends a connection refused before it dialled: records its completion and returns the error to fail it
   * with (by default, its own decision's).
   */
  refuse(error: Error = this.guard.errorFor(this.decision)): Error {
    return endRefused(this.exchange, error);
  }

  /** Writes the completion when the socket closes (outcome, duration, bytes each way, TLS version). */
  completeOnClose(socket: net.Socket): void {
    if (this.exchange) endOnClose(socket, this.exchange);
  }

  /** What the socket layer needs to check each address the connection dials, under its id. */
  context(): ConnectionContext {
    const { host, port } = this.target;
    const { decision, hook, id } = this;
    return { scheme: decision.scheme, host, port, service: this.guard.service, decision, hook, id };
  }
}

/**
 * A socket opened for a recent request: a raw `tls` request's socket is decided as `tls`, a raw `tcp` one's
 * plaintext socket as `tcp`; any other (https, wss, http, ws: their content is not in view here) with the
 * connection-level rule (where a deny rule for any scheme the connection could carry wins).
 */
function decideRecentTransport(
  guard: GuardCore,
  recent: Destination['scheme'],
  { host, port, secure }: RawTarget,
): Decision {
  if (recent === 'tls' || (recent === 'tcp' && !secure)) return guard.decide({ scheme: recent, host, port });
  return guard.decideTransport(host, port, secure);
}
