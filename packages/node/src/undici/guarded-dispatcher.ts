import {
  type Decision,
  EgressCircuitOpenError,
  type EgressTimeoutError,
  type Scheme,
} from '@egress-guard/policy';
import { Agent, Dispatcher, EnvHttpProxyAgent } from 'undici';
import type { EgressGuard } from '../egress-guard.js';
import { timeoutError } from '../timeouts.js';
import { markDecided } from './decided-requests.js';
import { guardedConnector } from './guarded-connector.js';
import { failHandler, observeHandler } from './observe-handler.js';

/** The part of a dispatcher the guard needs: any copy of undici's, or Node's bundled one. */
export interface DispatcherLike {
  dispatch(options: Dispatcher.DispatchOptions, handler: object): boolean;
  close?(...args: unknown[]): unknown;
  destroy?(...args: unknown[]): unknown;
}

/** Options of `guard.dispatcher()`. */
export interface GuardedDispatcherOptions {
  /** Wrap this dispatcher instead of the guard's own Agent (a caller's dispatcher: the decision still applies). */
  dispatcher?: DispatcherLike | undefined;
  /** Options of the guard's own undici Agent (ignored with `dispatcher`). */
  agent?: Agent.Options | undefined;
  /**
   * `'env'`: go through the proxies named by `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (undici's
   * EnvHttpProxyAgent), as Node's fetch does with `NODE_USE_ENV_PROXY=1`. The target is still decided
   * per request, and the proxy must be allowed too. Default: connect directly. Ignored with `dispatcher`.
   */
  proxy?: 'env' | undefined;
  /** The hook name written in events. Default `undici`. */
  hook?: string | undefined;
}

/**
 * An undici Dispatcher that decides every request (scheme, host, port, method, path) before passing it
 * on, on every hop of a redirect (each hop is its own dispatch), times it against the rule's response,
 * idle and total timeouts, drives the rule's circuit breaker and writes one decision and one completion
 * event per request.
 */
export class GuardedDispatcher extends Dispatcher {
  readonly inner: DispatcherLike;
  private readonly hook: string;

  constructor(
    private readonly guard: EgressGuard,
    options: GuardedDispatcherOptions = {},
  ) {
    super();
    this.hook = options.hook ?? 'undici';
    const connect = guardedConnector(guard, (options.agent?.connect ?? {}) as never);
    // Through a proxy, the TLS to the proxy and to the tunnelled target is not the connector's: it gets the
    // guard's CA here, and the floor and the verification rule from the tls.connect patch.
    const tls = guard.ca !== undefined ? { ca: guard.ca } : undefined;
    this.inner =
      options.dispatcher ??
      (options.proxy === 'env'
        ? new EnvHttpProxyAgent({
            ...options.agent,
            connect,
            ...(tls ? { requestTls: tls, proxyTls: tls } : {}),
          })
        : new Agent({ ...options.agent, connect }));
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const started = performance.now();
    const origin = parsedOrigin(String(opts.origin));
    if (!origin) {
      failHandler(handler, this.guard.errorFor(this.guard.invalidDecision(String(opts.origin))));
      return false;
    }
    const secure = origin.protocol === 'https:' || origin.protocol === 'wss:';
    const websocket = String(opts.upgrade ?? '').toLowerCase() === 'websocket';
    const scheme: Scheme = websocket ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
    const port = origin.port ? Number(origin.port) : secure ? 443 : 80;
    const rawPath = opts.path ?? '/';
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    const method = opts.method ?? 'GET';
    // Through a forward proxy: a CONNECT names its target as host:port, a forwarded plain-http request
    // (absolute-form, ProxyAgent with proxyTunnel: false) as a URL. Either way this hop goes to the proxy.
    const absolute = ABSOLUTE_FORM.test(rawPath) ? authorityOf(rawPath) : undefined;
    const tunnel = method.toUpperCase() === 'CONNECT' || absolute !== undefined;
    const hook = tunnel ? `${this.hook}.proxy` : this.hook;
    const { decision, id } = tunnel
      ? this.decideTunnel(origin, port, absolute ?? rawPath)
      : this.guard.check({ scheme, host: origin.hostname, port, method, path }, hook, {
          url: `${origin.origin}${rawPath}`,
        });
    if (!decision.allowed) {
      this.guard.complete(id, hook, decision, {
        outcome: 'denied',
        durationMs: performance.now() - started,
        'error.type': decision.reason,
      });
      failHandler(handler, this.guard.errorFor(decision));
      return false;
    }
    // The socket to the proxy (or origin) that this request opens is decided with the scheme allowed here.
    this.guard.noteRequest(tunnel ? decision.scheme : scheme, origin.hostname, port);
    const admission = this.guard.admit(decision, origin.origin);
    if (admission && !admission.admitted) {
      this.guard.complete(id, hook, decision, {
        outcome: 'circuit_open',
        durationMs: performance.now() - started,
        'error.type': 'circuit_open',
      });
      failHandler(
        handler,
        new EgressCircuitOpenError(
          `egress failed fast: the circuit breaker for rule "${decision.rule}" and ${origin.origin} is open after repeated failures; it retries after ${decision.breaker === false ? 0 : decision.breaker.resetTimeout} ms`,
          { rule: decision.rule, host: decision.host, port, policyHash: decision.policyHash },
        ),
      );
      return false;
    }

    const t = decision.timeouts;
    let status = 0;
    let bytes = 0;
    let done = false;
    let abort: ((reason: Error) => void) | undefined;
    let pendingAbort: Error | undefined;
    const finish = (outcome: string, error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(totalTimer);
      const ticket = admission?.admitted ? admission.ticket : undefined;
      if (error || status >= 500) ticket?.fail(error ?? new Error(`HTTP ${status}`));
      else ticket?.succeed();
      this.guard.complete(id, hook, decision, {
        outcome,
        durationMs: performance.now() - started,
        'http.response.status_code': status || undefined,
        'egress.bytes.received': bytes,
        'error.type': error ? ((error as { code?: string }).code ?? error.name) : undefined,
      });
    };
    const totalTimer = setTimeout(() => {
      const error: EgressTimeoutError = timeoutError('total', t.total, decision);
      if (abort) abort(error);
      else pendingAbort = error;
    }, t.total);
    totalTimer.unref?.();

    const observed = observeHandler(handler, {
      onAbortable: (fn) => {
        abort = fn;
        if (pendingAbort) fn(pendingAbort);
      },
      onStatus: (s) => {
        status = s;
      },
      onBytes: (n) => {
        bytes += n;
      },
      onEnd: () => finish(status >= 500 ? 'error' : 'ok'),
      onError: (error) => {
        const delivered = translateTimeout(error, decision);
        finish(isTimeout(error) ? 'timeout' : 'error', delivered);
        return delivered;
      },
    });
    const timed: Dispatcher.DispatchOptions = {
      ...opts,
      headersTimeout: Math.min(opts.headersTimeout ?? Number.POSITIVE_INFINITY, t.response),
      bodyTimeout: Math.min(opts.bodyTimeout ?? Number.POSITIVE_INFINITY, t.idle),
    };
    markDecided(timed, origin.origin, method, rawPath);
    return this.inner.dispatch(timed, observed);
  }

  /**
   * A CONNECT through a forward proxy (undici's ProxyAgent and EnvHttpProxyAgent, or `connect()`): the
   * request being tunnelled was decided on its own when it was dispatched; here the proxy is decided as
   * a transport (its rule lists the proxy's host and port with `schemes: [http]`, or `[https]` for a TLS
   * proxy, or as a raw `[tcp]`/`[tls]` destination; methods and paths do not apply), and the tunnel's target must be the destination of a request a hook just
   * allowed, or be allowed as a raw `tcp`/`tls` destination, so that a tunnel cannot be opened by hand
   * through an allowed proxy to a destination no rule lists.
   */
  private decideTunnel(
    origin: ParsedOrigin,
    port: number,
    authority: string,
  ): { decision: Decision; id: string } {
    const secure = origin.protocol === 'https:';
    const at = { scheme: (secure ? 'https' : 'http') as Scheme, host: origin.hostname, port };
    let decision = this.guard.decide(at);
    // A proxy listed as a raw destination (schemes: [tcp], or [tls] for a TLS proxy) is allowed too.
    if (!decision.allowed && decision.reason === 'scheme_not_allowed') {
      const raw = this.guard.decide({ ...at, scheme: secure ? 'tls' : 'tcp' });
      if (raw.allowed) decision = raw;
    }
    const proxy = this.guard.record(decision, { ...at, scheme: decision.scheme }, `${this.hook}.proxy`, {
      url: origin.origin,
    });
    if (!proxy.decision.allowed) return proxy;
    const target = parseAuthority(authority);
    if (!target) return { decision: this.guard.invalidDecision(`CONNECT ${authority}`), id: proxy.id };
    if (this.guard.recentRequest(target.host, target.port)) return proxy;
    const tcp = { scheme: 'tcp' as const, host: target.host, port: target.port };
    let raw = this.guard.decide(tcp);
    if (!raw.allowed && raw.reason === 'scheme_not_allowed') {
      const tls = this.guard.decide({ ...tcp, scheme: 'tls' });
      if (tls.allowed) raw = tls;
    }
    const checked = this.guard.record(raw, { ...tcp, scheme: raw.scheme }, `${this.hook}.tunnel`);
    return raw.allowed ? proxy : checked;
  }

  override close(...args: unknown[]): any {
    return (this.inner.close as (...a: unknown[]) => unknown)?.apply(this.inner, args);
  }

  override destroy(...args: unknown[]): any {
    return (this.inner.destroy as (...a: unknown[]) => unknown)?.apply(this.inner, args);
  }
}

function isTimeout(error: Error): boolean {
  const code = (error as { code?: string }).code;
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'EGRESS_ERR_TIMEOUT'
  );
}

/** The error recorded for undici's own timeouts says which limit of the rule elapsed. */
function translateTimeout(error: Error, decision: Parameters<typeof timeoutError>[2]): Error {
  const code = (error as { code?: string }).code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT')
    return timeoutError('response', decision.timeouts.response, decision, error);
  if (code === 'UND_ERR_BODY_TIMEOUT') return timeoutError('idle', decision.timeouts.idle, decision, error);
  if (code === 'UND_ERR_CONNECT_TIMEOUT')
    return timeoutError('connect', decision.timeouts.connect, decision, error);
  return error;
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

type ParsedOrigin = Pick<URL, 'protocol' | 'hostname' | 'port' | 'origin'>;
// A process talks to few origins: each is parsed once, not on every request.
const parsedOrigins = new Map<string, ParsedOrigin | null>();

function parsedOrigin(text: string): ParsedOrigin | undefined {
  let parsed = parsedOrigins.get(text);
  if (parsed === undefined) {
    try {
      const u = new URL(text);
      parsed = { protocol: u.protocol, hostname: u.hostname, port: u.port, origin: u.origin };
    } catch {
      parsed = null;
    }
    if (parsedOrigins.size >= 1024) parsedOrigins.clear();
    parsedOrigins.set(text, parsed);
  }
  return parsed ?? undefined;
}

/** `host:port` of an absolute-form request target (with the scheme's default port), or `''` if unparsable. */
function authorityOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80)}`;
  } catch {
    return '';
  }
}

/** `host:port` or `[v6]:port`, as a CONNECT request names its target. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:/\s]+)):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host: (m[1] ?? m[2])!, port } : undefined;
}
