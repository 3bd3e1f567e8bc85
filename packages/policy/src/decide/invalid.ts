import type { Decision } from '../types.js';
import { blankDecision } from './connection.js';
import type { DecisionSource } from './decision-source.js';
import { refineDecision } from './refine.js';

/**
 * A destination that could not even be parsed (an origin that is not a URL, a request target in no form
 * HTTP knows, a CONNECT authority without a port). Denied (reported in report mode) as
 * `invalid_destination`, naming what was seen.
 */
export function decideInvalid(
  policy: DecisionSource,
  what: string,
  at: { service: string | undefined; port?: number | undefined },
  now: number = Date.now(),
): Decision {
  return refineDecision(
    blankDecision(policy, at.service, at.port ?? 443, now),
    'invalid_destination',
    `${what} could not be parsed; fix the URL or host (only valid DNS names and IP addresses can be allowed)`,
  );
}
