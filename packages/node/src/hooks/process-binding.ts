import { decideNativeBinding, errorForDecision } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { recordDecision } from '../pipeline/record.js';

// The native handles beneath net, tls, dgram and dns. Node's own code reaches them through
// internalBinding, never process.binding, so refusing them here breaks nothing of Node's.
const NETWORK_BINDINGS = new Set([
  'tcp_wrap',
  'tls_wrap',
  'udp_wrap',
  'cares_wrap',
  'stream_wrap',
  'js_stream',
]);

/**
 * Refuses `process.binding('tcp_wrap')` and the other network bindings: with them, code could open
 * sockets below `net.Socket`, where no guard sees them. Each refusal is a decision event, in every mode.
 */
export function patchProcessBinding(current: () => GuardCore | undefined): () => void {
  const target = process as unknown as { binding(name: string): unknown };
  const original = target.binding;
  if (typeof original !== 'function') return () => {};
  const patched = function binding(this: unknown, name: string) {
    const guard = current();
    if (guard && NETWORK_BINDINGS.has(name)) {
      const decision = decideNativeBinding(guard.policy, name, guard.service);
      recordDecision(guard, decision, { scheme: 'tcp', port: decision.port }, 'process.binding');
      throw errorForDecision(decision);
    }
    return original.call(this, name);
  };
  target.binding = patched;
  return () => {
    if (target.binding === patched) target.binding = original;
  };
}
