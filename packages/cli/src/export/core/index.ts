/**
 * The core of `egress-guard export`: what every target builds on. See README.md in this folder for the
 * contract between the core and a target.
 */
export {
  parseAllowWeaker,
  WEAKER_DIMENSION_NAMES,
  WEAKER_DIMENSIONS,
  type WeakerDimension,
} from './dimensions.js';
export {
  ExportError,
  type ExportProblem,
  formatExportProblem,
  formatExportProblems,
} from './export-error.js';
export { headerComment } from './header.js';
export {
  describeHostMatch,
  type HostMatch,
  hostMatchesMayOverlap,
  hostMatchFromText,
  hostMatchKey,
  hostMatchOf,
} from './host-match.js';
export {
  ANY_PORT_REGEX,
  escapeHostName,
  type HostRegexResult,
  hostMatchRegex,
  WILDCARD_GUARDS,
  type WildcardGuard,
  withHostPortRegex,
} from './host-regex.js';
export {
  type AllowedHost,
  buildExportPlan,
  describeEntry,
  type ExportPlan,
  type ExportRule,
  type ExportWarning,
  type Listener,
  MAX_PORTS_PER_RULE,
  type MatchEntry,
  type PlanOptions,
  type PortRange,
  TRANSPORT_DENY_SCHEMES,
  TRANSPORT_SCHEMES,
  type WeakerFinding,
} from './plan.js';
export {
  type Destination,
  type ExportTarget,
  type HostMatching,
  listenOn,
  NAME_DIALLING_PROXY,
  RENDER_DEFAULTS,
  type RenderOptions,
  type TargetSemantics,
  type Transport,
} from './target.js';
