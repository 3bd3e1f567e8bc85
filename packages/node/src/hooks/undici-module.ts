import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import type { GuardCore } from '../guard/guard-core.js';
import { decideLookup } from '../pipeline/record.js';
import { originOf, wasDecided } from './undici/decided-requests.js';
import { GuardedDispatcher } from './undici/guarded-dispatcher.js';
import { failHandler } from './undici/observe-handler.js';

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
 */
export function patchUndiciModules(current: () => GuardCore | undefined, searchFrom: string[]): () => void {
  const restores: Array<() => void> = [];
  const seen = new Set<string>();
  for (const from of searchFrom) {
    const copy = loadUndici(from, seen);
    if (!copy) continue;
    restores.push(patchDispatch(current, copy));
    const restoreDns = gateDnsInterceptor(current, copy.index);
    if (restoreDns) restores.push(restoreDns);
  }
  return () => {
    for (const r of restores.reverse()) r();
  };
}

/** The parts of one copy of undici the guard patches. */
interface UndiciCopy {
  base: { prototype: Record<string, unknown> };
  /** undici's own symbol for a Client's or Pool's URL, when this version has it. */
  kUrl: symbol | undefined;
  index: { interceptors?: Record<string, unknown> } | undefined;
}

/**
 * The copy of undici that `from` resolves, or undefined when there is none, it was seen already (two
 * places resolving the same copy), or it has no `DispatcherBase#dispatch` to patch.
 */
function loadUndici(from: string, seen: Set<string>): UndiciCopy | undefined {
  try {
    const req = createRequire(from);
    const main = req.resolve('undici');
    const file = join(dirname(main), 'lib', 'dispatcher', 'dispatcher-base.js');
    if (seen.has(file)) return undefined;
    seen.add(file);
    const base = req(file) as UndiciCopy['base'] | undefined;
    if (!base?.prototype || typeof base.prototype.dispatch !== 'function') return undefined;
    const symbols = req(join(dirname(main), 'lib', 'core', 'symbols.js')) as { kUrl?: symbol };
    return { base, kUrl: symbols.kUrl, index: req(main) };
  } catch {
    return undefined;
  }
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
  index: UndiciCopy['index'],
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
