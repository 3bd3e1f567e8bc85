/**
 * @packageDocumentation
 * egress-guard for Node: every outbound path of a service goes through the policy.
 *
 * - `install(options)` patches global fetch/WebSocket, undici, http/https/http2, net/tls and dns;
 * - `createGuard(options)` gives a guard to use explicitly (`guard.dispatcher()`, `guard.httpsAgent()`);
 * - `node --import @egress-guard/node/register app.js` installs from `EGRESS_GUARD_POLICY` and `EGRESS_GUARD_SERVICE`.
 */
export {
  EgressCircuitOpenError,
  EgressDeniedError,
  EgressError,
  EgressPolicyError,
  EgressTimeoutError,
  EgressTlsError,
} from '@egress-guard/policy';
export { type CheckDetails, type Checked, createGuard, EgressGuard } from './egress-guard.js';
export type { GuardOptions } from './guard/guard-options.js';
export { createHttpAgent, createHttpsAgent } from './hooks/http-agents.js';
export {
  type DispatcherLike,
  GuardedDispatcher,
  type GuardedDispatcherOptions,
} from './hooks/undici/guarded-dispatcher.js';
export { type InstallOptions, install, installedGuard, uninstall } from './install.js';
