import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { type Decision, decideTlsVersion, errorForDecision } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { RawConnection } from '../pipeline/raw-connection.js';
import { dialChecksOf } from '../pipeline/record.js';
import { TlsChecks } from '../pipeline/tls-checks.js';
import { type ConnectionContext, contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { raiseFloor } from './http.js';

type Options = ConnectionOptions & { lookup?: unknown };
type Callback = (() => void) | undefined;
type Connect = (options: Options, callback: Callback) => tls.TLSSocket;

/**
 * Patches `tls.connect`, which every TLS client reaches (https agents, undici, http2, raw callers):
 * sets the rule's TLS floor on the socket, refuses `rejectUnauthorized: false` unless the rule allows it
 * (and logs each use when it does), checks the negotiated version once more after the handshake, and
 * decides raw TLS connections (scheme `tls`) that no hook decided before.
 */
export function patchTlsConnect(current: () => GuardCore | undefined): () => void {
  const original = tls.connect;
  const connect: Connect = (options, callback) =>
    (original as (...a: unknown[]) => tls.TLSSocket)(options, callback);
  const patched = function connect_(...args: unknown[]): tls.TLSSocket {
    const guard = current();
    if (!guard) return (original as (...a: unknown[]) => tls.TLSSocket)(...args);
    const { options, callback } = normalize(args);
    return connectGuarded(guard, options, callback, connect);
  } as typeof tls.connect;
  tls.connect = patched;
  return () => {
    if (tls.connect === patched) tls.connect = original;
  };
}

/** What a TLS connection is held to: the decision it carries, and its own life when it is a raw one. */
interface Held {
  context: ConnectionContext;
  /** Set when no hook decided the connection: decided here, it records its own refusal and completion. */
  raw: RawConnection | undefined;
}

/**
 * Connects under the decision the connection carries (or the one made here for a raw `tls` connection),
 * held to its rule's TLS settings before the handshake and checked again after it. A refused connection
 * gets a socket that fails with the guard's error and never dials.
 */
function connectGuarded(
  guard: GuardCore,
  options: Options,
  callback: Callback,
  connect: Connect,
): tls.TLSSocket {
  const host = options.host ?? 'localhost';
  const port = Number(options.port ?? 443);
  const held = holdConnection(guard, options, host, port);
  if (held instanceof Error) return refused(held);
  const { context, raw } = held;
  const decision = context.decision;
  const checks = new TlsChecks(
    guard,
    decision,
    { scheme: decision.scheme, host: decision.host ?? host, port },
    'tls',
    context.id,
  );
  sendDecidedName(options, host);
  // A hook that already held the connection to the TLS rule logged what it found: not twice.
  const refusal = context.tlsChecked
    ? undefined
    : (checks.cappedAt(options.maxVersion) ?? checks.verification(options));
  if (refusal) return refused(raw ? raw.refuse(refusal) : refusal);
  raiseFloor(options, decision);
  const socket = connect(options, callback);
  raw?.completeOnClose(socket);
  // Wrapped after the completion's watch, so that it records the translated error the caller sees.
  if (decision.mode !== 'report') translateVersionErrors(socket, decision);
  socket.once('secureConnect', () => {
    const failure = checks.negotiated(socket.getProtocol() ?? 'unknown');
    if (failure) socket.destroy(failure);
  });
  return socket;
}

/**
 * The decision a connection carries from the hook that opened it (in its `lookup`), or one made here for
 * a raw `tls` connection, whose look-up is then guarded: every address it dials is checked. Returns the
 * error to fail a refused connection with.
 */
function holdConnection(guard: GuardCore, options: Options, host: string, port: number): Held | Error {
  const carried = contextOf(options.lookup);
  if (carried) return { context: carried, raw: undefined };
  // TLS over a socket the caller already connected (e.g. a CONNECT tunnel through a proxy): that socket
  // was decided when it connected; the name inside the tunnel is decided here.
  const name = options.socket ? options.servername || host : host;
  const raw = RawConnection.decide(guard, { host: name, port, secure: true }, 'tls');
  if (!raw.allowed) return raw.refuse();
  const context = raw.context();
  if (!options.socket) options.lookup = guardedLookup(dialChecksOf(guard), context, options.lookup as never);
  return { context, raw };
}

/**
 * Sends the name that was decided as SNI (Node's tls.connect sends none unless told): the edge checks that
 * the SNI matches the destination and refuses a hello without one (sni_missing).
 */
function sendDecidedName(options: Options, host: string): void {
  if (options.servername === undefined && !options.socket && net.isIP(host.replace(/^\[|\]$/g, '')) === 0)
    options.servername = host;
}

// OpenSSL's ways of saying that no TLS version both sides accept exists (a server below the floor).
const VERSION_ERRORS = new Set([
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_VERSION_TOO_LOW',
]);

/**
 * A handshake that fails because the server does not speak the floor surfaces as OpenSSL's error: the
 * caller gets the guard's EgressTlsError instead (reason tls_version, the rule, how to fix it), with
 * OpenSSL's error as its cause.
 */
function translateVersionErrors(socket: tls.TLSSocket, decision: Decision): void {
  const emit = socket.emit;
  let established = false;
  socket.once('secureConnect', () => {
    established = true;
  });
  socket.emit = function (this: tls.TLSSocket, event: string | symbol, ...args: unknown[]) {
    const error = args[0] as NodeJS.ErrnoException | undefined;
    if (
      event === 'error' &&
      !established &&
      error &&
      typeof error.code === 'string' &&
      VERSION_ERRORS.has(error.code)
    ) {
      const denial = decideTlsVersion(
        decision,
        `the server does not accept ${decision.tls.minVersion} or later (${error.code})`,
      );
      args[0] = errorForDecision(denial, error);
    }
    return (emit as (this: tls.TLSSocket, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof socket.emit;
}

/** tls.connect(options[, cb]) | (port[, host][, options][, cb]) | (path[, options][, cb]). */
function normalize(args: unknown[]): { options: Options; callback: Callback } {
  const callback = args.find((a) => typeof a === 'function') as Callback;
  const rest = args.filter((a) => typeof a !== 'function');
  let options: ConnectionOptions = {};
  if (typeof rest[0] === 'object' && rest[0] !== null) options = { ...(rest[0] as ConnectionOptions) };
  else {
    const extra = rest.find((a, i) => i > 0 && typeof a === 'object' && a !== null) as
      | ConnectionOptions
      | undefined;
    options = { ...extra };
    if (typeof rest[0] === 'number' || /^\d+$/.test(String(rest[0]))) {
      options.port = Number(rest[0]);
      if (typeof rest[1] === 'string') options.host = rest[1];
    } else if (typeof rest[0] === 'string') options.path = rest[0];
  }
  return { options, callback };
}

/** A TLS socket that never connects and fails with the guard's error (the caller's callback is never called). */
function refused(error: Error): tls.TLSSocket {
  const socket = new tls.TLSSocket(new net.Socket());
  process.nextTick(() => socket.destroy(error));
  return socket;
}
