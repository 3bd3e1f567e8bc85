import type { ReasonCode } from './reason-codes.js';

/** Stable error codes. Never rename one. */
export type EgressErrorCode =
  | 'EGRESS_ERR_DENIED'
  | 'EGRESS_ERR_TLS'
  | 'EGRESS_ERR_TIMEOUT'
  | 'EGRESS_ERR_CIRCUIT_OPEN'
  | 'EGRESS_ERR_POLICY'
  | 'EGRESS_ERR_INVALID_OPTIONS';

/** Structured fields carried by every egress error. */
export interface EgressErrorFields {
  reason?: ReasonCode | undefined;
  rule?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  /** sha256 of the policy that made the decision. */
  policyHash?: string | undefined;
  cause?: unknown;
}

// A brand shared across copies of this package (ESM and CJS builds, two versions in one tree), so
// `instanceof EgressError` holds for an error made by any copy.
const BRAND = Symbol.for('egress-guard.error');

/**
 * Base class of every error egress-guard throws. `code` is stable; `reason` is the decision reason code.
 * `instanceof` works across copies of the package through a `Symbol.for` brand.
 */
export class EgressError extends Error {
  readonly code: EgressErrorCode;
  readonly reason: ReasonCode | undefined;
  readonly rule: string | undefined;
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly policyHash: string | undefined;

  constructor(code: EgressErrorCode, message: string, fields: EgressErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = new.target.name;
    this.code = code;
    this.reason = fields.reason;
    this.rule = fields.rule;
    this.host = fields.host;
    this.port = fields.port;
    this.policyHash = fields.policyHash;
    Object.defineProperty(this, BRAND, { value: code });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || !(BRAND in value)) return false;
    // Subclasses check their own code so `instanceof EgressDeniedError` stays precise across copies.
    const own = (this as { brandCode?: EgressErrorCode }).brandCode;
    return own === undefined || (value as Record<symbol, unknown>)[BRAND] === own;
  }
}

/** The policy denied the destination. */
export class EgressDeniedError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_DENIED' as const;
  constructor(message: string, fields: EgressErrorFields) {
    super('EGRESS_ERR_DENIED', message, fields);
  }
}

/** The TLS floor or certificate verification rule refused the connection. */
export class EgressTlsError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_TLS' as const;
  constructor(message: string, fields: EgressErrorFields) {
    super('EGRESS_ERR_TLS', message, fields);
  }
}

/** Which limit elapsed. */
export type TimeoutKind = 'connect' | 'response' | 'idle' | 'total';

/** A connect, response, idle or total timeout from the rule elapsed. */
export class EgressTimeoutError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_TIMEOUT' as const;
  readonly timeout: TimeoutKind;
  readonly limitMs: number;
  constructor(message: string, fields: EgressErrorFields & { timeout: TimeoutKind; limitMs: number }) {
    super('EGRESS_ERR_TIMEOUT', message, { reason: 'timeout', ...fields });
    this.timeout = fields.timeout;
    this.limitMs = fields.limitMs;
  }
}

/** The circuit breaker for this rule and origin is open: failed fast, no connection opened. */
export class EgressCircuitOpenError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_CIRCUIT_OPEN' as const;
  constructor(message: string, fields: EgressErrorFields) {
    super('EGRESS_ERR_CIRCUIT_OPEN', message, { reason: 'circuit_open', ...fields });
  }
}

/** Options given to an egress-guard constructor are invalid. */
export class EgressOptionsError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_INVALID_OPTIONS' as const;
  constructor(message: string) {
    super('EGRESS_ERR_INVALID_OPTIONS', message);
  }
}

/** One problem found in a policy file, with its place. */
export interface PolicyProblem {
  /** Path inside the document, e.g. `allow[0].hosts[1]`. */
  path: string;
  message: string;
  hint?: string | undefined;
  file?: string | undefined;
  /** 1-based line and column; 0 when the place is unknown (e.g. a policy given as an object). */
  line: number;
  column: number;
}

/**
 * Formats a problem as `file:line:column path: message (hint)`. A problem without a known place (line 0)
 * gets none rather than a made-up `0:0`: `file path: message`, or `file: message`.
 */
export function formatProblem(p: PolicyProblem): string {
  const file = p.file ?? '<policy>';
  const where = p.line > 0 ? `${file}:${p.line}:${p.column}` : file;
  const at = p.path ? ` ${p.path}:` : p.line > 0 ? '' : ':';
  return `${where}${at} ${p.message}${p.hint ? ` (${p.hint})` : ''}`;
}

/** The policy could not be loaded. Lists every problem at once, each with file, line, column and hint. */
export class EgressPolicyError extends EgressError {
  static readonly brandCode = 'EGRESS_ERR_POLICY' as const;
  readonly problems: readonly PolicyProblem[];
  constructor(problems: readonly PolicyProblem[], file?: string) {
    const head = `invalid egress policy${file ? ` ${file}` : ''}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    super('EGRESS_ERR_POLICY', [head, ...problems.map((p) => `  ${formatProblem(p)}`)].join('\n'));
    this.problems = problems;
  }
}
