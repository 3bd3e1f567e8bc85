/**
 * From a decided name to the addresses the edge may dial. Explicit and SNI-routed flows: the edge's own
 * resolver answers, and every address is decided again (special-purpose rule). Transparent flows: the
 * claimed name must resolve to the original destination, which is then the one address dialled.
 */
import {
  type Decision,
  decideAddresses,
  type Policy,
  refineDecision,
  type Scheme,
} from '@egress-guard/policy';

import { decisionsFor } from './decision-memo.js';
import type { EdgeRuntime } from './runtime.js';
import { ALERT } from './tls-wire.js';

/** Collects a flow's checks: a denial stops it; in report mode the first would-deny is remembered. */
export class Checks {
  /** The first would-deny in report mode: what the decision event reports. */
  reported: Decision | undefined;
  /** The denial that stopped the flow. */
  denied: Decision | undefined;
  /** The TLS alert to send with the denial. */
  alert: number = ALERT.accessDenied;

  /** Records `d` unless it allows; returns true when the flow must stop. */
  fail(d: Decision, alert: number = ALERT.accessDenied): boolean {
    if (d.result === 'allowed') return false;
    if (d.result === 'denied') {
      this.denied ??= d;
      this.alert = alert;
      return true;
    }
    this.reported ??= d;
    return false;
  }
}

/** What is known about where a flow goes. */
export interface DestinationQuery {
  scheme: Scheme;
  port: number;
  service: string | undefined;
  method?: string | undefined;
  path?: string | undefined;
  /** The normalised name that was decided, if any. */
  name?: string | undefined;
  /** An IP literal the client named (CONNECT target, URL host), canonical; dialled as is. */
  literal?: string | undefined;
  /** Transparent: the address the client connected to; `name`, if given, must resolve to it. */
  original?: string | undefined;
}

/** Where {@link resolveDestination} leads. */
export type DestinationResult =
  /** Addresses to dial (empty when denied: see `checks.denied`) and the decision for them. */
  | { status: 'decided'; decision: Decision; dial: string[] }
  /** The name resolved to nothing. */
  | { status: 'unresolved' }
  /** Neither a name, a literal nor an original address: nothing to dial. */
  | { status: 'nothing' };

/**
 * Finds the addresses to dial for `q` and decides each; denials and would-denies go into `checks`.
 * No name is ever resolved unless the caller already decided it is allowed (DNS is an exfiltration path).
 */
export async function resolveDestination(
  rt: EdgeRuntime,
  policy: Policy,
  q: DestinationQuery,
  checks: Checks,
): Promise<DestinationResult> {
  const now = Date.now();
  const decider = decisionsFor(policy);
  const base = { scheme: q.scheme, port: q.port, service: q.service, method: q.method, path: q.path };
  if (q.original !== undefined) {
    const address = q.original;
    if (q.literal !== undefined) {
      // The claim is an address: it must be the one the client connected to.
      if (q.literal !== address) {
        const how = `the request names the address ${q.literal} but the client connected to ${address}`;
        if (checks.fail(refineDecision(decider.decide({ ...base, address }, now), 'dns_mismatch', how))) {
          return { status: 'decided', decision: checks.denied!, dial: [] };
        }
      }
      const decision = decider.decide({ ...base, address }, now);
      checks.fail(decision);
      return { status: 'decided', decision, dial: decision.allowed ? [address] : [] };
    }
    if (q.name !== undefined && !(await rt.resolver.resolvesTo(q.name, address))) {
      const how = `${q.name} does not resolve to ${address}, the address the client connected to (checked through the edge's resolver)`;
      if (checks.fail(refineDecision(decider.decide({ ...base, host: q.name }, now), 'dns_mismatch', how))) {
        return { status: 'decided', decision: checks.denied!, dial: [] };
      }
    }
    const decision = decider.decide({ ...base, host: q.name, address }, now);
    checks.fail(decision);
    return { status: 'decided', decision, dial: decision.allowed ? [address] : [] };
  }
  if (q.literal !== undefined) {
    const decision = decider.decide({ ...base, host: q.literal, address: q.literal }, now);
    checks.fail(decision);
    return { status: 'decided', decision, dial: decision.allowed ? [q.literal] : [] };
  }
  if (q.name === undefined) return { status: 'nothing' };
  const addresses = await rt.resolver.resolve(q.name);
  rt.metrics.dnsNames.set(rt.resolver.size);
  if (addresses.length === 0) return { status: 'unresolved' };
  const result = decideAddresses(decider, { ...base, host: q.name }, addresses, Date.now());
  checks.fail(result.decision);
  return { status: 'decided', decision: result.decision, dial: result.dial };
}
