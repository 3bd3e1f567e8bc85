import type { GuardCore } from '../guard/guard-core.js';
import { type DispatcherLike, GuardedDispatcher, ownUndici } from './undici/guarded-dispatcher.js';

// Node's bundled fetch and WebSocket read the global dispatcher here: `.1` on Node 20-24, `.2` on Node 26.
const GLOBAL_DISPATCHERS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];

/**
 * Guards Node's global fetch (and WebSocket, through the global dispatcher):
 * - the global dispatcher becomes the guard's dispatcher (its own Agent: TLS floor, timeouts, address checks;
 *   through HTTP(S)_PROXY when the global dispatcher it replaces was an EnvHttpProxyAgent);
 * - global `fetch` is wrapped so that a caller-supplied `dispatcher` is wrapped too (the decision applies to
 *   every request and every redirect hop whatever dispatcher carries it), and a later `setGlobalDispatcher`
 *   does not take fetch out of the guard.
 */
export function patchFetch(guard: GuardCore): () => void {
  // Node 22.21+, 24 and 26 started with NODE_USE_ENV_PROXY=1 (or an application that installed one before
  // the guard) have an EnvHttpProxyAgent as global dispatcher: keep going through the proxies it names.
  const proxy = GLOBAL_DISPATCHERS.some(
    (s) =>
      (globalThis as Record<symbol, { constructor?: { name?: string } } | undefined>)[s]?.constructor
        ?.name === 'EnvHttpProxyAgent',
  );
  const own = new GuardedDispatcher(guard, { hook: 'fetch', proxy: proxy ? 'env' : undefined });
  // The global dispatcher sends to the same Agent as `own`, made on the first request of either (undici
  // is not loaded at install): a forwarding object, not `own.inner`, which would make it now.
  const ownAgent: DispatcherLike = {
    dispatch: (opts, handler) => own.inner.dispatch(opts, handler),
    close: (...args) => own.close(...args),
    destroy: (...args) => own.destroy(...args),
  };
  const global = new GuardedDispatcher(guard, { hook: 'undici.global', dispatcher: ownAgent });
  const wrapped = new WeakMap<object, GuardedDispatcher>();
  const wrap = (dispatcher: DispatcherLike): GuardedDispatcher => {
    if (dispatcher instanceof GuardedDispatcher) return dispatcher;
    let g = wrapped.get(dispatcher);
    if (!g) {
      g = new GuardedDispatcher(guard, { hook: 'fetch.caller-dispatcher', dispatcher });
      wrapped.set(dispatcher, g);
    }
    return g;
  };

  const previous = GLOBAL_DISPATCHERS.map((symbol) => ({
    symbol,
    descriptor: Object.getOwnPropertyDescriptor(globalThis, symbol),
  }));
  for (const symbol of GLOBAL_DISPATCHERS) setGlobal(symbol, global);

  const originalFetch = globalThis.fetch;
  let guardedFetch: typeof fetch | undefined;
  if (typeof originalFetch === 'function') {
    guardedFetch = function fetch(input: Parameters<typeof originalFetch>[0], init?: RequestInit) {
      const caller = (init as { dispatcher?: DispatcherLike } | undefined)?.dispatcher;
      const dispatcher = caller ? wrap(caller) : own;
      return originalFetch(input, { ...init, dispatcher } as unknown as RequestInit);
    } as typeof fetch;
    globalThis.fetch = guardedFetch;
  }

  return () => {
    if (guardedFetch && globalThis.fetch === guardedFetch) globalThis.fetch = originalFetch;
    restoreGlobals(previous);
    void own.close?.();
  };
}

/**
 * Puts back the global dispatchers there were before install. Where there was none, a plain undici
 * Agent goes there: Node's fetch makes its own global dispatcher only when its undici is first loaded,
 * which a guarded fetch has already done, and with none it throws an AssertionError. (npm undici used to
 * leave one as a side effect of being loaded at install, which it no longer is.)
 */
function restoreGlobals(
  previous: Array<{ symbol: symbol; descriptor: PropertyDescriptor | undefined }>,
): void {
  let plain: DispatcherLike | undefined;
  for (const { symbol, descriptor } of previous) {
    const now = Object.getOwnPropertyDescriptor(globalThis, symbol);
    if (now?.configurable) {
      if (descriptor) Object.defineProperty(globalThis, symbol, descriptor);
      else delete (globalThis as Record<symbol, unknown>)[symbol];
    } else if (now?.writable) (globalThis as Record<symbol, unknown>)[symbol] = descriptor?.value;
    if ((globalThis as Record<symbol, unknown>)[symbol] === undefined) {
      plain ??= new (ownUndici().Agent)();
      setGlobal(symbol, plain);
    }
  }
}

function setGlobal(symbol: symbol, value: unknown): void {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, symbol);
  // undici's setGlobalDispatcher defines these writable but not configurable: assign when we cannot redefine.
  if (descriptor && !descriptor.configurable) {
    if (descriptor.writable) (globalThis as Record<symbol, unknown>)[symbol] = value;
    return;
  }
  Object.defineProperty(globalThis, symbol, { value, writable: true, configurable: true, enumerable: false });
}
