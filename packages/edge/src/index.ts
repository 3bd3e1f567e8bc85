/**
 * @packageDocumentation
 * The egress-guard edge filter: the policy file enforced on the network, without decryption. Three
 * listener kinds (explicit HTTP proxy, transparent REDIRECT target, SNI-routed), each flow decided by
 * the shared decider from what the first bytes show (TLS ClientHello, HTTP head, SSH banner) and the
 * facts the edge can check itself, then relayed unchanged. Start one with {@link startEdge}.
 */
import { loadPolicyFile, type Policy } from '@egress-guard/policy';
import { type EdgeOptions, resolveEdgeOptions } from './config.js';
import { EdgeServer } from './edge-server.js';

export {
  type DnsAnswer,
  type EdgeResolver,
  ResolverCache,
  type ResolverCacheOptions,
  resolverFromLookup,
} from './claims.js';
export {
  type DurationInput,
  EDGE_DEFAULTS,
  EDGE_USAGE,
  EdgeConfigError,
  type EdgeDns,
  type EdgeDnsInput,
  type EdgeLimits,
  type EdgeLimitsInput,
  type EdgeOptions,
  type ListenerKind,
  type ListenerOptions,
  type OriginalDestinationReader,
  parseEdgeArgs,
  type ResolvedEdgeOptions,
  resolveEdgeOptions,
} from './config.js';
export { ConfigFileError, parseConfigText } from './config-file.js';
export { type BoundListener, EdgeServer, type EdgeStats } from './edge-server.js';
export { type EdgeCompletionEvent, type FlowOutcome, HOOKS } from './flow-record.js';
export { METRIC_NAMES } from './metrics.js';
export {
  type OriginalDestination,
  originalDestination,
  supportsOriginalDestination,
} from './original-destination.js';

/**
 * Validates `options`, loads the policy (a path is read now and watched unless `watch: false`), binds
 * the listeners and the admin server, and resolves with the running {@link EdgeServer}. Throws
 * `EdgeConfigError` for invalid options, `EgressPolicyError` for an invalid policy file, and an Error
 * naming the address for a listener that cannot bind.
 */
export async function startEdge(options: EdgeOptions): Promise<EdgeServer> {
  const resolved = resolveEdgeOptions(options);
  const policy: Policy =
    typeof resolved.policy === 'string' ? await loadPolicyFile(resolved.policy) : resolved.policy;
  const server = new EdgeServer(resolved, policy);
  await server.start();
  return server;
}
