/**
 * Every decision, in one place: the decider, and the decisions made later in a request's or a flow's
 * life. The SDK and the edge call these; neither builds a `Decision` itself.
 */
export { type AddressDecision, decideAddresses, decideDialledAddress } from './addresses.js';
export { decideCircuitOpen } from './circuit.js';
export {
  blankDecision,
  CONNECTION_SCHEMES,
  type ConnectionDestination,
  type ConnectionTransport,
  decideAnyScheme,
  decideConnection,
} from './connection.js';
export type { LookupAcceptance } from './decider.js';
export { errorForDecision, timeoutError } from './decision-error.js';
export type { DecisionSource } from './decision-source.js';
export {
  type DnsDecisionSource,
  type DnsQuestion,
  decideDnsAnswerAddress,
  decideDnsQuestion,
} from './dns.js';
export { decideInvalid } from './invalid.js';
export { decideNativeBinding } from './native-binding.js';
export {
  decideProxyHop,
  decideTunnelOpening,
  decideTunnelTarget,
  type ProxyHop,
  parseAuthority,
  type TunnelTarget,
} from './proxy.js';
export { decideProxyAuth, type ProxyAuthAttempt, type ProxyAuthFailure } from './proxy-auth.js';
export { describeDestination, refineDecision } from './refine.js';
export { decideTlsVersion, decideVerifyDisabled, meetsTlsFloor, TLS_VERSION_RANK } from './tls.js';
