import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { EgressGuard } from '../egress-guard.js';
import { decidedRequests } from '../undici/decided-requests.js';
import { failHandler } from '../undici/observe-handler.js';
import { GuardedDispatcher } from '../undici/guarded-dispatcher.js';


/**
 * Patches `DispatcherBase.prototype.dispatch` of every copy of undici the guard can find (its own, and
 * the application's), so that requests through undici's own `request`, `fetch`, `Client`, `Pool` and
 * `Agent`, including a caller's dispatcher and one set later with `setGlobalDispatcher`, are decided
 * like any other. A copy it cannot find is still held at the socket layer (decided as a raw connection).
 */
export function patchUndiciModules(current: () => EgressGuard | undefined, searchFrom: string[]): () => void {
  const restores: Array<() => void> = [];
  const seen = new Set<string>();
  for (const from of searchFrom) {
    let base: { prototype: Record<string, unknown> } | undefined;
    try {
      const req = createRequire(from);
      const main = req.resolve('undici');
      const file = join(dirname(main), 'lib', 'dispatcher', 'dispatcher-base.js');
      if (seen.has(file)) continue;
      seen.add(file);
      base = req(file);
    } catch {
      continue;
    }
    if (!base?.prototype || typeof base.prototype.dispatch !== 'function') continue;
    const original = base.prototype.dispatch as (this: unknown, opts: object, handler: object) => boolean;
    const guardedByDispatcher = new WeakMap<object, GuardedDispatcher>();
    const patched = function dispatch(this: object, opts: object, handler: object): boolean {
      const guard = current();
      if (!guard || !opts || typeof opts !== 'object' || decidedRequests.has(opts)) return original.call(this, opts, handler);
      let gd = guardedByDispatcher.get(this);
      if (!gd) {
        // Decide through a GuardedDispatcher whose inner dispatch is the original method on this instance.
        const self = this;
        gd = new GuardedDispatcher(guard, { hook: 'undici', dispatcher: { dispatch: (o, h) => original.call(self, o, h) } });
        guardedByDispatcher.set(this, gd);
      }
      try {
        return gd.dispatch(opts as never, handler as never);
      } catch (error) {
        failHandler(handler, error as Error);
        return false;
      }
    };
    base.prototype.dispatch = patched;
    restores.push(() => {
      if (base!.prototype.dispatch === patched) base!.prototype.dispatch = original;
    });
  }
  return () => {
    for (const r of restores.reverse()) r();
  };
}
