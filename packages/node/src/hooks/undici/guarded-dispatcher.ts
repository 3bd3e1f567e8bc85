import { createRequire } from 'node:module';
import type { Agent, Dispatcher } from 'undici';
import type { GuardCore } from '../../guard/guard-core.js';
import { guardedConnector } from './guarded-connector.js';
import { compose, type Dispatch, guardInterceptors } from './interceptors.js';

// Both builds: the CommonJS one has __filename, the ESM one import.meta.url (tsup shims whichever is missing).
const requireHere = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);

// Only undici's Dispatcher base class (3 small files: it, its handler wrapper and undici's errors) is needed
// to define the class; the rest of undici (about 110 files, which a preload would otherwise pay for
// before the application's first line) is loaded when the guard's own Agent is first needed. undici has
// no exports map, so the deep path resolves under both module systems; it is the same class undici's
// index exports as `Dispatcher`, so `instanceof Dispatcher` holds.
const UndiciDispatcher = requireHere('undici/lib/dispatcher/dispatcher.js') as typeof Dispatcher;

let undici: typeof import('undici') | undefined;

/** The whole of undici (this package's copy), loaded on first use. */
export function ownUndici(): typeof import('undici') {
  undici ??= requireHere('undici') as typeof import('undici');
  return undici;
}

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
export class GuardedDispatcher extends UndiciDispatcher {
  private made: DispatcherLike | undefined;
  private readonly make: (() => DispatcherLike) | undefined;
  /** `close` or `destroy` was called before the Agent was made. */
  private ended = false;
  private readonly chain: Dispatch;

  constructor(guard: GuardCore, options: GuardedDispatcherOptions = {}) {
    super();
    if (options.dispatcher) this.made = options.dispatcher;
    else {
      this.make = () => ownAgent(guard, options);
      // Options of the caller's are checked where they are given (undici throws on bad ones), not at the
      // first request; only the guard's own default Agent (the fetch hook's) waits for its first request.
      if (options.agent) this.made = this.make();
    }
    this.chain = compose(
      (opts, handler) => this.inner.dispatch(opts, handler),
      guardInterceptors(guard, options.hook ?? 'undici'),
    );
  }

  /** Where decided requests go: the dispatcher given, or the guard's own Agent (made on first use). */
  get inner(): DispatcherLike {
    if (this.made) return this.made;
    const made = this.make!();
    this.made = made;
    // Closed before it existed: made destroyed (as undici's close ends), so requests fail as they would on
    // a closed Agent.
    if (this.ended) void made.destroy?.();
    return made;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.chain(opts, handler);
  }

  override close(...args: unknown[]): any {
    return this.end('close', args);
  }

  override destroy(...args: unknown[]): any {
    return this.end('destroy', args);
  }

  private end(method: 'close' | 'destroy', args: unknown[]): unknown {
    if (this.made) return (this.made[method] as (...a: unknown[]) => unknown)?.apply(this.made, args);
    // Never used: nothing to close, and no reason to load undici now. Answered as undici's close and
    // destroy answer (the callback, else a promise of null), and remembered for an Agent made later.
    this.ended = true;
    const callback = args.findLast((a) => typeof a === 'function') as
      | ((error: null, data: null) => void)
      | undefined;
    if (!callback) return Promise.resolve(null);
    queueMicrotask(() => callback(null, null));
    return undefined;
  }
}

/**
 * The guard's own Agent: undici's, with the guarded connector; through `HTTP(S)_PROXY` with
 * `proxy: 'env'`.
 */
function ownAgent(guard: GuardCore, options: GuardedDispatcherOptions): DispatcherLike {
  const { Agent, EnvHttpProxyAgent } = ownUndici();
  const connect = guardedConnector(guard, (options.agent?.connect ?? {}) as never);
  if (options.proxy !== 'env') return new Agent({ ...options.agent, connect });
  // Through a proxy, the TLS to the proxy and to the tunnelled target is not the connector's: it gets the
  // guard's CA here, and the floor and the verification rule from the tls.connect patch.
  const tls = guard.ca !== undefined ? { ca: guard.ca } : undefined;
  return new EnvHttpProxyAgent({
    ...options.agent,
    connect,
    ...(tls ? { requestTls: tls, proxyTls: tls } : {}),
  });
}
