import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { Decision, Scheme } from '@egress-guard/policy';
import { timeoutError } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { errorType, outcomeOf } from '../pipeline/outcome.js';
import { decideAndRecord, dialChecksOf, recordCompletion } from '../pipeline/record.js';
import { attachContext, type ConnectionContext } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { bare, circuitOpenError, decideTunnelTarget, hostForUrl, raiseFloor, stripQuery } from './http.js';

type Connect = typeof http2.connect;
type Request = http2.ClientHttp2Session['request'];
type Headers = http2.OutgoingHttpHeaders;

const { NGHTTP2_REFUSED_STREAM } = http2.constants;
const HOOK = 'http2';

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
  const original = http2.connect;
  const patched = function connect(this: unknown, ...args: unknown[]): http2.ClientHttp2Session {
    const guard = current();
    const call = () => (original as (...a: unknown[]) => http2.ClientHttp2Session).apply(this, args);
    if (!guard) return call();
    let [authority, options, listener] = args as [
      unknown,
      http2.SecureClientSessionOptions | undefined,
      unknown,
    ];
    if (typeof options === 'function') {
      listener = options;
      options = undefined;
    }
    if (options !== undefined && (typeof options !== 'object' || options === null)) return call();
    let target: { protocol?: string; hostname?: string; host?: string; port?: string | number };
    try {
      target = (typeof authority === 'string' ? new URL(authority) : authority) as typeof target;
    } catch {
      return call();
    }
    if (!target || typeof target !== 'object') return call();
    // The protocol, host and port exactly as http2.connect works them out.
    const protocol = target.protocol || options?.protocol || 'https:';
    const port = Number(
      target.port !== '' && target.port !== undefined ? target.port : target.protocol === 'http:' ? 80 : 443,
    );
    const host = target.hostname ? bare(target.hostname) : target.host ? String(target.host) : 'localhost';
    if ((protocol !== 'http:' && protocol !== 'https:') || !Number.isInteger(port)) return call();
    const secure = protocol === 'https:';
    const scheme: Scheme = secure ? 'https' : 'http';
    const started = performance.now();
    const { decision, id } = decideAndRecord(guard, { scheme, host, port }, HOOK, {
      url: `${protocol}//${hostForUrl(host)}:${port}/`,
    });
    const context: ConnectionContext = {
      scheme,
      host,
      port,
      service: guard.service,
      decision,
      hook: HOOK,
      id,
    };
    if (!decision.allowed) {
      recordCompletion(guard, id, HOOK, decision, {
        outcome: 'denied',
        durationMs: performance.now() - started,
        'error.type': decision.reason,
      });
      const error = guard.errorFor(decision);
      const refusedOptions = { ...options, createConnection: () => refusedSocket(context, port, error) };
      return (original as (...a: unknown[]) => http2.ClientHttp2Session).call(
        this,
        authority,
        refusedOptions,
        listener,
      );
    }
    guard.noteRequest(scheme, host, port);
    const opts: http2.SecureClientSessionOptions & { lookup?: unknown } = {
      ...options,
      lookup: guardedLookup(
        dialChecksOf(guard),
        context,
        typeof options?.lookup === 'function' ? options.lookup : undefined,
      ),
    };
    if (secure) raiseFloor(opts, decision);
    const session = (original as (...a: unknown[]) => http2.ClientHttp2Session).call(
      this,
      authority,
      opts,
      listener,
    );
    trackSession(guard, session, { decision, id, started, secure, scheme, host, port });
    return session;
  } as Connect;
  http2.connect = patched;
  return () => {
    if (http2.connect === patched) http2.connect = original;
  };
}

interface SessionInfo {
  decision: Decision;
  id: string;
  started: number;
  secure: boolean;
  scheme: Scheme;
  host: string;
  port: number;
}

/** Connect timeout, completion event, and a `request()` that decides each stream. */
function trackSession(guard: GuardCore, session: http2.ClientHttp2Session, info: SessionInfo): void {
  const { decision, id, started } = info;
  let error: Error | undefined;
  let tlsVersion: string | undefined;
  const connectTimer = setTimeout(() => {
    error = timeoutError('connect', decision.timeouts.connect, decision);
    // session.destroy() on a session still connecting waits for its socket to close, which a hanging
    // look-up or connect never does: fail the socket itself (the session follows, with this error).
    const socket = rawSocket(session);
    if (socket) socket.destroy(error);
    else session.destroy(error);
  }, decision.timeouts.connect);
  connectTimer.unref();
  session.once('connect', () => {
    clearTimeout(connectTimer);
    const socket = session.socket as unknown as tls.TLSSocket | undefined;
    tlsVersion = info.secure ? (socket?.getProtocol?.() ?? undefined) : undefined;
  });
  const emit = session.emit;
  session.emit = function emit_(this: http2.ClientHttp2Session, event: string | symbol, ...args: unknown[]) {
    if (event === 'error') error ??= args[0] as Error;
    else if (event === 'close') {
      clearTimeout(connectTimer);
      recordCompletion(guard, id, HOOK, decision, {
        outcome: error ? outcomeOf(error) : 'ok',
        durationMs: performance.now() - started,
        'tls.protocol.version': tlsVersion,
        'tls.client.alpn': session.alpnProtocol,
        'error.type': error ? errorType(error) : undefined,
      });
    }
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof session.emit;

  const request = session.request;
  session.request = function guardedRequest(
    this: http2.ClientHttp2Session,
    headers?: Headers,
    options?: unknown,
  ) {
    // Node throws for a closed or destroyed session: let it, rather than decide a stream that cannot exist.
    if (this.destroyed || this.closed)
      return (request as (...a: unknown[]) => http2.ClientHttp2Stream).call(this, headers, options);
    const h = (headers ?? {}) as Headers;
    const method = String(h[':method'] ?? 'GET').toUpperCase();
    const extended = h[':protocol'] !== undefined;
    // A CONNECT stream is a tunnel to its :authority: that is what the rule's paths see, as in HTTP/1.
    const rawPath =
      method === 'CONNECT' && !extended ? String(h[':authority'] ?? '') : String(h[':path'] ?? '/');
    const websocket = String(h[':protocol'] ?? '').toLowerCase() === 'websocket';
    const scheme: Scheme = websocket ? (info.secure ? 'wss' : 'ws') : info.scheme;
    const startedStream = performance.now();
    const { decision: d, id: streamId } = decideAndRecord(
      guard,
      { scheme, host: info.host, port: info.port, method, path: stripQuery(rawPath) },
      HOOK,
      {
        url: `${info.secure ? 'https' : 'http'}://${hostForUrl(info.host)}:${info.port}${rawPath.startsWith('/') ? rawPath : `/${rawPath}`}`,
      },
    );
    if (!d.allowed) {
      recordCompletion(guard, streamId, HOOK, d, {
        outcome: 'denied',
        durationMs: performance.now() - startedStream,
        'error.type': d.reason,
      });
      return new RefusedHttp2Stream(this, h, guard.errorFor(d)) as unknown as http2.ClientHttp2Stream;
    }
    if (method === 'CONNECT' && !extended) {
      // The session's host is a proxy here: the tunnel's target must be allowed too (a destination a hook
      // just allowed, or a raw tcp/tls one), or an allowed proxy would carry a stream to anywhere.
      const tunnel = decideTunnelTarget(guard, HOOK, rawPath);
      if (tunnel.checked && !tunnel.checked.decision.allowed) {
        recordCompletion(guard, streamId, HOOK, tunnel.checked.decision, {
          outcome: 'denied',
          durationMs: performance.now() - startedStream,
          'error.type': tunnel.checked.decision.reason,
        });
        return new RefusedHttp2Stream(
          this,
          h,
          guard.errorFor(tunnel.checked.decision),
        ) as unknown as http2.ClientHttp2Stream;
      }
    }
    const admission = guard.admit(
      d,
      `${info.secure ? 'https' : 'http'}://${hostForUrl(info.host)}:${info.port}`,
    );
    if (admission && !admission.admitted) {
      recordCompletion(guard, streamId, HOOK, d, {
        outcome: 'circuit_open',
        durationMs: performance.now() - startedStream,
        'error.type': 'circuit_open',
      });
      return new RefusedHttp2Stream(
        this,
        h,
        circuitOpenError(d, info.secure, info.host, info.port),
      ) as unknown as http2.ClientHttp2Stream;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = (request as (...a: unknown[]) => http2.ClientHttp2Stream).call(this, headers, options);
    } catch (e) {
      if (admission?.admitted) admission.ticket.succeed();
      recordCompletion(guard, streamId, HOOK, d, {
        outcome: 'error',
        durationMs: performance.now() - startedStream,
        'error.type': errorType(e),
      });
      throw e;
    }
    trackStream(guard, stream, d, streamId, startedStream, admission);
    return stream;
  } as Request;
}

/** Response, idle and total timeouts of one stream, its breaker ticket and its completion event. */
function trackStream(
  guard: GuardCore,
  stream: http2.ClientHttp2Stream,
  decision: Decision,
  id: string,
  started: number,
  admission: ReturnType<GuardCore['admit']>,
): void {
  const t = decision.timeouts;
  let done = false;
  let status = 0;
  let bytes = 0;
  let responded = false;
  let error: Error | undefined;
  let responseTimer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(totalTimer);
    clearTimeout(responseTimer);
    clearTimeout(idleTimer);
    if (admission?.admitted) {
      const code = (error as { code?: string } | undefined)?.code;
      if (error && code !== 'EGRESS_ERR_DENIED' && code !== 'ABORT_ERR') admission.ticket.fail(error);
      else if (status >= 500) admission.ticket.fail(new Error(`HTTP ${status}`));
      else admission.ticket.succeed();
    }
    const reset =
      !error && stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
    recordCompletion(guard, id, HOOK, decision, {
      outcome: error ? outcomeOf(error) : reset || status >= 500 ? 'error' : 'ok',
      durationMs: performance.now() - started,
      'http.response.status_code': status || undefined,
      'egress.bytes.received': bytes,
      'error.type': error ? errorType(error) : reset ? `rst_${stream.rstCode}` : undefined,
    });
  };
  const kill = (kind: 'response' | 'idle' | 'total', limitMs: number) => {
    if (done) return;
    error = timeoutError(kind, limitMs, decision);
    const failure = error;
    finish();
    stream.destroy(failure);
  };
  const arm = (kind: 'response' | 'idle', limitMs: number) => {
    const timer = setTimeout(() => kill(kind, limitMs), limitMs);
    timer.unref();
    return timer;
  };
  const totalTimer = setTimeout(() => kill('total', t.total), t.total);
  totalTimer.unref();
  const push = stream.push;
  stream.push = function push_(this: http2.ClientHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null && chunk !== undefined) {
      bytes += (chunk as { length?: number }).length ?? 0;
      idleTimer?.refresh();
    }
    return push.call(this, chunk, encoding);
  } as typeof stream.push;
  const emit = stream.emit;
  stream.emit = function emit_(this: http2.ClientHttp2Stream, event: string | symbol, ...args: unknown[]) {
    switch (event) {
      case 'finish':
        if (!responded && !done) responseTimer = arm('response', t.response);
        break;
      case 'response': {
        responded = true;
        status = Number((args[0] as http2.IncomingHttpHeaders)[':status']) || 0;
        clearTimeout(responseTimer);
        if (!done) idleTimer = arm('idle', t.idle);
        break;
      }
      case 'end':
        finish();
        break;
      case 'error':
        error ??= args[0] as Error;
        break;
      case 'close':
        finish();
        break;
    }
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof stream.emit;
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

/**
 * The socket of a denied session: asked to connect to a name that never resolves (its look-up fails
 * with the guard's error on the next tick), so it is "connecting" (the session waits for it, emits no
 * 'connect') and then fails without a connect syscall. The look-up carries the denied context so the
 * socket layer lets it through to fail rather than deciding it again.
 */
function refusedSocket(context: ConnectionContext, port: number, error: Error): net.Socket {
  const host = 'egress-guard-denied.invalid';
  const lookup = attachContext(
    ((_host: string, _options: unknown, callback: (e: Error) => void) => {
      process.nextTick(() => callback(error));
    }) as unknown as net.LookupFunction,
    { ...context, host, port },
  );
  const socket = new net.Socket();
  socket.connect({
    host,
    port,
    lookup,
    autoSelectFamily: false,
  } as net.TcpNetConnectOpts);
  return socket;
}

/**
 * Stands in for a `ClientHttp2Stream` the guard refused: nothing is sent; it emits the error and closes
 * on the next tick. Written data is discarded.
 */
class RefusedHttp2Stream extends Duplex {
  readonly id = undefined;
  readonly pending = true;
  readonly aborted = false;
  readonly endAfterHeaders = false;
  readonly bufferSize = 0;
  readonly state = {};
  readonly sentInfoHeaders: Headers[] = [];
  readonly sentTrailers = undefined;
  rstCode: number | undefined = NGHTTP2_REFUSED_STREAM;

  constructor(
    readonly session: http2.ClientHttp2Session,
    readonly sentHeaders: Headers,
    error: Error,
  ) {
    super({
      read() {},
      write(_chunk, _encoding, callback) {
        callback();
      },
    });
    process.nextTick(() => this.destroy(error));
  }

  close(code?: number, callback?: () => void): void {
    if (typeof code === 'number') this.rstCode = code;
    if (callback) this.once('close', callback);
    this.destroy();
  }

  priority(): void {}

  sendTrailers(): void {}

  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    return this;
  }
}
