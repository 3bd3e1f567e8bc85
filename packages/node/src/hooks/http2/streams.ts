import type { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import { decideTunnelTarget, parseAuthority, type Scheme } from '@egress-guard/policy';
import type { GuardCore } from '../../guard/guard-core.js';
import { Deadlines } from '../../pipeline/deadlines.js';
import { type Ending, Exchange } from '../../pipeline/exchange.js';
import { errorType } from '../../pipeline/outcome.js';
import { recordDecision } from '../../pipeline/record.js';
import { hostForUrl, stripQuery } from '../http.js';
import { RefusedHttp2Stream } from './refused.js';

type Request = http2.ClientHttp2Session['request'];
type Headers = http2.OutgoingHttpHeaders;

const { NGHTTP2_NO_ERROR } = http2.constants;
export const HOOK = 'http2';

/** Where a session goes, as `http2.connect` worked it out: what each of its streams is decided against. */
export interface SessionOrigin {
  secure: boolean;
  scheme: Scheme;
  host: string;
  port: number;
}

/**
 * Replaces `session.request` with one that decides each stream (`:method`, `:path`; `:authority` for
 * CONNECT) and admits it through its rule's breaker before Node sends anything. A refused stream is a
 * {@link RefusedHttp2Stream}: `request()` writes HEADERS at once on a connected session, so there is no
 * real stream to cancel in time. An allowed stream is timed and ends its exchange when it closes.
 */
export function guardStreams(
  session: http2.ClientHttp2Session,
  guard: GuardCore,
  origin: SessionOrigin,
): void {
  const request = session.request as (...a: unknown[]) => http2.ClientHttp2Stream;
  session.request = function guardedRequest(
    this: http2.ClientHttp2Session,
    headers?: Headers,
    options?: unknown,
  ) {
    // Node throws for a closed or destroyed session: let it, rather than decide a stream that cannot exist.
    if (this.destroyed || this.closed) return request.call(this, headers, options);
    const h = headers ?? {};
    const exchange = decideStream(guard, origin, h);
    const refused = exchange.allowed ? exchange.admit(originOf(origin)) : exchange.refuse();
    if (refused) return new RefusedHttp2Stream(this, h, refused) as unknown as http2.ClientHttp2Stream;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = request.call(this, headers, options);
    } catch (error) {
      // Node refused the caller's headers or options: not the destination's failure, so not the breaker's.
      exchange.end({ outcome: 'error', fields: { 'error.type': errorType(error) } });
      throw error;
    }
    trackStream(stream, exchange);
    return stream;
  } as Request;
}

/**
 * Decides one stream and starts its exchange. For a CONNECT stream that is allowed, the tunnel's target
 * is decided too (see {@link checkTunnelTarget}); the exchange returned is the one to refuse or admit.
 */
function decideStream(guard: GuardCore, origin: SessionOrigin, h: Headers): Exchange {
  const method = String(h[':method'] ?? 'GET').toUpperCase();
  // Extended CONNECT (RFC 8441, `:protocol` set) is a WebSocket or similar on a path, not a tunnel.
  const tunnel = method === 'CONNECT' && h[':protocol'] === undefined;
  // A CONNECT stream is a tunnel to its :authority: that is what the rule's paths see, as in HTTP/1.
  const rawPath = tunnel ? String(h[':authority'] ?? '') : String(h[':path'] ?? '/');
  const websocket = String(h[':protocol'] ?? '').toLowerCase() === 'websocket';
  const scheme: Scheme = websocket ? (origin.secure ? 'wss' : 'ws') : origin.scheme;
  const path = rawPath.startsWith('/') ? rawPath : `/${rawPath}`;
  const exchange = Exchange.begin(
    guard,
    { scheme, host: origin.host, port: origin.port, method, path: stripQuery(rawPath) },
    HOOK,
    { url: `${originOf(origin)}${path}` },
  );
  return tunnel && exchange.allowed ? checkTunnelTarget(exchange, rawPath) : exchange;
}

/**
 * The session's host is a proxy for a CONNECT stream: the tunnel's target must be allowed too, or an
 * allowed proxy would carry a stream to anywhere. It is when a hook just allowed a request to that host
 * and port (the tunnel carries that request, decided and recorded already), or when a rule allows it as
 * a raw `tcp`/`tls` destination. The target's decision is recorded under the stream's id (hook
 * `http2.tunnel`). Returns the stream's exchange, or, when the target is refused, an exchange of that
 * refusal under the same id, so that the stream's one completion names the refused target.
 */
function checkTunnelTarget(stream: Exchange, authority: string): Exchange {
  const { guard } = stream;
  const parsed = parseAuthority(authority);
  if (parsed && guard.recentRequest(parsed.host, parsed.port)) return stream;
  const { decision, target } = decideTunnelTarget(guard.policy, authority, guard.service, guard.clock());
  const at = {
    scheme: decision.scheme,
    host: target?.host ?? decision.host,
    port: target?.port ?? decision.port,
  };
  recordDecision(guard, decision, at, `${HOOK}.tunnel`, {}, stream.id);
  return decision.allowed ? stream : new Exchange(guard, { decision, id: stream.id }, HOOK);
}

/**
 * Times an allowed stream against its rule's limits (see Deadlines: response from the request being
 * sent to the response headers, idle between body chunks, total) and ends its exchange with what
 * happened: status, bytes received, error, or a reset.
 */
function trackStream(stream: http2.ClientHttp2Stream, exchange: Exchange): void {
  let status = 0;
  let bytes = 0;
  let responded = false;
  let error: Error | undefined;
  const finish = () => {
    deadlines.clear();
    exchange.end(streamEnding(stream, error, status, bytes));
  };
  const deadlines = new Deadlines(exchange.decision, (elapsed) => {
    if (exchange.done) return;
    error = elapsed;
    finish();
    stream.destroy(elapsed);
  });
  const push = stream.push;
  stream.push = function push_(this: http2.ClientHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null && chunk !== undefined) {
      bytes += (chunk as { length?: number }).length ?? 0;
      deadlines.data();
    }
    return push.call(this, chunk, encoding);
  } as typeof stream.push;
  observeEmit(stream, (event, args) => {
    switch (event) {
      case 'finish':
        // The request is sent: the response limit runs from now, unless the response came first.
        if (!responded) deadlines.awaitingResponse();
        break;
      case 'response':
        responded = true;
        status = Number((args[0] as http2.IncomingHttpHeaders)[':status']) || 0;
        deadlines.responding();
        break;
      case 'error':
        error ??= args[0] as Error;
        break;
      case 'end':
      case 'close':
        finish();
        break;
    }
  });
}

/**
 * How a stream ended. A stream closed with an RST_STREAM code other than NO_ERROR and no error (Node
 * emits none for CANCEL) ends `error`, typed `rst_<code>`; it does not fail the breaker.
 */
function streamEnding(
  stream: http2.ClientHttp2Stream,
  error: Error | undefined,
  status: number,
  bytes: number,
): Ending {
  const reset = !error && stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR;
  return {
    error,
    status,
    outcome: reset ? 'error' : undefined,
    fields: {
      'egress.bytes.received': bytes,
      // Only on a reset: an `error.type` key here would replace the one the exchange takes from `error`.
      ...(reset ? { 'error.type': `rst_${stream.rstCode}` } : {}),
    },
  };
}

/**
 * Calls `observe` with each event `emitter` emits, before its listeners run. `emit` is wrapped rather
 * than listened to: adding an 'error' listener would change what an unhandled error does, and a 'data'
 * listener would start the stream flowing.
 */
export function observeEmit(
  emitter: EventEmitter,
  observe: (event: string | symbol, args: unknown[]) => void,
): void {
  const emit = emitter.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
  emitter.emit = function emit_(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    observe(event, args);
    return emit.call(this, event, ...args);
  };
}

/** The origin a stream's breaker is keyed by, and its URL starts with. */
function originOf(origin: SessionOrigin): string {
  return `${origin.scheme}://${hostForUrl(origin.host)}:${origin.port}`;
}
