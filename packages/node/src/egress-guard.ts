import type http from 'node:http';
import type https from 'node:https';
import { EgressError, EgressOptionsError, loadPolicyFileSync } from '@egress-guard/policy';
import { GuardCore } from './guard/guard-core.js';
import type { GuardOptions } from './guard/guard-options.js';
import { createHttpAgent, createHttpsAgent } from './hooks/http-agents.js';
import { GuardedDispatcher, type GuardedDispatcherOptions } from './hooks/undici/guarded-dispatcher.js';

export type { CheckDetails, Checked } from './guard/audit-log.js';

/**
 * The guard: the policy in force, its decisions, the audit events, the breakers, and guarded clients to
 * use without `install()`.
 */
export class EgressGuard extends GuardCore {
  /**
   * An undici dispatcher that decides every request and redirect hop (scheme, host, port, method, path),
   * with the rule's TLS floor, timeouts and breaker: for `setGlobalDispatcher(guard.dispatcher())` or a
   * `dispatcher` option, without `install()`. Give `{ dispatcher }` to wrap one of your own instead.
   */
  dispatcher(options: GuardedDispatcherOptions = {}): GuardedDispatcher {
    return new GuardedDispatcher(this, { hook: 'undici', ...options });
  }

  /**
   * An `http.Agent` that decides each connection it opens, for use without `install()` (see
   * `createHttpAgent`). Connection-level: a rule's `methods` and `paths` need `install()`.
   */
  httpAgent(options?: http.AgentOptions): http.Agent {
    return createHttpAgent(this, options);
  }

  /**
   * An `https.Agent` that decides each connection it opens, with the rule's TLS floor and verification
   * rule, for use without `install()` (see `createHttpsAgent`). Connection-level: a rule's `methods` and
   * `paths` need `install()`.
   */
  httpsAgent(options?: https.AgentOptions): https.Agent {
    return createHttpsAgent(this, options);
  }
}

/**
 * Creates a guard without patching anything: use its `dispatcher()`, agents and `lookup` explicitly.
 * Throws EgressPolicyError (with every problem) for an invalid policy, EgressOptionsError for bad options.
 */
export function createGuard(options: GuardOptions = {}): EgressGuard {
  const policyFile = options.policyFile ?? (options.policy ? undefined : process.env.EGRESS_GUARD_POLICY);
  const service = options.service ?? process.env.EGRESS_GUARD_SERVICE ?? undefined;
  if (!options.policy && !policyFile) {
    throw new EgressOptionsError(
      'no policy: pass { policy } or { policyFile }, or set EGRESS_GUARD_POLICY=./egress.yaml',
    );
  }
  const policy = options.policy ?? loadPolicyFileSync(policyFile!);
  return new EgressGuard({ ...options, policyFile, service: service || undefined }, policy);
}

export { EgressError };
