import { Agent, Dispatcher, EnvHttpProxyAgent } from 'undici';
import type { GuardCore } from '../../guard/guard-core.js';
import { guardedConnector } from './guarded-connector.js';
import { compose, type Dispatch, guardInterceptors } from './interceptors.js';

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
 * event per request: the guard's interceptors (see interceptors.ts) composed over the dispatcher it wraps.
 */
export class GuardedDispatcher extends Dispatcher {
  readonly inner: DispatcherLike;
  private readonly chain: Dispatch;

  constructor(guard: GuardCore, options: GuardedDispatcherOptions = {}) {
    super();
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
    const inner = this.inner;
    this.chain = compose(
      (opts, handler) => inner.dispatch(opts, handler),
      guardInterceptors(guard, options.hook ?? 'undici'),
    );
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.chain(opts, handler);
  }

  override close(...args: unknown[]): any {
    return (this.inner.close as (...a: unknown[]) => unknown)?.apply(this.inner, args);
  }

  override destroy(...args: unknown[]): any {
    return (this.inner.destroy as (...a: unknown[]) => unknown)?.apply(this.inner, args);
  }
}
