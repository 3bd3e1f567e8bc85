import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { type Decision, EgressTlsError } from '@egress-guard/policy';
import { contextOf } from '../connection-context.js';
import type { EgressGuard } from '../egress-guard.js';
import { guardedLookup } from '../guarded-lookup.js';

const RANK: Record<string, number> = { SSLv3: 0, TLSv1: 1, 'TLSv1.1': 2, 'TLSv1.2': 3, 'TLSv1.3': 4 };

/**
 * Patches `tls.connect`, which every TLS client reaches (https agents, undici, http2, raw callers):
 * sets the rule's TLS floor on the socket, refuses `rejectUnauthorized: false` unless the rule allows it
 * (and logs each use when it does), checks the negotiated version once more after the handshake, and
 * decides raw TLS connections (scheme `tls`) that no hook decided before.
 */
export function patchTlsConnect(current: () => EgressGuard | undefined): () => void {
  const original = tls.connect;
  const patched = function connect(...args: unknown[]): tls.TLSSocket {
    const guard = current();
    if (!guard) return (original as (...a: unknown[]) => tls.TLSSocket)(...args);
    const { options, callback } = normalize(args);
    const host = options.host ?? 'localhost';
    const port = Number(options.port ?? 443);
    let context = contextOf(options.lookup);
    let decision: Decision;
    if (context) decision = context.decision;
    else {
      // TLS over a socket the caller already connected (e.g. a CONNECT tunnel through a proxy): that socket
      // was decided when it connected; the name inside the tunnel is decided here.
      const name = options.socket ? (options.servername ?? host) : host;
      const recent = guard.recentRequest(name, port);
      const checked = recent ? { decision: guard.decideTransport(name, port, true), id: undefined } : guard.check({ scheme: 'tls', host: name, port }, 'tls');
      decision = checked.decision;
      if (!decision.allowed) return refused(guard.errorFor(decision), callback);
      context = { scheme: decision.scheme, host: name, port, service: guard.service, decision, hook: 'tls', id: checked.id };
      if (!options.socket) options.lookup = guardedLookup(guard, context, options.lookup as never);
    }
    const floor = decision.tls.minVersion;
    if (options.maxVersion && (RANK[options.maxVersion] ?? 0) < (RANK[floor] ?? 0)) {
      return refused(tlsError(decision, `the caller capped TLS at ${options.maxVersion}`), callback);
    }
    if (!options.minVersion || (RANK[options.minVersion] ?? 0) < (RANK[floor] ?? 0)) options.minVersion = floor;
    if (options.rejectUnauthorized === false) {
      if (decision.tls.verify !== false) return refused(guard.errorFor(guard.verifyDisabledDecision(decision)), callback);
      guard.check({ scheme: decision.scheme, host: decision.host ?? host, port }, 'tls.verify-disabled');
    }
    const socket = (original as (...a: unknown[]) => tls.TLSSocket)(options, callback);
    socket.once('secureConnect', () => {
      const version = socket.getProtocol() ?? 'unknown';
      if ((RANK[version] ?? -1) < (RANK[floor] ?? 0)) socket.destroy(tlsError(decision, `the server negotiated ${version}`));
    });
    return socket;
  } as typeof tls.connect;
  tls.connect = patched;
  return () => {
    if (tls.connect === patched) tls.connect = original;
  };
}

function tlsError(decision: Decision, what: string): EgressTlsError {
  return new EgressTlsError(
    `egress denied: ${decision.host}:${decision.port} [tls_version]: ${what}, below the floor ${decision.tls.minVersion}${decision.rule ? ` of rule "${decision.rule}"` : ''}; the server must support ${decision.tls.minVersion} or the rule's tls.minVersion must be lowered`,
    { reason: 'tls_version', rule: decision.rule, host: decision.host, port: decision.port, policyHash: decision.policyHash },
  );
}

/** tls.connect(options[, cb]) | (port[, host][, options][, cb]) | (path[, options][, cb]). */
function normalize(args: unknown[]): { options: ConnectionOptions & { lookup?: unknown }; callback: (() => void) | undefined } {
  const callback = args.find((a) => typeof a === 'function') as (() => void) | undefined;
  const rest = args.filter((a) => typeof a !== 'function');
  let options: ConnectionOptions = {};
  if (typeof rest[0] === 'object' && rest[0] !== null) options = { ...(rest[0] as ConnectionOptions) };
  else {
    const extra = rest.find((a, i) => i > 0 && typeof a === 'object' && a !== null) as ConnectionOptions | undefined;
    options = { ...extra };
    if (typeof rest[0] === 'number' || /^\d+$/.test(String(rest[0]))) {
      options.port = Number(rest[0]);
      if (typeof rest[1] === 'string') options.host = rest[1];
    } else if (typeof rest[0] === 'string') options.path = rest[0];
  }
  return { options, callback };
}

/** A TLS socket that never connects and fails with the guard's error. */
function refused(error: Error, callback: (() => void) | undefined): tls.TLSSocket {
  const socket = new tls.TLSSocket(new net.Socket());
  void callback;
  process.nextTick(() => socket.destroy(error));
  return socket;
}
