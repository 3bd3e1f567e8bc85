import dns from 'node:dns';
import type { GuardCore } from '../guard/guard-core.js';
import { decideLookup } from '../pipeline/record.js';
import { resolvingForConnection } from '../socket/guarded-lookup.js';

// Every call that takes a host name and sends it to a resolver. lookupService and reverse take addresses.
const CALLBACK_FUNCTIONS = [
  'lookup',
  'resolve',
  'resolve4',
  'resolve6',
  'resolveAny',
  'resolveCaa',
  'resolveCname',
  'resolveMx',
  'resolveNaptr',
  'resolveNs',
  'resolvePtr',
  'resolveSoa',
  'resolveSrv',
  'resolveTxt',
] as const;

type Patched = { target: Record<string, unknown>; name: string; original: unknown };

/**
 * Patches the `dns` module (callback and promise forms, module functions and Resolver methods) so that a
 * look-up of a name no rule lists never leaves the process: DNS is an exfiltration path (data in the
 * labels of a query). Only denials are logged as decisions: look-ups of allowed names are not egress.
 */
export function patchDns(current: () => GuardCore | undefined): () => void {
  const patched: Patched[] = [];
  const patch = (target: Record<string, unknown>, name: string, promise: boolean) => {
    const original = target[name];
    if (typeof original !== 'function') return;
    const wrapper = function (this: unknown, ...args: unknown[]) {
      const guard = current();
      const host = args[0];
      if (!guard || typeof host !== 'string' || resolvingForConnection(host))
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      // Denials and report-mode would-denials are logged by checkLookup; allowed look-ups are not egress.
      const decision = decideLookup(guard, host, 'dns');
      if (decision.allowed) return (original as (...a: unknown[]) => unknown).apply(this, args);
      const error = Object.assign(guard.errorFor(decision), { hostname: host, syscall: name });
      if (promise) return Promise.reject(error);
      const callback = args.findLast((a) => typeof a === 'function') as ((e: Error) => void) | undefined;
      if (callback) process.nextTick(() => callback(error));
      else throw error;
      return undefined;
    };
    Object.defineProperty(wrapper, 'name', { value: name });
    target[name] = wrapper;
    patched.push({ target, name, original });
  };
  for (const name of CALLBACK_FUNCTIONS) {
    patch(dns as unknown as Record<string, unknown>, name, false);
    patch(dns.Resolver.prototype as unknown as Record<string, unknown>, name, false);
    patch(dns.promises as unknown as Record<string, unknown>, name, true);
    patch(dns.promises.Resolver.prototype as unknown as Record<string, unknown>, name, true);
  }
  return () => {
    for (const { target, name, original } of patched.reverse()) target[name] = original;
  };
}
