import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CidrIndex, type IpAddress, parseCidr, parseIpLiteral } from './address/index.js';
import { canonicalJson } from './canonical-json.js';
import {
  type CompiledRule,
  compileRule,
  DEFAULT_BREAKER,
  DEFAULT_TIMEOUTS,
  DEFAULT_TLS,
  type RuleDefaults,
} from './compiled-rule.js';
import { Decider, type DecisionScope, type LookupAcceptance } from './decide/decider.js';
import { EgressPolicyError, type PolicyProblem } from './errors.js';
import { compileHostPattern } from './host-pattern.js';
import { parsePolicyObject, parsePolicyText } from './parse-document.js';
import { publicDohHostsAllowedBy } from './public-doh.js';
import { expiredReportUntil, parseReportUntil } from './report-until.js';
import { RuleIndex } from './rule-index.js';
import type { PolicyDocument } from './schema.js';
import type { Decision, Destination, Mode } from './types.js';

/** Where a policy came from, for events and error messages. */
export interface PolicySource {
  /** Path of the file, when loaded from one. */
  file?: string | undefined;
  kind: 'file' | 'text' | 'object';
}

/** A summary of one rule, for diffs and the CLI. */
export interface RuleSummary {
  name: string;
  kind: 'allow' | 'deny';
  service: string | undefined;
  canonical: Record<string, unknown>;
}

/**
 * A loaded, validated and compiled policy. Immutable: reloading makes a new Policy.
 * `decide()` is pure and fast (indexes are built here, once).
 */
export class Policy {
  /** sha256 (hex) of the canonical normalised policy; carried by every decision and event. */
  readonly hash: string;
  /** The validated document (durations in milliseconds). */
  readonly document: PolicyDocument;
  /** Non-fatal findings, e.g. wildcards over a private-section public suffix. */
  readonly warnings: readonly PolicyProblem[];
  readonly source: PolicySource;
  /** Names of the `services` sections. */
  readonly services: readonly string[];
  /** Every rule in file order. */
  readonly rules: readonly RuleSummary[];
  /** The top-level mode as written (see `modeAt` for the mode in force). */
  readonly mode: Mode;

  private readonly decider: Decider;
  private readonly sources = new CidrIndex<{ service: string; prefix: number }>();
  private readonly reportUntil: number | undefined;

  constructor(document: PolicyDocument, source: PolicySource) {
    this.document = document;
    this.source = source;
    this.mode = document.mode ?? 'enforce';
    this.reportUntil = parseReportUntil(document.reportUntil);
    const defaults: RuleDefaults = {
      tls: {
        ...DEFAULT_TLS,
        ...(document.defaults?.tls?.minVersion ? { minVersion: document.defaults.tls.minVersion } : {}),
      },
      timeouts: { ...DEFAULT_TIMEOUTS, ...stripUndefined(document.defaults?.timeouts) },
      breaker:
        document.defaults?.breaker === false
          ? false
          : { ...DEFAULT_BREAKER, ...stripUndefined(document.defaults?.breaker) },
      privateAddresses: document.defaults?.privateAddresses ?? 'deny',
    };

    const compiled: CompiledRule[] = [];
    let order = 0;
    const compileList = (list: PolicyDocument['allow'], kind: 'allow' | 'deny', service?: string) =>
      (list ?? []).map((r) => {
        const rule = compileRule(r, kind, order++, service, defaults);
        compiled.push(rule);
        return rule;
      });
    const topAllow = compileList(document.allow, 'allow');
    const topDeny = compileList(document.deny, 'deny');
    const scope = (
      service: string | undefined,
      allow: CompiledRule[],
      deny: CompiledRule[],
      mode: Mode,
      until: number | undefined,
    ): DecisionScope => {
      const a = new RuleIndex();
      const d = new RuleIndex();
      for (const r of allow) a.add(r);
      for (const r of deny) d.add(r);
      return { service, allow: a, deny: d, mode, reportUntil: until };
    };
    const top = scope(undefined, topAllow, topDeny, this.mode, this.reportUntil);
    const services = new Map<string, DecisionScope>();
    for (const [name, svc] of Object.entries(document.services ?? {})) {
      const allow = compileList(svc.allow, 'allow', name);
      const deny = compileList(svc.deny, 'deny', name);
      const mode = svc.mode ?? this.mode;
      const until = svc.reportUntil !== undefined ? parseReportUntil(svc.reportUntil) : this.reportUntil;
      services.set(name, scope(name, [...topAllow, ...allow], [...topDeny, ...deny], mode, until));
      for (const text of svc.sources ?? []) {
        const cidr = parseCidr(text);
        this.sources.add(cidr, { service: name, prefix: cidr.prefix });
      }
    }
    this.services = [...services.keys()];
    this.rules = compiled.map((r) => ({
      name: r.name,
      kind: r.kind,
      service: r.service,
      canonical: r.canonical,
    }));

    const canonical = {
      version: 1,
      mode: this.mode,
      reportUntil: document.reportUntil,
      defaults,
      rules: this.rules,
      services: Object.fromEntries(
        Object.entries(document.services ?? {}).map(([n, s]) => [
          n,
          {
            sources: (s.sources ?? []).map((c) => parseCidr(c).text),
            mode: s.mode,
            reportUntil: s.reportUntil,
          },
        ]),
      ),
    };
    this.hash = createHash('sha256').update(canonicalJson(canonical)).digest('hex');
    this.decider = new Decider(top, services, defaults, this.hash);
    this.warnings = collectWarnings(document, source.file);
  }

  /**
   * {@link warnings}, and those that depend on the date: a `reportUntil` already past at `now` (report
   * mode has ended). What `egress-guard lint` prints.
   */
  warningsAt(now: number = Date.now()): PolicyProblem[] {
    return [...this.warnings, ...expiredReportUntil(this.document, now, this.source.file)];
  }

  /**
   * Decides one destination. Pure and synchronous; `now` (epoch ms, default `Date.now()`) only decides
   * whether report mode has expired (`reportUntil`).
   */
  decide(destination: Destination, now?: number): Decision {
    return this.decider.decide(destination, now);
  }

  /**
   * Decides a DNS look-up of a name (no scheme, port or path yet): allowed when an allow rule lists it.
   * The SDK uses this for direct `dns` calls, so a name no rule lists is never sent to a resolver.
   */
  decideLookup(host: string, service?: string, now?: number, accept?: LookupAcceptance): Decision {
    return this.decider.decideLookup(host, service, now, accept);
  }

  /**
   * The name of the deny rule that refuses `address` outright for a service (no scheme, port, method or
   * path limits), if any: what the edge's DNS guard applies to the addresses of an answer.
   */
  denyRuleForAddress(address: string, service?: string): string | undefined {
    return this.decider.denyRuleForAddress(address, service);
  }

  /** The mode in force at `now` for a service (or the top level): report turns to enforce after `reportUntil`. */
  modeAt(now: number = Date.now(), service?: string): Mode {
    const svc = service !== undefined ? this.document.services?.[service] : undefined;
    const mode = svc?.mode ?? this.mode;
    const until = svc?.reportUntil !== undefined ? parseReportUntil(svc.reportUntil) : this.reportUntil;
    return mode === 'report' && (until === undefined || now < until) ? 'report' : 'enforce';
  }

  /** The service whose `sources` contain the address (the edge maps connections this way). */
  serviceForAddress(address: string | IpAddress): string | undefined {
    const ip = typeof address === 'string' ? parseIpLiteral(address) : address;
    if (!ip) return undefined;
    // The most specific range wins, so a /32 for one host can sit inside a service's /24.
    let best: { service: string; prefix: number } | undefined;
    for (const entry of this.sources.lookup(ip)) if (!best || entry.prefix > best.prefix) best = entry;
    return best?.service;
  }
}

function stripUndefined<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function collectWarnings(document: PolicyDocument, file: string | undefined): PolicyProblem[] {
  const warnings: PolicyProblem[] = [];
  const visit = (rules: PolicyDocument['allow'], where: string) => {
    for (const [i, r] of (rules ?? []).entries()) {
      for (const [j, h] of (r.hosts ?? []).entries()) {
        const c = compileHostPattern(h);
        if (c.ok && c.warning) {
          warnings.push({ path: `${where}[${i}].hosts[${j}]`, message: c.warning, file, line: 0, column: 0 });
        }
        const doh = publicDohHostsAllowedBy(h);
        if (doh.length > 0) {
          warnings.push({
            path: `${where}[${i}].hosts[${j}]`,
            message: `allows the public DNS-over-HTTPS resolver ${doh.join(', ')}: look-ups through it bypass the edge's DNS guard (DNS exfiltration)`,
            hint: 'remove it unless this service must use that resolver; point clients at the edge (--dns) instead',
            file,
            line: 0,
            column: 0,
          });
        }
      }
    }
  };
  visit(document.allow, 'allow');
  for (const [name, svc] of Object.entries(document.services ?? {}))
    visit(svc.allow, `services.${name}.allow`);
  return warnings;
}

/** Parses and compiles a policy from YAML or JSON text. Throws EgressPolicyError with every problem. */
export function parsePolicy(text: string, options: { file?: string } = {}): Policy {
  return new Policy(parsePolicyText(text, options.file), {
    file: options.file,
    kind: options.file ? 'file' : 'text',
  });
}

/** Validates and compiles a policy given as a plain object (e.g. built in code). */
export function createPolicy(document: unknown): Policy {
  return new Policy(parsePolicyObject(document), { kind: 'object' });
}

/** Loads a policy file (YAML or JSON). Throws EgressPolicyError for an unreadable or invalid file. */
export async function loadPolicyFile(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw unreadable(file, error);
  }
  return parsePolicy(text, { file });
}

/** Synchronous form of `loadPolicyFile`, for `--require` preloading where nothing can be awaited. */
export function loadPolicyFileSync(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw unreadable(file, error);
  }
  return parsePolicy(text, { file });
}

function unreadable(file: string, error: unknown): EgressPolicyError {
  const code = (error as NodeJS.ErrnoException).code;
  const message = code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? String(error)})`;
  return new EgressPolicyError(
    [{ path: '', message, file, line: 0, column: 0, hint: 'check the path' }],
    file,
  );
}
