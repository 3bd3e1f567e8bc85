import http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import { type Decision, timeoutError } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { Exchange } from '../pipeline/exchange.js';
import { dialChecksOf } from '../pipeline/record.js';
import type { ConnectionContext } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { bare, hostForUrl, raiseFloor } from './http.js';
import { refusedSocket } from './http2/refused.js';
import { guardStreams, HOOK, observeEmit, type SessionOrigin } from './http2/streams.js';

type Connect = typeof http2.connect;
type ConnectFn = (this: unknown, ...args: unknown[]) => http2.ClientHttp2Session;
type SessionOptions = http2.SecureClientSessionOptions & { lookup?: unknown };

/** The arguments of one `http2.connect` call, as Node reads them, and where the session goes. */
interface ConnectCall {
  authority: unknown;
  options: SessionOptions | undefined;
  listener: unknown;
  origin: SessionOrigin;
}

/**
 * Patches `http2.connect`. The session is decided at connect time (scheme, host, port: no request yet); a
 * denied session is a real `ClientHttp2Session` whose socket fails in its look-up, before any connect, so
 * it emits 'error' then 'close' and the server never sees a packet. An allowed session carries its
 * decision to the socket layer in `lookup` (which `http2.connect` hands to `net.connect`/`tls.connect`),
 * gets the rule's TLS floor and connect timeout, and writes a completion event when it closes.
 *
 * Each `session.request()` is then decided with `:method` and `:path` (`:authority` for CONNECT). A denied
 * stream is never sent: `request()` writes HEADERS at once on a connected session, so there is no real
 * stream to cancel in time. The caller gets instead a `Duplex` shaped like a `ClientHttp2Stream` (`id`
 * undefined, `rstCode` REFUSED_STREAM, `close()`, `setTimeout()`, `priority()`, `sendTrailers()`) that
 * emits the guard's error then 'close' on the next tick, which is how Node reports a stream the server
 * refused. Allowed streams are timed (response, idle, total), drive the rule's breaker and write one
 * completion event each.
 */
export function patchHttp2(current: () => GuardCore | undefined): () => void {
  const original = http2.connect as unknown as ConnectFn;
  const patched = function connect(this: unknown, ...args: unknown[]): http2.ClientHttp2Session {
    const guard = current();
    const call = guard ? readConnectCall(args) : undefined;
    // Without a guard, or with arguments Node would refuse or not read as a destination: Node's own way.
    if (!guard || !call) return original.apply(this, args);
    return connectGuarded(guard, original, this, call);
  } as Connect;
  http2.connect = patched;
  return () => {
    if (http2.connect === patched) http2.connect = original as unknown as Connect;
  };
}

/** `http2.connect(authority[, options][, listener])` read as Node reads it, or undefined to leave to Node. */
function readConnectCall(args: unknown[]): ConnectCall | undefined {
  let [authority, options, listener] = args as [unknown, SessionOptions | undefined, unknown];
  if (typeof options === 'function') {
    listener = options;
    options = undefined;
  }
  if (options !== undefined && (typeof options !== 'object' || options === null)) return undefined;
  let target: { protocol?: string; hostname?: string; host?: string; port?: string | number };
  try {
    target = (typeof authority === 'string' ? new URL(authority) : authority) as typeof target;
  } catch {
    return undefined;
  }
  if (!target || typeof target !== 'object') return undefined;
  // The protocol, host and port exactly as http2.connect works them out.
  const protocol = target.protocol || options?.protocol || 'https:';
  const port = Number(
    target.port !== '' && target.port !== undefined ? target.port : target.protocol === 'http:' ? 80 : 443,
  );
  const host = target.hostname ? bare(target.hostname) : target.host ? String(target.host) : 'localhost';
  if ((protocol !== 'http:' && protocol !== 'https:') || !Number.isInteger(port)) return undefined;
  const secure = protocol === 'https:';
  return { authority, options, listener, origin: { secure, scheme: secure ? 'https' : 'http', host, port } };
}

/**
 * Decides the session and opens it: refused (a session whose socket fails, see refusedSocket), or with
 * its decision on the guarded look-up, the rule's TLS floor, and its streams decided one by one.
 */
function connectGuarded(
  guard: GuardCore,
  original: ConnectFn,
  self: unknown,
  call: ConnectCall,
): http2.ClientHttp2Session {
  const { authority, options, listener, origin } = call;
  const { scheme, host, port, secure } = origin;
  const exchange = Exchange.begin(guard, { scheme, host, port }, HOOK, {
    url: `${scheme}://${hostForUrl(host)}:${port}/`,
  });
  const { decision, id } = exchange;
  const context: ConnectionContext = { scheme, host, port, service: guard.service, decision, hook: HOOK, id };
  if (!exchange.allowed) {
    const error = exchange.refuse();
    const refused = { ...options, createConnection: () => refusedSocket(context, error) };
    return original.call(self, authority, refused, listener);
  }
  guard.noteRequest(scheme, host, port);
  const callerLookup = typeof options?.lookup === 'function' ? options.lookup : undefined;
  const opts: SessionOptions = {
    ...options,
    lookup: guardedLookup(dialChecksOf(guard), context, callerLookup),
  };
  if (secure) raiseFloor(opts, decision);
  const session = original.call(self, authority, opts, listener);
  trackSession(session, exchange, secure);
  guardStreams(session, guard, origin);
  return session;
}

/**
 * Holds an allowed session to the rule's connect limit and ends its exchange when it closes, with the
 * first error it reported and its TLS version and ALPN protocol.
 */
function trackSession(session: http2.ClientHttp2Session, exchange: Exchange, secure: boolean): void {
  let error: Error | undefined;
  let tlsVersion: string | undefined;
  const stopConnectTimeout = connectTimeout(session, exchange.decision, (elapsed) => {
    error = elapsed;
  });
  session.once('connect', () => {
    stopConnectTimeout();
    const socket = session.socket as unknown as tls.TLSSocket | undefined;
    tlsVersion = secure ? (socket?.getProtocol?.() ?? undefined) : undefined;
  });
  observeEmit(session, (event, args) => {
    if (event === 'error') error ??= args[0] as Error;
    else if (event === 'close') {
      stopConnectTimeout();
      exchange.end({
        error,
        fields: { 'tls.protocol.version': tlsVersion, 'tls.client.alpn': session.alpnProtocol },
      });
    }
  });
}

/**
 * The rule's connect limit on a session: `onElapsed` gets the timeout error, then the session fails
 * with it. Returns the function that stops the timer. Not a Deadlines: those also hold the rule's total
 * limit from the start, which is for a request, and a session lives as long as its caller keeps it (each
 * of its streams has its own Deadlines).
 */
function connectTimeout(
  session: http2.ClientHttp2Session,
  decision: Decision,
  onElapsed: (error: Error) => void,
): () => void {
  const limit = decision.timeouts.connect;
  const timer = setTimeout(() => {
    const error = timeoutError('connect', limit, decision);
    onElapsed(error);
    // session.destroy() on a session still connecting waits for its socket to close, which a hanging
    // look-up or connect never does: fail the socket itself (the session follows, with this error).
    const socket = rawSocket(session);
    if (socket) socket.destroy(error);
    else session.destroy(error);
  }, limit);
  timer.unref();
  return () => clearTimeout(timer);
}

/**
 * The session's own socket: `session.socket` is a proxy that refuses `destroy`. Node keeps the socket under
 * an internal `Symbol(socket)`; undefined if a future Node moves it (the caller then falls back).
 */
function rawSocket(session: http2.ClientHttp2Session): net.Socket | undefined {
  const key = Object.getOwnPropertySymbols(session).find((s) => s.description === 'socket');
  const socket = key ? (session as unknown as Record<symbol, unknown>)[key] : undefined;
  return socket instanceof net.Socket ? socket : undefined;
}
