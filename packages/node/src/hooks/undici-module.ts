import Module, { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import type { GuardCore } from '../guard/guard-core.js';
import { decideLookup } from '../pipeline/record.js';
import { originOf, wasDecided } from './undici/decided-requests.js';
import { GuardedDispatcher } from './undici/guarded-dispatcher.js';
import { failHandler } from './undici/observe-handler.js';

/** Node's CommonJS module cache (`require.cache`): a file's entry is `loaded` once it has run. */
const moduleCache = (Module as unknown as { _cache: NodeJS.Dict<NodeModule> })._cache;

type Dispatch = (this: unknown, opts: object, handler: object) => boolean;
type Interceptor = (
  dispatch: (opts: object, handler: object) => boolean,
) => (opts: object, handler: object) => boolean;

/**
 * Patches `DispatcherBase.prototype.dispatch` of every copy of undici the guard can find (its own, and
 * the application's), so that requests through undici's own `request`, `fetch`, `Client`, `Pool` and
 * `Agent`, including a caller's dispatcher and one set later with `setGlobalDispatcher`, are decided
 * like any other. A copy it cannot find is still held at the socket layer (decided as a raw connection).
 *
 * Also gates undici's DNS interceptor: it resolves the origin's name itself, with the `dns.lookup` it
 * captured when it was loaded (before the dns patch), so a name no rule lists would reach a resolver
 * before any decision. The rewritten request (origin = the IP it picked) is then decided by that address.
 *
 * Copies already loaded are patched now; the others when they load (see {@link onModuleLoaded}), so that
 * installing the guard does not load undici (about 110 files) for an application that may never use it.
 */
export function patchUndiciModules(current: () => GuardCore | undefined, searchFrom: string[]): () => void {
  const restores: Array<() => void> = [];
  const seen = new Set<string>();
  const waiting: UndiciFiles[] = [];
  for (const from of searchFrom) {
    const files = locateUndici(from, seen);
    if (files) waiting.push(files);
  }
  const patchLoaded = (): void => {
    for (let i = waiting.length - 1; i >= 0; i--) {
      const files = waiting[i]!;
      // The base class first (undici's index loads it early, and its own requests may start before the
      // index has finished), the DNS interceptor once the index has loaded.
      if (!files.dispatchPatched && moduleCache[files.base]?.loaded) {
        files.dispatchPatched = true;
        const copy = copyOf(files);
        if (copy) restores.push(patchDispatch(current, copy));
      }
      if (moduleCache[files.main]?.loaded) {
        waiting.splice(i, 1);
        const restoreDns = gateDnsInterceptor(current, moduleCache[files.main]!.exports as UndiciIndex);
        if (restoreDns) restores.push(restoreDns);
      }
    }
    if (waiting.length === 0) stopWatching?.();
  };
  let stopWatching: (() => void) | undefined;
  patchLoaded();
  if (waiting.length > 0) stopWatching = onModuleLoaded(patchLoaded);
  return () => {
    stopWatching?.();
    for (const r of restores.reverse()) r();
  };
}

/** Where one copy of undici is, and how far it has been patched. */
interface UndiciFiles {
  main: string;
  base: string;
  symbols: string;
  dispatchPatched: boolean;
}

/** The parts of one copy of undici the guard patches. */
interface UndiciCopy {
  base: { prototype: Record<string, unknown> };
  /** undici's own symbol for a Client's or Pool's URL, when this version has it. */
  kUrl: symbol | undefined;
}

/** undici's index, as far as the DNS gate uses it. */
type UndiciIndex = { interceptors?: Record<string, unknown> } | undefined;

/**
 * The files of the copy of undici that `from` resolves, without loading it; undefined when there is
 * none, or it was seen already (two places resolving the same copy).
 */
function locateUndici(from: string, seen: Set<string>): UndiciFiles | undefined {
  try {
    const main = createRequire(from).resolve('undici');
    const lib = join(dirname(main), 'lib');
    const base = join(lib, 'dispatcher', 'dispatcher-base.js');
    if (seen.has(base)) return undefined;
    seen.add(base);
    return { main, base, symbols: join(lib, 'core', 'symbols.js'), dispatchPatched: false };
  } catch {
    return undefined;
  }
}

/** A loaded copy's `DispatcherBase` and `kUrl`, or undefined when it has no `DispatcherBase#dispatch`. */
function copyOf(files: UndiciFiles): UndiciCopy | undefined {
  // Read from the module cache, never required: this runs inside a module load (see onModuleLoaded).
  const base = moduleCache[files.base]?.exports as UndiciCopy['base'] | undefined;
  if (!base?.prototype || typeof base.prototype.dispatch !== 'function') return undefined;
  const symbols = moduleCache[files.symbols]?.exports as { kUrl?: symbol } | undefined;
  return { base, kUrl: symbols?.kUrl };
}

type Load = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Calls `check` after each module load (CommonJS `require`, and ESM `import` of a CommonJS file, which
 * Node 20 to 26 also route through `Module._load`) until the returned function is called. The check is
 * two lookups in the module cache per copy still waiting: about 150 ns per load, cached ones included
 * (a thousand requires cost 0.15 ms), where loading undici at install cost over 100 ms. Returns the
 * function that stops it.
 */
function onModuleLoaded(check: () => void): () => void {
  const loader = Module as unknown as { _load: Load };
  const original = loader._load;
  let active = true;
  let checking = false;
  const load: Load = function (this: unknown, ...args) {
    const loaded = original.apply(this, args);
    if (active && !checking) {
      checking = true;
      try {
        check();
      } catch {
        // Never fail the application's own load: a copy not patched is still held at the socket layer.
      } finally {
        checking = false;
      }
    }
    return loaded;
  };
  loader._load = load;
  return () => {
    active = false;
    // Put back only if nothing wrapped it since; otherwise this wrapper stays, inert.
    if (loader._load === load) loader._load = original;
  };
}

/**
 * Patches `DispatcherBase.prototype.dispatch` of one copy: each request not decided yet goes through a
 * guarded dispatcher (one per dispatcher) wrapping the original. Returns the restore.
 */
function patchDispatch(current: () => GuardCore | undefined, { base, kUrl }: UndiciCopy): () => void {
  const original = base.prototype.dispatch as Dispatch;
  const guardedByDispatcher = new WeakMap<object, GuardedDispatcher>();
  const guardedOf = (guard: GuardCore, dispatcher: object): GuardedDispatcher => {
    let guarded = guardedByDispatcher.get(dispatcher);
    if (!guarded) {
      guarded = new GuardedDispatcher(guard, {
        hook: 'undici',
        dispatcher: { dispatch: (o, h) => original.call(dispatcher, o, h) },
      });
      guardedByDispatcher.set(dispatcher, guarded);
    }
    return guarded;
  };
  const patched = function dispatch(this: object, opts: object, handler: object): boolean {
    const guard = current();
    if (!guard || !opts || typeof opts !== 'object') return original.call(this, opts, handler);
    // A Client or Pool sends every request to its own URL, whatever `origin` the options carry (undici's
    // non-tunnelling proxy wrapper hands the proxy's client the target's origin): decide where it goes.
    const own = kUrl ? (this as Record<symbol, { origin?: string } | undefined>)[kUrl]?.origin : undefined;
    const given = (opts as { origin?: unknown }).origin;
    const origin = originOf(own) ?? originOf(given);
    // A dispatcher with no origin of its own (BalancedPool) hands the request to one that has one.
    if (origin === undefined && (given === undefined || given === null))
      return original.call(this, opts, handler);
    if (wasDecided(opts, origin)) return original.call(this, opts, handler);
    try {
      const routed = originOf(given) === origin ? opts : { ...opts, origin };
      return guardedOf(guard, this).dispatch(routed as never, handler as never);
    } catch (error) {
      failHandler(handler, error as Error);
      return false;
    }
  };
  base.prototype.dispatch = patched;
  return () => {
    if (base.prototype.dispatch === patched) base.prototype.dispatch = original;
  };
}

/**
 * Gates undici's DNS interceptor of one copy: a name is decided as a DNS look-up before the interceptor
 * resolves it. Returns the restore, or undefined when this copy has no DNS interceptor.
 */
function gateDnsInterceptor(
  current: () => GuardCore | undefined,
  index: UndiciIndex,
): (() => void) | undefined {
  const interceptors = index?.interceptors;
  const dnsInterceptor = interceptors?.dns as ((options?: unknown) => Interceptor) | undefined;
  if (!interceptors || typeof dnsInterceptor !== 'function') return undefined;
  const gated = function dns(options?: unknown): Interceptor {
    const make = dnsInterceptor(options);
    return (dispatch) => {
      const inner = make(dispatch);
      return function dnsInterceptor(opts, handler) {
        const guard = current();
        const hostname = guard ? hostnameOf((opts as { origin?: unknown }).origin) : undefined;
        if (guard && hostname !== undefined && isIP(hostname) === 0) {
          const decision = decideLookup(guard, hostname, 'undici.dns-interceptor');
          if (!decision.allowed) {
            failHandler(handler, Object.assign(guard.errorFor(decision), { hostname }));
            return true;
          }
        }
        return inner(opts, handler);
      };
    };
  };
  interceptors.dns = gated;
  return () => {
    if (interceptors.dns === gated) interceptors.dns = dnsInterceptor;
  };
}

function hostnameOf(origin: unknown): string | undefined {
  try {
    const host = new URL(String(origin)).hostname;
    return host.startsWith('[') ? host.slice(1, -1) : host;
  } catch {
    return undefined;
  }
}
