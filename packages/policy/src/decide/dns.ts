/**
 * Decisions of the edge's DNS guard: whether a question may be forwarded (the name, for the querying
 * service, and the query type), and whether an address in the answer may be handed to the client (the
 * special-purpose rule: DNS rebinding stopped at the resolver, not only at connect time).
 */
import { parseIpLiteral, specialPurposeRange, unmapIpv4 } from '../address/index.js';
import { DEFAULT_DNS_TYPES, type Decision } from '../types.js';
import type { LookupAcceptance } from './decider.js';
import { refineDecision } from './refine.js';

/** What {@link decideDnsQuestion} needs of a policy: a `Policy` is one. */
export interface DnsDecisionSource {
  decideLookup(host: string, service?: string, now?: number, accept?: LookupAcceptance): Decision;
  denyRuleForAddress(address: string, service?: string): string | undefined;
}

/** One DNS question, as the guard read it. */
export interface DnsQuestion {
  /** The queried name, without the trailing dot; decided the way the policy compares names. */
  name: string;
  /** The query type's mnemonic (`A`, `AAAA`, `TXT`, ...), or `TYPE123` for a type without one. */
  type: string;
  /** The query class's mnemonic; only `IN` is ever forwarded. Default `IN`. */
  class?: string | undefined;
  /** The service the source address maps to through `sources`, if any. */
  service: string | undefined;
}

const DEFAULT_TYPES: ReadonlySet<string> = new Set(DEFAULT_DNS_TYPES);

/**
 * Decides a DNS question: allowed when an allow rule lists the name and its query types (its `dns.types`,
 * else A, AAAA, CNAME, HTTPS and SVCB) include the type asked, and no deny rule without scheme, port,
 * method or path limits lists the name. A name no rule lists is `host_not_allowed`; a name listed only by
 * rules that do not allow the type is `dns_type_not_allowed`, as is any class other than `IN`. Report
 * mode turns each denial into `reported`.
 */
export function decideDnsQuestion(
  policy: DnsDecisionSource,
  question: DnsQuestion,
  now: number = Date.now(),
): Decision {
  const type = question.type.toUpperCase();
  const klass = (question.class ?? 'IN').toUpperCase();
  const accept: LookupAcceptance = {
    test: (rule) => (rule.dnsTypes ?? DEFAULT_TYPES).has(type),
    reason: 'dns_type_not_allowed',
    how: (rule) =>
      `rule "${rule.name}" lists the name but not the DNS query type ${type}; to allow it, add dns: { types: [${[...(rule.dnsTypes ?? DEFAULT_TYPES), type].join(', ')}] } to the rule`,
  };
  const decision = policy.decideLookup(question.name, question.service, now, accept);
  if (klass !== 'IN' && decision.result === 'allowed') {
    return refineDecision(
      decision,
      'dns_type_not_allowed',
      `the DNS class ${klass} is never forwarded; only IN questions are`,
    );
  }
  return decision;
}

/**
 * Decides one address of an answer to a question {@link decideDnsQuestion} allowed, like an address about
 * to be dialled: one a deny rule lists outright (no scheme, port, method or path limits) is refused
 * (`explicit_deny`), and a special-purpose address (private, loopback, link-local, metadata, ...) is
 * refused (`private_address`) unless the rule that allowed the name says `privateAddresses: allow`. The
 * guard refuses an answer with any refused address as a whole (a rebinding attempt is not a reason to
 * pick one).
 *
 * @param policy The policy that decided the question.
 * @param question The question's decision (allowed or reported).
 * @param address An address from an A or AAAA record (or an SVCB hint) of the answer.
 */
export function decideDnsAnswerAddress(
  policy: DnsDecisionSource,
  question: Decision,
  address: string,
): Decision {
  const parsed = parseIpLiteral(address);
  if (!parsed) {
    return refineDecision(
      question,
      'invalid_destination',
      `the answer carries "${address}", which is not an IP address`,
    );
  }
  const ip = unmapIpv4(parsed);
  const denied = policy.denyRuleForAddress(ip.canonical, question.service);
  if (denied !== undefined) {
    return {
      ...refineDecision(
        { ...question, address: ip.canonical },
        'explicit_deny',
        `the answer carries ${ip.canonical}, which deny rule "${denied}" lists (deny always wins over allow); to allow it, remove it from that rule`,
      ),
      rule: denied,
      ruleKind: 'deny',
    };
  }
  const special = specialPurposeRange(ip);
  if (!special || question.privateAddresses === 'allow') return { ...question, address: ip.canonical };
  return refineDecision(
    { ...question, address: ip.canonical },
    'private_address',
    `${question.host ?? 'the name'} resolved to ${ip.canonical}, a special-purpose address (${special.name}, ${special.cidr}); to allow it, set privateAddresses: allow on rule "${question.rule ?? '(none)'}"`,
  );
}
