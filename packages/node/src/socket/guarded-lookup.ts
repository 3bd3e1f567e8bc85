import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { attachContext, type ConnectionContext } from './connection-context.js';

/**
 * What a guarded look-up needs from above: how names are resolved, and the check of each dialled address
 * (made and recorded by the request pipeline, which owns the decision events).
 */
export interface DialChecks {
  readonly baseLookup: LookupFunction;
  checkDialledAddress(context: ConnectionContext, address: string): Error | undefined;
}

/**
 * Wraps a `lookup` so that every address a name resolves to is decided before the socket dials it
 * (check-then-fetch is closed: the addresses checked are the addresses returned to the socket, and the
 * socket dials only what this function returns). If any address is denied, the whole look-up fails:
 * a name that mixes public and internal answers is a rebinding attempt, not a reason to pick one.
 */
export function guardedLookup(
  guard: DialChecks,
  context: ConnectionContext,
  base?: LookupFunction,
): LookupFunction {
  const resolve = base ?? guard.baseLookup;
  const lookup: LookupFunction = (hostname, options, callback) => {
    const opts = typeof options === 'object' && options !== null ? options : {};
    resolving.push(hostname.toLowerCase());
    try {
      resolve(hostname, { ...opts, all: true }, (error, result) => {
        if (error) return callback(error, '', 0);
        const addresses = (
          Array.isArray(result) ? result : [{ address: result as unknown as string, family: 4 }]
        ) as LookupAddress[];
        if (addresses.length === 0)
          return callback(
            Object.assign(new Error(`no addresses for ${hostname}`), { code: 'ENOTFOUND' }),
            '',
            0,
          );
        for (const { address } of addresses) {
          const failure = guard.checkDialledAddress(context, address);
          if (failure) return callback(failure as NodeJS.ErrnoException, '', 0);
        }
        if ((opts as { all?: boolean }).all)
          return (callback as (e: null, a: LookupAddress[]) => void)(null, addresses);
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      });
    } finally {
      resolving.pop();
    }
  };
  return attachContext(lookup, context);
}

// Names a guarded lookup is resolving right now (synchronously, on this stack).
const resolving: string[] = [];

/**
 * Whether a `dns` call for this name comes from the lookup of a connection that was already decided (a
 * `lookup` built on `dns.Resolver` or the patched `dns.lookup`): the dns patch lets it through without
 * deciding or logging it again.
 */
export function resolvingForConnection(hostname: string): boolean {
  return resolving.length > 0 && resolving.includes(hostname.toLowerCase());
}
