import {
  type Decision,
  type Destination,
  decideTlsVersion,
  decideVerifyDisabled,
  errorForDecision,
  meetsTlsFloor,
} from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { recordDecision } from './record.js';

/** The options of a TLS connection that its rule's TLS settings govern. */
export interface TlsAsk {
  maxVersion?: string | undefined;
  rejectUnauthorized?: boolean | undefined;
}

/**
 * The TLS rule of one connection's decision (its floor, and whether certificate verification may be off),
 * checked at the moments a hook sees: the caller's options before connecting, and the version negotiated
 * after the handshake. Each finding is recorded under the connection's id (hooks `<hook>.floor` and
 * `<hook>.verify-disabled`), so that it is tied to the decision it refines; with no id (a connection that
 * has no event of its own) it gets a fresh one. Each check returns the error to refuse the connection
 * with, or undefined to go ahead: always undefined in report mode, which logs and blocks nothing.
 */
export class TlsChecks {
  constructor(
    private readonly guard: GuardCore,
    readonly decision: Decision,
    private readonly dest: Omit<Destination, 'service'>,
    private readonly hook: string,
    private readonly id: string | undefined,
  ) {}

  /** A caller capping TLS below the floor (`maxVersion`): such a connection could never meet it. */
  cappedAt(maxVersion: string | undefined): Error | undefined {
    if (!maxVersion || meetsTlsFloor(maxVersion, this.decision.tls.minVersion)) return undefined;
    return this.found(decideTlsVersion(this.decision, `the caller capped TLS at ${maxVersion}`), 'floor');
  }

  /**
   * A caller that turned certificate verification off: refused unless the rule says `tls.verify: false`,
   * where it is allowed and recorded on every use.
   */
  verification(ask: TlsAsk): Error | undefined {
    if (!verificationOff(ask)) return undefined;
    return this.found(decideVerifyDisabled(this.decision), 'verify-disabled');
  }

  /** The version the handshake settled on (`unknown` when Node could not tell). */
  negotiated(version: string): Error | undefined {
    if (meetsTlsFloor(version, this.decision.tls.minVersion)) return undefined;
    return this.found(decideTlsVersion(this.decision, `the server negotiated ${version}`), 'floor');
  }

  private found(finding: Decision, what: 'floor' | 'verify-disabled'): Error | undefined {
    recordDecision(this.guard, finding, this.dest, `${this.hook}.${what}`, {}, this.id);
    return finding.allowed ? undefined : errorForDecision(finding);
  }
}

/**
 * Whether a connection will not verify the server's certificate: `rejectUnauthorized: false`, or left
 * unset while `NODE_TLS_REJECT_UNAUTHORIZED=0` (the process-wide way of turning verification off, which
 * Node applies to every TLS connection that does not say otherwise).
 */
export function verificationOff(ask: TlsAsk): boolean {
  return (
    ask.rejectUnauthorized === false ||
    (ask.rejectUnauthorized === undefined && process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0')
  );
}
