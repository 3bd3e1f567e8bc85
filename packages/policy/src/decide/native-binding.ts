import type { Decision } from '../types.js';
import { blankDecision } from './connection.js';
import type { DecisionSource } from './decision-source.js';
import { refineDecision } from './refine.js';

/**
 * Code asked for a native network handle (`process.binding('tcp_wrap')` and the like), with which it could
 * open sockets beneath every guard. Refused in every mode: no policy can decide what such a socket does.
 */
export function decideNativeBinding(
  policy: DecisionSource,
  binding: string,
  service: string | undefined,
  now: number = Date.now(),
): Decision {
  return refineDecision(
    blankDecision(policy, service, 1, now),
    'protocol_not_allowed',
    `process.binding('${binding}') opens sockets beneath the guard; use net, tls, http or fetch, which the policy decides`,
    true,
  );
}
