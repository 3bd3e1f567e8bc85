/**
 * @packageDocumentation
 * The egress-guard policy: one contract for the SDK and the edge. Load a policy, ask it for decisions,
 * and emit audit events in the shared schema.
 */
export * from './address/index.js';
export {
  type AllowedAudit,
  AllowedTrafficSummary,
  type AllowedTrafficSummaryOptions,
  type AuditOptions,
  DEFAULT_SUMMARY_INTERVAL_MS,
  LatencyHistogram,
  SUMMARISED_OUTCOMES,
  type SummarisedDecision,
} from './audit-summary.js';
export { canonicalJson } from './canonical-json.js';
export { DEFAULT_BREAKER, DEFAULT_TIMEOUTS, DEFAULT_TLS } from './compiled-rule.js';
export * from './decide/index.js';
export { didYouMean } from './did-you-mean.js';
export { formatDuration, parseDuration } from './duration.js';
export * from './errors.js';
export { EVENT_AUDIT_FILE_ENV } from './event-audit-file.js';
export {
  breakerEventSchema,
  completionEventSchema,
  decisionEventSchema,
  dnsEventSchema,
  droppedEventSchema,
  EVENT_SCHEMA_ID,
  egressEventSchema,
  eventJsonSchema,
  policyDiffSchema,
  policyEventSchema,
  summaryEventSchema,
  workerEventSchema,
} from './event-schema.js';
export { DEFAULT_MAX_BUFFERED_BYTES, type SinkState, type SinkStats } from './event-sink.js';
export * from './events.js';
export { normaliseHostName, type ParsedHost, parseHost } from './host-name.js';
export { compileHostPattern, type HostPattern, hostPatternMatches } from './host-pattern.js';
export { policyJsonSchema } from './json-schema.js';
export {
  OCSF_CLASSES,
  OCSF_VERSION,
  type OcsfEndpoint,
  type OcsfEvent,
  type OcsfOptions,
  toOcsf,
} from './ocsf.js';
export {
  createPolicy,
  loadPolicyFile,
  loadPolicyFileSync,
  Policy,
  type PolicySource,
  parsePolicy,
  type RuleSummary,
} from './policy.js';
export { diffPolicies } from './policy-diff.js';
export { PUBLIC_DOH_HOSTS, publicDohHostsAllowedBy } from './public-doh.js';
export { REASON_CODES, REASON_DESCRIPTIONS, type ReasonCode } from './reason-codes.js';
export {
  expiredReportUntil,
  isReportUntil,
  parseReportUntil,
  REPORT_UNTIL_HINT,
  type ReportPhase,
} from './report-until.js';
export type { PolicyDocument } from './schema.js';
export { positionOf, type SourcePosition } from './source-positions.js';
export * from './types.js';
