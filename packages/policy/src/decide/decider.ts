import { LRUCache } from 'lru-cache';
import {
  embeddedIpv4,
  type IpAddress,
  parseIpLiteral,
  type SpecialRange,
  specialPurposeRange,
  unmapIpv4,
} from '../address/index.js';
import { type CompiledRule, portAllowed, type RuleDefaults } from '../compiled-rule.js';
import { parseHost } from '../host-name.js';
import type { ReasonCode } from '../reason-codes.js';
import type { RuleIndex } from '../rule-index.js';
import { type Decision, type Destination, type Mode, SCHEMES, type Scheme } from '../types.js';

/** One set of rules that a destination is decided against: the top level, or a service with it. */
export interface DecisionScope {
  service: string | undefined;
  allow: RuleIndex;
  deny: RuleIndex;
  mode: Mode;
  /** Epoch ms after which report mode turns into enforce; undefined: no expiry. */
  reportUntil: number | undefined;
}

/**
 * Narrows which of the rules listing a name allow a look-up (decide/dns.ts: the query type), and what a
 * name listed only by other rules is refused with.
 */
export interface LookupAcceptance {
  test(rule: CompiledRule): boolean;
  reason: ReasonCode;
  /** What the first rule listing the name lacks, and how to allow it. */
  how(rule: CompiledRule): string;
}

const SCHEME_SET: ReadonlySet<string> = new Set(SCHEMES);
/** What a raw connection may carry, for deny rules (see `firstDeny`). */
const RAW_CARRIES: Partial<Record<Scheme, readonly Scheme[]>> = {
  tls: ['https', 'wss'],
  tcp: ['http', 'ws'],
};
// Encoded dot-segments, encoded slashes and backslashes let a server see another path than the one
// matched; such paths never match an allow rule's paths and always match a deny rule's.
const AMBIGUOUS_PATH = /%2e|%2f|%5c|\\/i;

function pathMatches(rule: CompiledRule, path: string): boolean {
  if (AMBIGUOUS_PATH.test(path)) return rule.kind === 'deny';
  for (const re of rule.paths!) if (re.test(path)) return true;
  return false;
}

/** The first dimension of the destination that the rule does not allow, if any. */
function mismatch(rule: CompiledRule, scheme: Scheme, port: number, method?: string, path?: string) {
  if (rule.schemes && !rule.schemes.has(scheme)) return 'scheme_not_allowed' as const;
  if (!portAllowed(rule, scheme, port)) return 'port_not_allowed' as const;
  // Method and path are checked where the hook can see them (policy.md: HTTP through the SDK, plaintext
  // HTTP at the edge). Where they are unknown (a connection, TLS at the edge), an allow rule allows the
  // host if any of its paths is allowed, and a deny rule that names methods or paths cannot match: it
  // is enforced on the requests themselves, so it must not deny the whole host at connection level.
  if (rule.methods) {
    if (method === undefined) {
      if (rule.kind === 'deny') return 'method_not_allowed' as const;
    } else if (!rule.methods.has(method)) return 'method_not_allowed' as const;
  }
  if (rule.paths) {
    if (path === undefined) {
      if (rule.kind === 'deny') return 'path_not_allowed' as const;
    } else if (!pathMatches(rule, path)) return 'path_not_allowed' as const;
  }
  return undefined;
}

interface Subject {
  scheme: Scheme;
  port: number;
  method: string | undefined;
  path: string | undefined;
  name: string | undefined;
  literal: IpAddress | undefined;
  dialled: IpAddress | undefined;
  label: string;
}

/**
 * Decides destinations against compiled scopes. Pure: no I/O, no clock but the `now` it is given.
 */
export class Decider {
  constructor(
    private readonly top: DecisionScope,
    private readonly services: ReadonlyMap<string, DecisionScope>,
    private readonly defaults: RuleDefaults,
    private readonly policyHash: string,
  ) {}

  decide(dest: Destination, now: number = Date.now()): Decision {
    const scope = (dest.service !== undefined && this.services.get(dest.service)) || this.top;
    const mode: Mode =
      scope.mode === 'report' && (scope.reportUntil === undefined || now < scope.reportUntil)
        ? 'report'
        : 'enforce';
    const subject = this.subject(dest);
    if (typeof subject === 'string') return this.invalid(dest, scope, mode, subject);

    // Deny always wins: the name, the literal and the dialled address are each checked against deny rules,
    // for the scheme asked and, for a raw connection, for every scheme it could carry.
    const denied = this.firstDeny(scope, subject);
    if (denied) {
      return this.deny(
        subject,
        scope,
        mode,
        'explicit_deny',
        denied,
        `denied by deny rule "${denied.name}" (deny always wins over allow); to allow it, remove it from that rule`,
      );
    }

    const candidates =
      subject.name !== undefined ? scope.allow.byName(subject.name) : scope.allow.byAddress(subject.literal!);
    if (candidates.length === 0) {
      return subject.name !== undefined
        ? this.deny(
            subject,
            scope,
            mode,
            'host_not_allowed',
            undefined,
            `no allow rule lists ${subject.name}; to allow it, add a rule with hosts: [${subject.name}]`,
          )
        : this.deny(
            subject,
            scope,
            mode,
            'address_not_allowed',
            undefined,
            `no allow rule lists the address ${subject.literal!.canonical}; to allow it, add a rule with addresses: [${cidrOf(subject.literal!)}]`,
          );
    }

    let closest: { rule: CompiledRule; reason: NonNullable<ReturnType<typeof mismatch>> } | undefined;
    for (const rule of candidates) {
      const reason = mismatch(rule, subject.scheme, subject.port, subject.method, subject.path);
      if (reason === undefined) return this.allowMatched(rule, subject, scope, mode);
      closest ??= { rule, reason };
    }
    const { rule, reason } = closest!;
    return this.deny(subject, scope, mode, reason, rule, howToAllow(rule, reason, subject));
  }

  /**
   * Decides a DNS look-up of a name: allowed when some allow rule lists the name (any scheme or port)
   * and no deny rule without scheme/port/method/path limits lists it. A look-up of a name no rule lists
   * never leaves the process: DNS is an exfiltration path. With `accept`, only the rules it accepts
   * allow the look-up (the DNS guard's query types); a name listed only by others is refused with its
   * reason.
   */
  decideLookup(
    host: string,
    service: string | undefined,
    now: number = Date.now(),
    accept?: LookupAcceptance,
  ): Decision {
    const scope = (service !== undefined && this.services.get(service)) || this.top;
    const mode: Mode =
      scope.mode === 'report' && (scope.reportUntil === undefined || now < scope.reportUntil)
        ? 'report'
        : 'enforce';
    const parsed = parseHost(host);
    const dest: Destination = { scheme: 'tcp', host, port: 53, service };
    if (parsed.kind === 'invalid') return this.invalid(dest, scope, mode, parsed.detail);
    const subject: Subject = {
      scheme: 'tcp',
      port: 53,
      method: undefined,
      path: undefined,
      name: parsed.kind === 'name' ? parsed.name : undefined,
      literal: parsed.kind === 'ip' ? parsed.ip : undefined,
      dialled: undefined,
      label: `dns:${parsed.kind === 'name' ? parsed.name : parsed.ip.canonical}`,
    };
    // An IP literal needs no look-up: nothing leaves the process.
    if (subject.name === undefined)
      return this.build(
        subject,
        scope,
        mode,
        'allowed',
        'allowed',
        undefined,
        'an IP literal needs no DNS look-up',
      );
    const denied = scope.deny
      .byName(subject.name)
      .find((r) => !r.schemes && !r.ports && !r.methods && !r.paths);
    if (denied)
      return this.deny(
        subject,
        scope,
        mode,
        'explicit_deny',
        denied,
        `denied by deny rule "${denied.name}"; the look-up never leaves the process`,
      );
    const rules = scope.allow.byName(subject.name);
    const rule = accept ? rules.find((r) => accept.test(r)) : rules[0];
    if (!rule && accept && rules[0]) {
      return this.deny(subject, scope, mode, accept.reason, rules[0], accept.how(rules[0]));
    }
    if (!rule) {
      return this.deny(
        subject,
        scope,
        mode,
        'host_not_allowed',
        undefined,
        `no allow rule lists ${subject.name}, so it is not looked up; to allow it, add a rule with hosts: [${subject.name}]`,
      );
    }
    return this.build(subject, scope, mode, 'allowed', 'allowed', rule, `allowed by rule "${rule.name}"`);
  }

  /**
   * The deny rule that refuses `address` outright for a service: one that lists it (or, for NAT64, 6to4
   * and Teredo addresses, the IPv4 address inside) and limits no scheme, port, method or path, as
   * {@link Decider.decideLookup} treats deny rules on names. The DNS guard's answers are checked with it.
   */
  denyRuleForAddress(address: string, service: string | undefined): string | undefined {
    const ip = this.addressCached(address);
    if (!ip) return undefined;
    const scope = (service !== undefined && this.services.get(service)) || this.top;
    const outright = (r: CompiledRule) => !r.schemes && !r.ports && !r.methods && !r.paths;
    const candidates = [ip, ...(ip.family === 6 ? embeddedIpv4(ip) : [])];
    for (const candidate of candidates) {
      const rule = scope.deny.byAddress(candidate).find(outright);
      if (rule) return rule.name;
    }
    return undefined;
  }

  /**
   * The first deny rule that matches. A raw connection (`tls`, `tcp`) carries bytes nobody reads: it
   * could be HTTPS or a secure WebSocket (`tls`), plain HTTP or a WebSocket (`tcp`), so a deny rule for any
   * of those schemes holds it too (a process must not reach by raw socket what a deny rule keeps it from).
   */
  private firstDeny(scope: DecisionScope, subject: Subject): CompiledRule | undefined {
    const own = this.firstDenyFor(scope, subject);
    if (own) return own;
    for (const scheme of RAW_CARRIES[subject.scheme] ?? []) {
      const carried = this.firstDenyFor(scope, { ...subject, scheme });
      if (carried) return carried;
    }
    return undefined;
  }

  private firstDenyFor(scope: DecisionScope, subject: Subject): CompiledRule | undefined {
    return (
      this.firstMatch(subject.name === undefined ? [] : scope.deny.byName(subject.name), subject) ??
      this.firstMatch(subject.literal ? scope.deny.byAddress(subject.literal) : [], subject) ??
      this.firstMatch(subject.dialled ? scope.deny.byAddress(subject.dialled) : [], subject) ??
      this.firstEmbedded(scope, subject)
    );
  }

  /** A matched allow rule still has to accept the address being dialled. */
  private allowMatched(rule: CompiledRule, s: Subject, scope: DecisionScope, mode: Mode): Decision {
    if (s.name !== undefined && s.dialled !== undefined) {
      const special = specialPurposeRange(s.dialled);
      if (special && rule.settings.privateAddresses !== 'allow' && !this.addressRuleCovers(scope, s)) {
        return this.deny(s, scope, mode, 'private_address', rule, privateMessage(rule, s, special));
      }
    }
    return this.build(s, scope, mode, 'allowed', 'allowed', rule, `allowed by rule "${rule.name}"`);
  }

  private addressRuleCovers(scope: DecisionScope, s: Subject): boolean {
    for (const rule of scope.allow.byAddress(s.dialled!)) {
      if (mismatch(rule, s.scheme, s.port, s.method, s.path) === undefined) return true;
    }
    return false;
  }

  /** Deny rules for IPv4 ranges also hold the IPv4 addresses carried in NAT64, 6to4 and Teredo addresses. */
  private firstEmbedded(scope: DecisionScope, s: Subject): CompiledRule | undefined {
    for (const ip of [s.literal, s.dialled]) {
      if (ip?.family !== 6) continue;
      for (const v4 of embeddedIpv4(ip)) {
        const rule = this.firstMatch(scope.deny.byAddress(v4), s);
        if (rule) return rule;
      }
    }
    return undefined;
  }

  private firstMatch(rules: readonly CompiledRule[], s: Subject): CompiledRule | undefined {
    for (const rule of rules)
      if (mismatch(rule, s.scheme, s.port, s.method, s.path) === undefined) return rule;
    return undefined;
  }

  // Parsing a host is pure and services talk to few hosts: a bounded cache makes repeat decisions cheap,
  // and a flood of names evicts only the least recently used.
  private readonly hosts = new LRUCache<string, ReturnType<typeof parseHost>>({ max: 4096 });
  private parseCached(host: string): ReturnType<typeof parseHost> {
    let parsed = this.hosts.get(host);
    if (parsed === undefined) {
      parsed = parseHost(host);
      this.hosts.set(host, parsed);
    }
    return parsed;
  }

  /** Parsed address literals; `false` for text that is not one. */
  private readonly addresses = new LRUCache<string, IpAddress | false>({ max: 4096 });
  private addressCached(address: string): IpAddress | undefined {
    let ip = this.addresses.get(address);
    if (ip === undefined) {
      const parsed = parseIpLiteral(address.startsWith('[') ? address.slice(1, -1) : address);
      ip = parsed ? unmapIpv4(parsed) : false;
      this.addresses.set(address, ip);
    }
    return ip || undefined;
  }

  private subject(dest: Destination): Subject | string {
    if (!SCHEME_SET.has(dest.scheme)) return `unknown scheme "${String(dest.scheme)}"`;
    if (!Number.isInteger(dest.port) || dest.port < 1 || dest.port > 65535)
      return `invalid port ${String(dest.port)}`;
    let name: string | undefined;
    let literal: IpAddress | undefined;
    if (dest.host !== undefined) {
      const host = this.parseCached(dest.host);
      if (host.kind === 'invalid') return host.detail;
      if (host.kind === 'name') name = host.name;
      else literal = unmapIpv4(host.ip);
    }
    let dialled: IpAddress | undefined;
    if (dest.address !== undefined) {
      dialled = this.addressCached(dest.address);
      if (!dialled) return `"${dest.address}" is not an IP address`;
    }
    if (name === undefined && literal === undefined) {
      if (!dialled) return 'neither a host nor an address was given';
      literal = dialled;
    }
    if (literal && dialled && literal.canonical !== dialled.canonical) {
      return `the dialled address ${dialled.canonical} differs from the literal ${literal.canonical}`;
    }
    const method = dest.method?.toUpperCase();
    const label = `${dest.scheme}://${name ?? bracket(literal!)}:${dest.port}`;
    return { scheme: dest.scheme, port: dest.port, method, path: dest.path, name, literal, dialled, label };
  }

  private invalid(dest: Destination, scope: DecisionScope, mode: Mode, detail: string): Decision {
    const message = `egress denied: invalid destination: ${detail}; fix the URL or host (only valid DNS names and IP addresses can be allowed)`;
    return {
      result: mode === 'report' ? 'reported' : 'denied',
      allowed: mode === 'report',
      reason: 'invalid_destination',
      rule: undefined,
      ruleKind: undefined,
      service: scope.service,
      mode,
      host: dest.host,
      address: dest.address,
      port: dest.port,
      scheme: dest.scheme,
      ...this.defaultSettings(),
      message: mode === 'report' ? `would be ${message} (report mode)` : message,
      policyHash: this.policyHash,
    };
  }

  private deny(
    s: Subject,
    scope: DecisionScope,
    mode: Mode,
    reason: ReasonCode,
    rule: CompiledRule | undefined,
    how: string,
  ): Decision {
    const message = `egress denied: ${s.label}${s.dialled && s.name ? ` (${s.dialled.canonical})` : ''}${s.method ? ` ${s.method}` : ''}${s.path ? ` ${s.path}` : ''} [${reason}]: ${how}`;
    return this.build(
      s,
      scope,
      mode,
      mode === 'report' ? 'reported' : 'denied',
      reason,
      rule,
      mode === 'report' ? `would be ${message} (report mode)` : message,
    );
  }

  private build(
    s: Subject,
    scope: DecisionScope,
    mode: Mode,
    result: Decision['result'],
    reason: ReasonCode,
    rule: CompiledRule | undefined,
    message: string,
  ): Decision {
    const settings = rule && rule.kind === 'allow' && result === 'allowed' ? rule.settings : this.defaults;
    return {
      result,
      allowed: result !== 'denied',
      reason,
      rule: rule?.name,
      ruleKind: rule?.kind,
      service: scope.service,
      mode,
      host: s.name ?? s.literal?.canonical,
      address: s.dialled?.canonical,
      port: s.port,
      scheme: s.scheme,
      tls: settings.tls,
      timeouts: settings.timeouts,
      breaker: settings.breaker,
      privateAddresses: settings.privateAddresses,
      message,
      policyHash: this.policyHash,
    };
  }

  private defaultSettings() {
    const d = this.defaults;
    return { tls: d.tls, timeouts: d.timeouts, breaker: d.breaker, privateAddresses: d.privateAddresses };
  }
}

function bracket(ip: IpAddress): string {
  return ip.family === 6 ? `[${ip.canonical}]` : ip.canonical;
}

function cidrOf(ip: IpAddress): string {
  return `${ip.canonical}/${ip.family === 4 ? 32 : 128}`;
}

function privateMessage(rule: CompiledRule, s: Subject, special: SpecialRange): string {
  return `${s.name} resolved to ${s.dialled!.canonical}, a special-purpose address (${special.name}, ${special.cidr}); to allow it, set privateAddresses: allow on rule "${rule.name}" or add a rule with addresses: [${cidrOf(s.dialled!)}]`;
}

function howToAllow(rule: CompiledRule, reason: ReasonCode, s: Subject): string {
  switch (reason) {
    case 'scheme_not_allowed':
      return `rule "${rule.name}" lists the host but not the scheme ${s.scheme}; to allow it, add ${s.scheme} to its schemes`;
    case 'port_not_allowed':
      return `rule "${rule.name}" lists the host but not port ${s.port}; to allow it, add ${s.port} to its ports`;
    case 'method_not_allowed':
      return `rule "${rule.name}" lists the host but not the method ${s.method}; to allow it, add ${s.method} to its methods`;
    case 'path_not_allowed':
      return `rule "${rule.name}" lists the host but no pattern in its paths matches ${s.path}; to allow it, add a matching pattern to its paths`;
    default:
      return `rule "${rule.name}" does not allow it`;
  }
}
