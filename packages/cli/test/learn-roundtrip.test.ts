/**
 * The learn round trip as a property. For generated traffic logs (decision and summary events shaped as
 * the SDK and the edge write them, read back through the same parser as `learn`):
 * - the learned policy is valid, and `diff(learn(log), log)` finds nothing to deny;
 * - enforcing it (the decider of @egress-guard/policy) allows every request in the log that the policy in
 *   force did not deny in enforce mode, and with `--include-denied` every request but explicit denials;
 * - it denies every near miss the log does not contain: the same request on another port, scheme, method,
 *   path prefix or host.
 */
import {
  DEFAULT_PORTS,
  type DecisionEvent,
  type DnsEvent,
  HTTP_SCHEMES,
  type Policy,
  parsePolicy,
  type Scheme,
  type SummaryEvent,
} from '@egress-guard/policy';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildPolicy } from '../src/learn/build-policy.js';
import { observe } from '../src/learn/observe.js';
import { renderPolicy } from '../src/learn/policy-yaml.js';
import { diffAgainst, redecide } from '../src/learn/re-decide.js';
import {
  fromDnsQuestion,
  fromSummary,
  type LoggedDecision,
  parseLine,
  toDecision,
} from '../src/learn/read-events.js';

const HOSTS = ['api.example.com', 'cdn.example.com', 'db.internal.test', '203.0.113.5'];
/** Hosts never in a log: a near miss by name. */
const OTHER_HOSTS = ['other.example.com', 'api.example.org', '203.0.113.6'];
const PORTS = [443, 80, 8443, 8080, 5432];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const SEGMENTS = ['v1', 'admin', 'status', 'api'];
/** Addresses a name may be dialled at: two special-purpose, one public. */
const DIALLED = ['127.0.0.1', '10.0.0.8', '93.184.215.14'];
const SPECIAL = ['127.0.0.1', '10.0.0.8'];
const SERVICES = [undefined, 'payments'] as const;

type Service = (typeof SERVICES)[number];
type Result = 'allowed' | 'reported' | 'denied';

/** One logged thing, before it is written as an event. */
type Traffic =
  | {
      kind: 'request';
      service: Service;
      source: 'sdk' | 'edge';
      host: string;
      scheme: 'http' | 'https';
      port: number;
      method: string;
      path: string;
      result: Result;
      /** The `<hook>.dial` record of the address the name was dialled at. */
      dialled: string | undefined;
    }
  | {
      kind: 'connection';
      service: Service;
      source: 'sdk' | 'edge';
      host: string;
      scheme: 'https' | 'tls' | 'tcp';
      port: number;
      result: Result;
    }
  | { kind: 'summary'; service: Service; host: string; scheme: 'http' | 'https'; port: number; count: number }
  | { kind: 'dns'; service: Service; host: string; result: Result }
  /** A question to the edge's DNS guard (`egress.dns`), with its type and the addresses answered. */
  | { kind: 'edgeDns'; service: Service; host: string; type: string; answers: string[]; result: Result };

const path = fc
  .tuple(fc.constantFrom(...SEGMENTS), fc.option(fc.constantFrom('x', '7', 'items'), { nil: undefined }))
  .map(([a, b]) => (b === undefined ? `/${a}` : `/${a}/${b}`));
const common = {
  service: fc.constantFrom(...SERVICES),
  host: fc.constantFrom(...HOSTS),
  port: fc.constantFrom(...PORTS),
  result: fc.constantFrom<Result>('reported', 'reported', 'allowed', 'denied'),
};
const traffic: fc.Arbitrary<Traffic> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      ...common,
      source: fc.constantFrom('sdk' as const, 'edge' as const),
      scheme: fc.constantFrom('http' as const, 'https' as const),
      method: fc.constantFrom(...METHODS),
      path,
      dialled: fc.option(fc.constantFrom(...DIALLED), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('connection' as const),
      ...common,
      source: fc.constantFrom('sdk' as const, 'edge' as const),
      scheme: fc.constantFrom('https' as const, 'tls' as const, 'tcp' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('summary' as const),
      service: common.service,
      host: common.host,
      port: common.port,
      scheme: fc.constantFrom('http' as const, 'https' as const),
      count: fc.integer({ min: 1, max: 500 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('dns' as const),
      service: common.service,
      host: fc.constantFrom(...HOSTS.filter((h) => !/^\d/.test(h))),
      result: common.result,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('edgeDns' as const),
      service: common.service,
      host: fc.constantFrom(...HOSTS.filter((h) => !/^\d/.test(h))),
      type: fc.constantFrom('A', 'AAAA', 'TXT', 'MX'),
      answers: fc.subarray(DIALLED),
      result: common.result,
    }),
  },
);

const isIp = (host: string) => /^\d/.test(host);

/** The event lines the SDK or the edge would write for one piece of traffic. */
function linesOf(t: Traffic, i: number): string[] {
  const time = new Date(Date.UTC(2026, 0, 31, 8, 0, i)).toISOString();
  if (t.kind === 'summary') {
    const e: SummaryEvent = {
      'event.name': 'egress.summary',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': t.service,
      'egress.policy.hash': 'in-force',
      'egress.outcome': 'ok',
      'url.scheme': t.scheme,
      'server.address': t.host,
      'server.port': t.port,
      'egress.summary.start': time,
      'egress.summary.end': time,
      'egress.summary.count': t.count,
      'egress.bytes.sent': 0,
      'egress.bytes.received': 0,
      'egress.summary.duration_p50_ms': 1,
      'egress.summary.duration_p90_ms': 1,
      'egress.summary.duration_p99_ms': 1,
      'egress.summary.duration_max_ms': 1,
    };
    return [JSON.stringify({ level: 30, time, ...e })];
  }
  if (t.kind === 'edgeDns') {
    const e: DnsEvent = {
      'event.name': 'egress.dns',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': t.service,
      'egress.id': `dns-${i}`,
      'egress.decision': t.result,
      'egress.reason': t.result === 'allowed' ? 'allowed' : 'host_not_allowed',
      'egress.mode': t.result === 'reported' ? 'report' : 'enforce',
      'egress.policy.hash': 'in-force',
      'egress.hook': 'edge.dns',
      'dns.question.name': t.host,
      'egress.dns.type': t.type,
      'egress.dns.rcode': 'NOERROR',
      'egress.dns.answer_count': t.answers.length,
      'dns.answers': t.answers.length > 0 ? t.answers : undefined,
      'network.transport': 'udp',
      'client.address': '10.0.1.5',
      'egress.duration_ms': 1,
    };
    return [JSON.stringify({ level: 30, time, ...e })];
  }
  const result = t.result;
  const decision = (fields: Partial<DecisionEvent>): string => {
    const e: DecisionEvent = {
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'source' in t ? t.source : 'sdk',
      'service.name': t.service,
      'egress.id': `id-${i}`,
      'egress.decision': result,
      'egress.reason': result === 'allowed' ? 'allowed' : 'host_not_allowed',
      'egress.mode': result === 'reported' ? 'report' : 'enforce',
      'egress.policy.hash': 'in-force',
      'egress.hook': 'fetch',
      'url.scheme': 'https',
      'server.port': 443,
      ...fields,
    };
    return JSON.stringify({ level: result === 'allowed' ? 30 : 40, time, ...e });
  };
  if (t.kind === 'dns')
    return [
      decision({ 'egress.hook': 'dns', 'url.scheme': 'tcp', 'server.address': t.host, 'server.port': 53 }),
    ];
  if (t.kind === 'connection') {
    const hook = t.source === 'edge' ? 'edge.explicit' : t.scheme === 'tcp' ? 'net' : 'tls';
    return [
      decision({
        'egress.hook': hook,
        'url.scheme': t.scheme,
        'server.address': t.host,
        'server.port': t.port,
        ...(t.source === 'edge' ? { 'client.address': '10.0.1.5' } : {}),
      }),
    ];
  }
  const request = {
    'egress.hook': t.source === 'edge' ? 'edge.explicit' : 'fetch',
    'url.scheme': t.scheme,
    'server.address': t.host,
    'server.port': t.port,
    'http.request.method': t.method,
    'url.path': t.path,
  };
  const lines = [decision(request)];
  if (t.dialled && !isIp(t.host))
    lines.push(decision({ ...request, 'egress.hook': 'fetch.dial', 'network.peer.address': t.dialled }));
  return lines;
}

/** The log, read back as `learn` and `diff` read it. */
function readBack(log: readonly Traffic[]): LoggedDecision[] {
  return log.flatMap(linesOf).map((line) => {
    const event = parseLine(line);
    const d = event && (toDecision(event) ?? fromSummary(event) ?? fromDnsQuestion(event));
    if (!d) throw new Error(`not read back: ${line}`);
    return d;
  });
}

function learnPolicy(
  decisions: readonly LoggedDecision[],
  includeDenied: boolean,
): { text: string; policy: Policy } {
  const seen = observe(decisions, { includeDenied });
  const text = renderPolicy(buildPolicy(seen, { threshold: 5, mode: 'enforce', files: 1, skipped: 0 }));
  return { text, policy: parsePolicy(text) };
}

/** `/v1/x` → `/v1/**`, `/v1` → `/v1`: what a learned `paths` entry generalises a path to. */
const pathClass = (p: string) => (p.indexOf('/', 1) === -1 ? p : `${p.slice(0, p.indexOf('/', 1))}/**`);

interface Probe {
  service: Service;
  host: string;
  scheme: Scheme;
  port: number;
  method: string;
  path: string;
}

/**
 * Whether the log contains the request `p`: per scope (the service's section, or the top level its
 * rules include), the same host, scheme and port, and the same method and path prefix; or, on an origin
 * where methods and paths were never in view (connections only, or summaries), any request; or, for a
 * name seen only in DNS look-ups, https on 443 (learn's documented guess).
 */
function contains(log: readonly Traffic[], p: Probe): boolean {
  const scopes: Service[] = p.service === undefined ? [undefined] : [p.service, undefined];
  return scopes.some((scope) => {
    const here = log.filter((t) => t.service === scope && t.host === p.host);
    const lookup = (t: Traffic) => t.kind === 'dns' || t.kind === 'edgeDns';
    const onOrigin = here.filter(
      (t) => !lookup(t) && 'scheme' in t && t.scheme === p.scheme && t.port === p.port,
    );
    if (here.length > 0 && here.every(lookup)) return p.scheme === 'https' && p.port === DEFAULT_PORTS.https;
    if (onOrigin.length === 0) return false;
    if (onOrigin.some((t) => t.kind === 'summary')) return true;
    const requests = onOrigin.filter((t) => t.kind === 'request');
    if (requests.length === 0) return true;
    return requests.some((t) => t.method === p.method && pathClass(t.path) === pathClass(p.path));
  });
}

/** Requests one step away from a logged one: another port, scheme, method, path prefix or host. */
function nearMisses(t: Extract<Traffic, { kind: 'request' }>): Probe[] {
  const base: Probe = {
    service: t.service,
    host: t.host,
    scheme: t.scheme,
    port: t.port,
    method: t.method,
    path: t.path,
  };
  return [
    ...PORTS.filter((p) => p !== t.port).map((port) => ({ ...base, port })),
    { ...base, scheme: t.scheme === 'http' ? 'https' : 'http' },
    ...METHODS.filter((m) => m !== t.method).map((method) => ({ ...base, method })),
    ...SEGMENTS.filter((s) => pathClass(`/${s}`) !== pathClass(t.path)).map((s) => ({
      ...base,
      path: `/${s}`,
    })),
    { ...base, path: `${t.path.split('/').slice(0, 2).join('/')}/deeper/still` },
    ...[...HOSTS, ...OTHER_HOSTS].filter((h) => h !== t.host).map((host) => ({ ...base, host })),
  ];
}

const decide = (policy: Policy, p: Probe) =>
  policy.decide({
    scheme: p.scheme,
    host: p.host,
    port: p.port,
    method: HTTP_SCHEMES.has(p.scheme) ? p.method : undefined,
    path: HTTP_SCHEMES.has(p.scheme) ? p.path : undefined,
    service: p.service,
  }).result;

describe('learn round trip (property)', () => {
  it('diff(learn(log), log) finds nothing; enforcing learn(log) allows the log and denies every near miss', () => {
    fc.assert(
      fc.property(fc.array(traffic, { minLength: 1, maxLength: 25 }), (log) => {
        const decisions = readBack(log);
        const kept = log.filter((t) => t.kind === 'summary' || t.result !== 'denied');
        const keptDecisions = decisions.filter((d) => d.result !== 'denied');
        const { text, policy } = learnPolicy(decisions, false);
        expect(policy.warnings, text).toEqual([]);

        // What the policy in force did not deny in enforce mode: diff finds nothing to deny.
        const diff = diffAgainst(policy, keptDecisions);
        for (const s of diff) expect(s.wouldDeny, `${text}\n${JSON.stringify([...s.reasons])}`).toBe(0);

        // Every logged request, and every near miss: allowed exactly when the log (less its denials) has it.
        for (const t of log) {
          if (t.kind !== 'request') continue;
          for (const probe of [t as Probe, ...nearMisses(t)]) {
            const expected = contains(kept, probe) ? 'allowed' : 'denied';
            expect(decide(policy, probe), `${JSON.stringify(probe)}\n${text}`).toBe(expected);
          }
        }
        for (const t of log) {
          if (t.kind !== 'connection' || t.result === 'denied') continue;
          // A connection: no method or path in view.
          const d = policy.decide({ scheme: t.scheme, host: t.host, port: t.port, service: t.service });
          expect(d.result, text).toBe('allowed');
        }

        // --include-denied: everything logged is allowed.
        const included = learnPolicy(decisions, true);
        for (const s of diffAgainst(included.policy, decisions)) expect(s.wouldDeny, included.text).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('a name dialled at a special-purpose address is learned with privateAddresses: allow, and only then', () => {
    fc.assert(
      fc.property(fc.array(traffic, { minLength: 1, maxLength: 15 }), (log) => {
        const decisions = readBack(log).filter((d) => d.result !== 'denied');
        const { policy, text } = learnPolicy(decisions, false);
        for (const d of decisions) {
          if (d.address === undefined && d.answers === undefined) continue;
          // The dial-time record, re-decided with its address, or the DNS answer with its addresses:
          // allowed (privateAddresses where needed).
          expect(redecide(policy, d, Date.now()).result, text).toBe('allowed');
        }
        const special = new Set(
          decisions
            .filter((d) => [d.address, ...(d.answers ?? [])].some((a) => a && SPECIAL.includes(a)))
            .map((d) => d.host),
        );
        const doc = policy.document;
        const rules = [
          ...(doc.allow ?? []),
          ...Object.values(doc.services ?? {}).flatMap((s) => s.allow ?? []),
        ];
        for (const rule of rules) {
          if (rule.privateAddresses === 'allow')
            expect(
              rule.hosts?.every((h) => special.has(h)),
              text,
            ).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});
