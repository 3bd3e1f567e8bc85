/**
 * @packageDocumentation
 * The egress-guard edge filter: the policy file enforced on the network, without decryption. Three
 * listener kinds (explicit HTTP proxy, transparent REDIRECT target, SNI-routed), each flow decided by
 * the shared decider from what the first bytes show (TLS ClientHello, HTTP head, SSH banner) and the
 * facts the edge can check itself, then relayed unchanged. Start one with {@link startEdge}.
 */
import { loadPolicyFile, type Policy } from '@egress-guard/policy';
import { EdgeConfigError, type EdgeOptions, resolveEdgeOptions } from './config.js';
import { EdgeServer } from './edge-server.js';

export { ADMIN_LIMITS } from './admin-server.js';
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
  EdgeConfigError,
  type EdgeDns,
  type EdgeDnsInput,
  type EdgeLimits,
  type EdgeLimitsInput,
  type EdgeOptions,
  formatOptionPath,
  formatOptionProblem,
  type ListenerKind,
  type ListenerOptions,
  type OptionProblem,
  type OriginalDestinationReader,
  parseListenAddress,
  parseSniListen,
  type ResolvedEdgeOptions,
  resolveEdgeOptions,
  validateEdgeOptions,
} from './config.js';
export {
  type ConfigDocument,
  ConfigFileError,
  type ConfigProblem,
  type EdgeConfigFile,
  type EdgeFileSettings,
  parseConfigText,
  problemInFile,
  readConfigDocument,
  readEdgeConfigFile,
} from './config-file.js';
export { type AddressBindings, DnsBindings, type DnsBindingsOptions } from './dns/bindings.js';
export type { DnsRefusal } from './dns/dns-guard.js';
export { DNS_METRIC_NAMES } from './dns/dns-metrics.js';
export type { BoundDnsListener } from './dns/dns-service.js';
export { type BoundListener, EdgeServer, type EdgeStats } from './edge-server.js';
export { type FlowOutcome, HOOKS } from './flow-record.js';
export { HostsFile, type HostsFileOptions } from './hosts-file.js';
export { METRIC_NAMES } from './metrics.js';
export {
  type OriginalDestination,
  originalDestination,
  supportsOriginalDestination,
} from './original-destination.js';
export {
  type CredentialTable,
  ProxyAuth,
  type ProxyAuthOptions,
  type ProxyAuthResult,
  readSecretsFile,
  type SecretsFile,
  SecretsFileError,
  tokenDigest,
} from './proxy-auth/index.js';
export { DEFAULT_HOSTS_FILE, SystemResolver, type SystemResolverOptions } from './resolver.js';
export {
  EdgeWorkers,
  type EdgeWorkersStats,
  startEdgeWorkers,
  WORKER_LIMITS,
  WORKER_METRIC_NAMES,
  workerOptionProblems,
} from './workers/edge-workers.js';

/**
 * Validates `options`, loads the policy (a path is read now and watched unless `watch: false`), binds
 * the listeners and the admin server, and resolves with the running {@link EdgeServer}. Throws
 * `EdgeConfigError` for invalid options, `EgressPolicyError` for an invalid policy file, and an Error
 * naming the address for a listener that cannot bind.
 */
export async function startEdge(options: EdgeOptions): Promise<EdgeServer> {
  const resolved = resolveEdgeOptions(options);
  if (resolved.workers > 1) {
    // Never one process where N were asked for.
    throw new EdgeConfigError([
      `workers: startEdge runs the edge in this process; for ${resolved.workers} workers use startEdgeWorkers`,
    ]);
  }
  const policy: Policy =
    typeof resolved.policy === 'string' ? await loadPolicyFile(resolved.policy) : resolved.policy;
  const server = new EdgeServer(resolved, policy);
  await server.start();
  return server;
}
