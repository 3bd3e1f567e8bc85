import { EgressDeniedError } from '@egress-guard/policy';

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
 * sockets below `net.Socket`, where no guard sees them.
 */
export function patchProcessBinding(): () => void {
  const target = process as unknown as { binding(name: string): unknown };
  const original = target.binding;
  if (typeof original !== 'function') return () => {};
  const patched = function binding(this: unknown, name: string) {
    if (NETWORK_BINDINGS.has(name)) {
      throw new EgressDeniedError(
        `egress denied: process.binding('${name}') opens sockets beneath the guard [protocol_not_allowed]; use net, tls, http or fetch, which the policy decides`,
        { reason: 'protocol_not_allowed' },
      );
    }
    return original.call(this, name);
  };
  target.binding = patched;
  return () => {
    if (target.binding === patched) target.binding = original;
  };
}
