import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Decision } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { endOnClose, endRefused } from '../pipeline/connection-end.js';
import { Deadlines } from '../pipeline/deadlines.js';
import { Exchange } from '../pipeline/exchange.js';
import { checkDialledAddress, dialChecksOf, recordDecision } from '../pipeline/record.js';
import { TlsChecks } from '../pipeline/tls-checks.js';
import { type ConnectionContext, contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { bare, hostForUrl, raiseFloor, translateTlsError } from './http.js';

type Callback = (error: Error | null, socket?: Duplex) => void;
type ConnectOptions = http.ClientRequestArgs & tls.ConnectionOptions & { lookup?: unknown; path?: string };
type Create = (options: ConnectOptions, callback?: Callback) => Duplex | null | undefined;

/**
 * An `http.Agent` that decides every connection it opens, for explicit use without `install()`:
 * `http.get(url, { agent: createHttpAgent(guard) })`.
 *
 * Each new connection is decided as a transport (may this host be reached on this port over plaintext
 * HTTP, or WS), every address a name resolves to is checked before it is dialled (special-purpose
 * addresses need `privateAddresses: allow` or an `addresses` rule), IP literals are checked against
 * `addresses` rules, and the rule's connect timeout applies. One decision event is written per new
 * connection (hook `http.agent`) and one completion event when it closes.
 *
 * An agent sees connections, not requests: it cannot apply a rule's `methods` and `paths`, nor its
 * response/idle/total timeouts and breaker (a pooled keep-alive socket carries many requests). Use
 * `install()` (the `http` request patch) for those. Under `install()`, a request the patch already decided
 * keeps that decision: the agent writes no second event for it.
 *
 * @param options - Node's `http.AgentOptions`; defaults are Node's (keep-alive off).
 */
export function createHttpAgent(guard: GuardCore, options?: http.AgentOptions): http.Agent {
  const agent = new http.Agent(options);
  const base = http.Agent.prototype.createConnection as Create;
  agent.createConnection = ((opts: ConnectOptions, callback?: Callback) =>
    guardedConnection(guard, false, opts, callback, (o, cb) =>
      base.call(agent, o, cb),
    )) as typeof agent.createConnection;
  return agent;
}

/**
 * An `https.Agent` that decides every connection it opens, for explicit use without `install()`:
 * `https.get(url, { agent: createHttpsAgent(guard) })`.
 *
 * As {@link createHttpAgent} (hook `https.agent`), and for TLS: sets the rule's `tls.minVersion` as the
 * floor (a caller's lower `maxVersion` is refused), refuses `rejectUnauthorized: false` (or
 * `NODE_TLS_REJECT_UNAUTHORIZED=0`) unless the rule says `tls.verify: false` (and logs each use when it
 * does), checks the negotiated version after the handshake, and trusts the guard's `ca` in addition to
 * Node's bundled roots when the caller gave no `ca`. Each TLS finding is recorded under the connection's
 * id (hooks `https.agent.floor`, `https.agent.verify-disabled`).
 *
 * It cannot apply a rule's `methods` and `paths` (it sees connections, not requests): use `install()`.
 *
 * @param options - Node's `https.AgentOptions`; defaults are Node's (keep-alive off).
 */
export function createHttpsAgent(guard: GuardCore, options?: https.AgentOptions): https.Agent {
  const agent = new https.Agent(options);
  const base = https.Agent.prototype.createConnection as unknown as Create;
  agent.createConnection = ((opts: ConnectOptions, callback?: Callback) =>
    guardedConnection(guard, true, opts, callback, (o, cb) =>
      base.call(agent, o, cb),
    )) as typeof agent.createConnection;
  return agent;
}

/** One connection an agent opens: where it goes, the decision it carries, and its own life if it has one. */
interface AgentConnection {
  guard: GuardCore;
  secure: boolean;
  hook: string;
  host: string;
  port: number;
  context: ConnectionContext;
  /**
   * The connection's decision and completion events, when the agent decided it; undefined when a request
   * the http patch decided brought its decision along (that request's events tell its story).
   */
  exchange: Exchange | undefined;
}

/**
 * `createConnection` of the guard's agents: the connection's decision (its own, or its request's), its
 * options checked (TLS, an IP literal) before anything is dialled, then the socket watched to its end.
 */
function guardedConnection(
  guard: GuardCore,
  secure: boolean,
  options: ConnectOptions,
  callback: Callback | undefined,
  create: Create,
): Duplex | null | undefined {
  // IPC (unix sockets, named pipes) is not egress.
  if (options.socketPath || options.path) return create(options, callback);
  const connection = holdConnection(guard, secure, options);
  if (connection instanceof Error) return fail(callback, connection);
  const opts = connectOptions(connection, options);
  const refusal = (secure ? checkTlsOptions(connection, opts) : undefined) ?? checkAddressLiteral(connection);
  if (refusal) return fail(callback, endRefused(connection.exchange, refusal));
  const socket = create(opts, callback) as net.Socket | null | undefined;
  if (socket) watchConnection(connection, socket);
  return socket;
}

/**
 * The connection's decision: the one a request the http patch decided brings along in its `lookup`, or
 * one made here as a transport (its requests are not in view) and recorded. Returns the error to fail a
 * refused connection with.
 */
function holdConnection(guard: GuardCore, secure: boolean, options: ConnectOptions): AgentConnection | Error {
  const hook = secure ? 'https.agent' : 'http.agent';
  const rawHost =
    typeof options.host === 'string'
      ? options.host
      : typeof options.hostname === 'string'
        ? options.hostname
        : 'localhost';
  const host = bare(rawHost);
  const port = Number(options.port) || (secure ? 443 : 80);
  const carried = contextOf(options.lookup);
  if (carried) return { guard, secure, hook, host, port, context: carried, exchange: undefined };
  const transport = guard.decideTransport(host, port, secure);
  const url = `${secure ? 'https' : 'http'}://${hostForUrl(host)}:${port}/`;
  const checked = recordDecision(guard, transport, { scheme: transport.scheme, host, port }, hook, { url });
  const exchange = new Exchange(guard, checked, hook);
  if (!exchange.allowed) return exchange.refuse();
  const context: ConnectionContext = {
    scheme: transport.scheme,
    host,
    port,
    service: guard.service,
    decision: transport,
    hook,
    id: exchange.id,
  };
  return { guard, secure, hook, host, port, context, exchange };
}

/**
 * The options the connection is made with: a guarded look-up for a connection the agent decided (each
 * address it dials is checked), and for TLS the rule's floor and the guard's `ca` as extra trust.
 */
function connectOptions(connection: AgentConnection, options: ConnectOptions): ConnectOptions {
  const { guard, context } = connection;
  const opts: ConnectOptions = { ...options };
  if (connection.exchange) {
    opts.lookup = guardedLookup(
      dialChecksOf(guard),
      context,
      typeof options.lookup === 'function' ? (options.lookup as net.LookupFunction) : undefined,
    );
  }
  if (!connection.secure) return opts;
  raiseFloor(opts, context.decision);
  // Node's own roots stay, so public hosts keep verifying.
  if (guard.ca !== undefined && opts.ca === undefined) {
    opts.ca = [...tls.rootCertificates, ...(Array.isArray(guard.ca) ? guard.ca : [guard.ca])];
  }
  return opts;
}

/**
 * A caller's cap below the rule's floor, and certificate verification turned off: refused (unless the
 * rule allows it), recorded under the connection's id. Returns the error to refuse the connection with.
 */
function checkTlsOptions(connection: AgentConnection, opts: ConnectOptions): Error | undefined {
  const checks = tlsChecksOf(connection);
  return checks.cappedAt(opts.maxVersion) ?? checks.verification(opts);
}

function tlsChecksOf({ guard, context, hook, host, port }: AgentConnection): TlsChecks {
  const decision = context.decision;
  return new TlsChecks(guard, decision, { scheme: decision.scheme, host, port }, hook, context.id);
}

/** IP literals never reach a look-up: checked here (without install() nothing else would). */
function checkAddressLiteral({ guard, context, host }: AgentConnection): Error | undefined {
  return net.isIP(host) ? checkDialledAddress(guard, context, host) : undefined;
}

/**
 * Watches the socket the agent made: the rule's connect limit while it connects, the negotiated TLS
 * version after the handshake, the guard's EgressTlsError for a handshake that failed on the floor, and
 * the connection's completion when it closes.
 */
function watchConnection(connection: AgentConnection, socket: net.Socket): void {
  const { secure, context } = connection;
  const decision = context.decision;
  if (connection.exchange) endOnClose(socket, connection.exchange);
  if (socket.connecting) holdToConnectLimit(socket, decision, secure);
  if (!secure) return;
  const checks = tlsChecksOf(connection);
  socket.once('secureConnect', () => {
    const failure = checks.negotiated((socket as tls.TLSSocket).getProtocol() ?? 'unknown');
    if (failure) socket.destroy(failure);
  });
  // Wrapped after the completion's watch, so that it records the translated error the caller sees.
  translateErrors(socket, decision);
}

/**
 * The rule's connect limit on a new connection (look-up and handshake included). Its total limit also
 * bounds the attempt (no request could finish on a connection that took longer); once the connection is
 * up no limit applies: it carries many requests, which install() times one by one.
 */
function holdToConnectLimit(socket: net.Socket, decision: Decision, secure: boolean): void {
  const deadlines = new Deadlines(decision, (elapsed) => socket.destroy(elapsed));
  deadlines.connecting();
  socket.once(secure ? 'secureConnect' : 'connect', () => deadlines.clear());
  socket.once('close', () => deadlines.clear());
}

/**
 * A handshake that failed on the version reaches the caller as EgressTlsError. Watched through `emit`:
 * an 'error' listener would change what an unhandled error does.
 */
function translateErrors(socket: net.Socket, decision: Decision): void {
  const emit = socket.emit;
  socket.emit = function emit_(this: net.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'error') args[0] = translateTlsError(decision, args[0] as Error);
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof socket.emit;
}

/** Fails the connection the way `createConnection` reports a failure: to the callback, else thrown. */
function fail(callback: Callback | undefined, error: Error): undefined {
  if (callback) callback(error);
  else throw error;
  return undefined;
}
