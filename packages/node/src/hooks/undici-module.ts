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
    let base: { prototype: Record<string, unknown> } | undefined;
    let symbols: { kUrl?: symbol } = {};
    let index: { interceptors?: Record<string, unknown> } | undefined;
    try {
      const req = createRequire(from);
      const main = req.resolve('undici');
      const file = join(dirname(main), 'lib', 'dispatcher', 'dispatcher-base.js');
      if (seen.has(file)) continue;
      seen.add(file);
      base = req(file);
      symbols = req(join(dirname(main), 'lib', 'core', 'symbols.js'));
      index = req(main);
    } catch {
      continue;
    }
    if (!base?.prototype || typeof base.prototype.dispatch !== 'function') continue;
    const original = base.prototype.dispatch as Dispatch;
    const kUrl = symbols.kUrl;
    const guardedByDispatcher = new WeakMap<object, GuardedDispatcher>();
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
      let gd = guardedByDispatcher.get(this);
      if (!gd) {
        gd = new GuardedDispatcher(guard, {
          hook: 'undici',
          dispatcher: { dispatch: (o, h) => original.call(this, o, h) },
        });
        guardedByDispatcher.set(this, gd);
      }
      try {
        return gd.dispatch(
          (originOf(given) === origin ? opts : { ...opts, origin }) as never,
          handler as never,
        );
      } catch (error) {
        failHandler(handler, error as Error);
        return false;
      }
    };
    base.prototype.dispatch = patched;
    restores.push(() => {
      if (base!.prototype.dispatch === patched) base!.prototype.dispatch = original;
    });

    const interceptors = index?.interceptors;
    const dnsInterceptor = interceptors?.dns as ((options?: unknown) => Interceptor) | undefined;
    if (interceptors && typeof dnsInterceptor === 'function') {
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
      restores.push(() => {
        if (interceptors.dns === gated) interceptors.dns = dnsInterceptor;
      });
    }
  }
  return () => {
    for (const r of restores.reverse()) r();
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
