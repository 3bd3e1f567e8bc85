import {
  type Decision,
  type Destination,
  decideDialledAddress,
  isSpecialPurpose,
  parseIpLiteral,
  unmapIpv4,
} from '@egress-guard/policy';
import type { CheckDetails, Checked, CompletionFields } from '../guard/audit-log.js';
import type { GuardCore } from '../guard/guard-core.js';
import type { ConnectionContext } from '../socket/connection-context.js';
import type { DialChecks } from '../socket/guarded-lookup.js';

/**
 * The one place SDK decision and completion events are written from. Hooks and the rest of the pipeline
 * call these; the audit log underneath shapes and writes the lines.
 */

/** Decides a destination and records the decision (under `id` when it belongs to a request already started). */
export function decideAndRecord(
  guard: GuardCore,
  dest: Omit<Destination, 'service'>,
  hook: string,
  details: CheckDetails = {},
  id: string = guard.audit.nextId(),
): Checked {
  const decision = guard.decide(dest);
  guard.audit.decision(decision, dest, hook, id, details);
  return { decision, id };
}

/**
 * Records a decision made by a function of the policy package (a proxy hop, a tunnel, the TLS floor):
 * under the id of the request it belongs to when given, so that every event of a request shares its id.
 */
export function recordDecision(
  guard: GuardCore,
  decision: Decision,
  dest: Omit<Destination, 'service'>,
  hook: string,
  details: CheckDetails = {},
  id: string = guard.audit.nextId(),
): Checked {
  guard.audit.decision(decision, dest, hook, id, details);
  return { decision, id };
}

/** Records how a request or connection ended. */
export function recordCompletion(
  guard: GuardCore,
  id: string,
  hook: string,
  decision: Decision,
  fields: CompletionFields,
): void {
  guard.audit.completion(id, hook, decision, fields);
}

/**
 * Decides a DNS look-up of a name before it leaves the process (DNS is an exfiltration path). A denial,
 * or a would-deny in report mode, is recorded; an allowed look-up is not (the connection it serves is).
 */
export function decideLookup(guard: GuardCore, host: string, hook: string): Decision {
  const decision = guard.policy.decideLookup(host, guard.service, guard.clock());
  if (decision.result !== 'allowed') recordDecision(guard, decision, { scheme: 'tcp', host, port: 53 }, hook);
  return decision;
}

/**
 * Checks an address a connection is about to dial, for a connection whose destination was already
 * decided. Returns the error to fail the connection with, or undefined to go ahead. A refusal (or a
 * would-deny in report mode) is recorded under the request's id.
 */
export function checkDialledAddress(
  guard: GuardCore,
  context: ConnectionContext,
  address: string,
): Error | undefined {
  const { scheme, host, port, method, path } = context;
  const decision = decideDialledAddress(
    guard.policy,
    { scheme, host, port, method, path, service: guard.service },
    address,
    guard.clock(),
  );
  if (decision.result === 'allowed') return undefined;
  if (alreadyReported(context, decision, address)) return undefined;
  recordDecision(
    guard,
    decision,
    { scheme, host, port, method, path, address },
    `${context.hook}.dial`,
    {},
    context.id ?? guard.audit.nextId(),
  );
  return decision.allowed ? undefined : guard.errorFor(decision);
}

/**
 * In report mode, a destination already reported for this reason is not reported again for each address,
 * unless the address is special-purpose (private, loopback, link-local): a rule allowing the destination
 * would still refuse it at dial time (`private_address`) unless it says `privateAddresses: allow`, so the
 * address is recorded for `egress-guard learn` and `diff` to see what enforcing would check.
 */
function alreadyReported(context: ConnectionContext, decision: Decision, address: string): boolean {
  return (
    decision.allowed &&
    context.decision.result === 'reported' &&
    context.decision.reason === decision.reason &&
    !specialPurpose(address)
  );
}

function specialPurpose(address: string): boolean {
  const ip = parseIpLiteral(address.startsWith('[') ? address.slice(1, -1) : address);
  return ip !== undefined && isSpecialPurpose(unmapIpv4(ip));
}

const dialChecks = new WeakMap<GuardCore, DialChecks>();

/** The dial-time checks the socket layer runs for this guard (one object per guard). */
export function dialChecksOf(guard: GuardCore): DialChecks {
  let checks = dialChecks.get(guard);
  if (!checks) {
    checks = {
      baseLookup: guard.baseLookup,
      checkDialledAddress: (context, address) => checkDialledAddress(guard, context, address),
    };
    dialChecks.set(guard, checks);
  }
  return checks;
}
