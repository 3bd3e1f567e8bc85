import { type Decision, timeoutError } from '@egress-guard/policy';

/** undici's own timeouts (the backstops) reported as the rule's limits, naming the rule. */
export function translateUndiciTimeout(error: Error, decision: Decision): Error {
  switch ((error as { code?: string }).code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return timeoutError('response', decision.timeouts.response, decision, error);
    case 'UND_ERR_BODY_TIMEOUT':
      return timeoutError('idle', decision.timeouts.idle, decision, error);
    case 'UND_ERR_CONNECT_TIMEOUT':
      return timeoutError('connect', decision.timeouts.connect, decision, error);
    default:
      return error;
  }
}
