import type { GuardCore } from '../guard/guard-core.js';
import { type DispatcherLike, GuardedDispatcher } from './undici/guarded-dispatcher.js';

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
  const global = new GuardedDispatcher(guard, { hook: 'undici.global', dispatcher: own.inner });
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
    for (const { symbol, descriptor } of previous) {
      const now = Object.getOwnPropertyDescriptor(globalThis, symbol);
      if (now?.configurable) {
        if (descriptor) Object.defineProperty(globalThis, symbol, descriptor);
        else delete (globalThis as Record<symbol, unknown>)[symbol];
      } else if (now?.writable) (globalThis as Record<symbol, unknown>)[symbol] = descriptor?.value;
    }
    void own.close?.();
  };
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

/** Whether the global dispatchers are still the guard's (a later setGlobalDispatcher replaces them). */
export function globalDispatcherIsGuarded(): boolean {
  return GLOBAL_DISPATCHERS.every(
    (s) => (globalThis as Record<symbol, unknown>)[s] instanceof GuardedDispatcher,
  );
}
