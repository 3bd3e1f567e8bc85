import type { Decision } from '../types.js';
import type { DecisionSource } from './decision-source.js';
import { refineDecision } from './refine.js';

/** Why a proxy request's credentials were not accepted. */
export type ProxyAuthFailure = 'missing' | 'invalid' | 'rate_limited';

/** A request to a proxy whose credentials were not accepted. */
export interface ProxyAuthAttempt {
  failure: ProxyAuthFailure;
  /** The destination the request named (CONNECT target or URL host), when it named one. */
  host?: string | undefined;
  port: number;
  /**
   * The service the credentials claimed to be, only when it is a service the proxy has credentials for
   * (a user name that is not one may be a token pasted in the wrong field: it is never recorded).
   */
  service?: string | undefined;
  /** What was wrong, for the message; never the credentials themselves. */
  detail: string;
}

const REASON = {
  missing: 'proxy_auth_required',
  invalid: 'proxy_auth_invalid',
  rate_limited: 'proxy_auth_rate_limited',
} as const;

/**
 * Decides a proxy request whose service credentials were missing, wrong, or tried too often from its
 * source. Always denied, in report mode too: the credentials say which policy applies at all, so without
 * them there is nothing to report against; and the limit on failures protects the tokens themselves. No
 * rule applies (the destination was never decided).
 */
export function decideProxyAuth(
  policy: DecisionSource,
  attempt: ProxyAuthAttempt,
  now: number = Date.now(),
): Decision {
  const base = policy.decide(
    { scheme: 'tcp', host: attempt.host, port: attempt.port, service: attempt.service },
    now,
  );
  const how =
    attempt.failure === 'rate_limited'
      ? `${attempt.detail}; fix the client's credentials and retry once the window has passed`
      : `${attempt.detail}; give the service's token as Proxy-Authorization (HTTPS_PROXY=http://SERVICE:TOKEN@edge:PORT)`;
  return refineDecision(
    { ...base, rule: undefined, ruleKind: undefined },
    REASON[attempt.failure],
    how,
    true,
  );
}
