/**
 * Differential properties: random policies and random destinations, decided the way the SDK decides them
 * (a request with method and path, a connection whose content it cannot see, a raw TLS or TCP socket, a
 * WebSocket, the address it dials, a tunnel) and the way the edge decides them (by TLS SNI, by the CONNECT
 * target, by the HTTP Host with method and path, by the original destination address). Wherever both
 * halves can see the destination, they must not disagree (policy.md: "so that the SDK and the edge can
 * never disagree").
 *
 * The SDK view goes through the real SDK object (`createGuard(...)`: `decide()`, `decideTransport()`,
 * and its `policy`/`service`/`clock` for the dial-time and tunnel checks its hooks make). The edge's
 * decisions are made inside flows that need sockets; each is mirrored below by the exact calls the flow
 * makes, naming the file and function mirrored.
 */
import {
  blankDecision,
  CONNECTION_SCHEMES,
  createPolicy,
  type Decision,
  decideAddresses,
  decideAnyScheme,
  decideDialledAddress,
  decideTunnelOpening,
  decideTunnelTarget,
  normaliseHostName,
  type Policy,
  parseHost,
  parseIpLiteral,
  refineDecision,
  type Scheme,
  unmapIpv4,
} from '@egress-guard/policy';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
// The SDK's sources, as vitest's `@egress-guard/node` alias resolves them (the same module): the root
// package does not depend on @egress-guard/node, so `tsc -p test` resolves only the relative path.
import { createGuard, type EgressGuard } from '../packages/node/src/index.js';

// ---------------------------------------------------------------------------------------------------
// The clock, shared by both halves (report mode expires at `reportUntil`).
// ---------------------------------------------------------------------------------------------------

const NOW = Date.parse('2026-06-01T00:00:00Z');
/** Policies per property (each decided for up to DESTS destinations); DIFF_RUNS overrides it. */
const RUNS = Number(process.env.DIFF_RUNS ?? 600);
const DESTS = 8;
const SEED = 20_260_601;

/**
 * Cases that got past a property's precondition ("both can see it", "both let it out"): a property that
 * skips nearly every case proves nothing, so each one also checks that it compared enough of them.
 */
let compared = 0;
const comparing = () => {
  compared++;
};
function assertCompared<T extends unknown[]>(
  property: fc.IPropertyWithHooks<T>,
  minPerPolicy: number,
  runs = RUNS,
): void {
  compared = 0;
  fc.assert(property, { numRuns: runs, seed: SEED });
  if (process.env.DIFF_STATS) console.log(`compared ${compared} cases over ${runs} policies`);
  expect(compared, 'cases that reached the comparison').toBeGreaterThanOrEqual(
    Math.floor(minPerPolicy * runs),
  );
}

// ---------------------------------------------------------------------------------------------------
// Policies: a few allow and deny rules over a small alphabet, so that rules and destinations collide.
// ---------------------------------------------------------------------------------------------------

const LABELS = ['api', 'www'] as const;
const DOMAINS = ['example.com', 'example.org'] as const;
const ALL_SCHEMES = ['https', 'http', 'wss', 'ws', 'tls', 'tcp', 'ssh'] as const;
const HTTP_LIKE: ReadonlySet<string> = new Set(['https', 'http', 'wss', 'ws']);
const CIDRS = [
  '10.0.0.0/8',
  '10.1.2.3/32',
  '127.0.0.0/8',
  '169.254.169.254/32',
  '100.64.0.0/10',
  '203.0.113.0/24',
  '8.8.8.0/24',
  '93.184.216.34',
  '2001:db8::/32',
  'fd00::/8',
  '64:ff9b::/96',
  '2606:4700::/32',
] as const;
const PORT_ENTRIES = [443, 80, 8443, 22, '8000-8099'] as const;
const METHODS = ['GET', 'POST', 'DELETE'] as const;
const PATH_PATTERNS = ['/v1/**', '/admin/**', '/a'] as const;

const label = fc.constantFrom(...LABELS);
const domain = fc.constantFrom(...DOMAINS);
/** A valid DNS name of the alphabet, sometimes in upper case or with a trailing dot. */
const hostName = fc
  .tuple(fc.array(label, { maxLength: 2 }), domain, fc.constantFrom('', '', '', '.', 'UPPER'))
  .map(([labels, d, spelling]) => {
    const name = [...labels, d].join('.');
    return spelling === 'UPPER' ? name.toUpperCase() : `${name}${spelling}`;
  });
const hostPattern = fc.oneof(
  { weight: 4, arbitrary: hostName.map((h) => h.toLowerCase().replace(/\.$/, '')) },
  { weight: 1, arbitrary: domain.map((d) => `*.${d}`) },
  { weight: 1, arbitrary: domain.map((d) => `**.${d}`) },
);

interface RuleDoc {
  hosts?: string[];
  addresses?: string[];
  schemes?: Scheme[];
  ports?: (number | string)[];
  methods?: string[];
  paths?: string[];
  privateAddresses?: 'allow' | 'deny';
}

/** `arb` with weight `present`, else undefined with weight `absent` (shrinks towards undefined). */
const maybe = <T>(arb: fc.Arbitrary<T>, present: number, absent: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: present, arbitrary: arb });

/** A rule; `pool` is the schemes it may list (all of them, or a few to aim a property at them). */
const ruleArb = (kind: 'allow' | 'deny', pool: readonly Scheme[] = ALL_SCHEMES): fc.Arbitrary<RuleDoc> =>
  fc
    .record({
      hosts: maybe(fc.uniqueArray(hostPattern, { minLength: 1, maxLength: 2 }), 4, 1),
      addresses: maybe(fc.uniqueArray(fc.constantFrom(...CIDRS), { minLength: 1, maxLength: 2 }), 1, 2),
      schemes: maybe(fc.uniqueArray(fc.constantFrom(...pool), { minLength: 1, maxLength: 3 }), 2, 1),
      ports: maybe(fc.uniqueArray(fc.constantFrom(...PORT_ENTRIES), { minLength: 1, maxLength: 2 }), 1, 2),
      methods: maybe(fc.uniqueArray(fc.constantFrom(...METHODS), { minLength: 1, maxLength: 2 }), 1, 3),
      paths: maybe(fc.uniqueArray(fc.constantFrom(...PATH_PATTERNS), { minLength: 1, maxLength: 2 }), 1, 3),
      privateAddresses: maybe(fc.constantFrom('allow' as const, 'deny' as const), 1, 2),
      hostsFallback: hostPattern,
    })
    .map(({ hostsFallback, ...r }) => {
      const rule: RuleDoc = {};
      // A rule needs hosts or addresses.
      if (r.hosts || !r.addresses) rule.hosts = r.hosts ?? [hostsFallback];
      if (r.addresses) rule.addresses = r.addresses;
      if (r.schemes) rule.schemes = r.schemes;
      const schemes = r.schemes ?? (kind === 'allow' ? ['https'] : ALL_SCHEMES);
      // An allow rule for tcp must list ports (the linter refuses it otherwise).
      if (r.ports) rule.ports = r.ports;
      else if (kind === 'allow' && schemes.includes('tcp')) rule.ports = [443, '8000-8099'];
      // Methods and paths apply to HTTP schemes only (the linter refuses them otherwise).
      if (schemes.some((s) => HTTP_LIKE.has(s))) {
        if (r.methods) rule.methods = r.methods;
        if (r.paths) rule.paths = r.paths;
      }
      if (kind === 'allow' && r.privateAddresses) rule.privateAddresses = r.privateAddresses;
      return rule;
    });

const named = (rules: RuleDoc[], prefix: string) => rules.map((r, i) => ({ name: `${prefix}${i}`, ...r }));

const MODE = maybe(fc.constantFrom('enforce' as const, 'report' as const), 1, 1);
// One date before NOW (report mode has expired) and one after (still reporting).
const REPORT_UNTIL = maybe(fc.constantFrom('2026-01-01', '2027-01-31'), 1, 2);

const serviceArb = (pool: readonly Scheme[]) =>
  fc.record({
    mode: MODE,
    reportUntil: REPORT_UNTIL,
    allow: fc.array(ruleArb('allow', pool), { maxLength: 3 }),
    deny: fc.array(ruleArb('deny', pool), { maxLength: 2 }),
  });

/** Service names and the sources the edge maps to them: svc1's /24 sits inside svc2's /16. */
const SERVICE_SOURCES = { svc1: ['10.9.1.0/24'], svc2: ['10.9.0.0/16'] } as const;
/** A connection's source address at the edge: svc1, svc2 (most specific wins), or no service. */
const SOURCES = ['10.9.1.5', '10.9.2.5', '192.168.7.7'] as const;

/** A policy document: top-level mode, defaults, rules, and up to two services with their sources. */
const documentOf = (pool: readonly Scheme[] = ALL_SCHEMES) =>
  fc
    .record({
      mode: MODE,
      reportUntil: REPORT_UNTIL,
      privateAddresses: maybe(fc.constantFrom('allow' as const, 'deny' as const), 1, 2),
      allow: fc.array(ruleArb('allow', pool), { minLength: 1, maxLength: 4 }),
      deny: fc.array(ruleArb('deny', pool), { maxLength: 2 }),
      svc1: maybe(serviceArb(pool), 1, 2),
      svc2: maybe(serviceArb(pool), 1, 2),
    })
    .map((d) => {
      const doc: Record<string, unknown> = {
        version: 1,
        allow: named(d.allow, 'a'),
        deny: named(d.deny, 'd'),
      };
      if (d.mode) doc.mode = d.mode;
      if (d.reportUntil) doc.reportUntil = d.reportUntil;
      if (d.privateAddresses) doc.defaults = { privateAddresses: d.privateAddresses };
      const services: Record<string, unknown> = {};
      for (const name of ['svc1', 'svc2'] as const) {
        const s = d[name];
        if (!s) continue;
        const svc: Record<string, unknown> = {
          sources: [...SERVICE_SOURCES[name]],
          allow: named(s.allow, `${name}a`),
          deny: named(s.deny, `${name}d`),
        };
        if (s.mode) svc.mode = s.mode;
        if (s.reportUntil) svc.reportUntil = s.reportUntil;
        services[name] = svc;
      }
      if (Object.keys(services).length > 0) doc.services = services;
      return doc;
    });
const documentArb = documentOf();
/** Policies whose rules list plaintext HTTP schemes more often (for the plaintext dial-time property). */
const plainDocumentArb = documentOf(['http', 'ws', 'https', 'tcp']);

// ---------------------------------------------------------------------------------------------------
// Destinations.
// ---------------------------------------------------------------------------------------------------

/** IP literals in spellings clients accept (an IPv4-mapped IPv6, NAT64, short and hex IPv4 forms). */
const IP_LITERALS = [
  '10.1.2.3',
  '127.1',
  '0x7f.0.0.1',
  '8.8.8.8',
  '93.184.216.34',
  '203.0.113.9',
  '::1',
  '::ffff:10.1.2.3',
  '64:ff9b::a01:203',
  '2001:db8::5',
  '2606:4700::1111',
] as const;
/** Names that are not valid DNS names (never matched best-effort: invalid_destination). */
const INVALID_NAMES = ['a..example.com', 'bad host.example.com', '1.2.3.4.5', '-api.example.com'] as const;
/** Addresses a name may resolve to: public ones and every kind of special-purpose one. */
const DIALLED = [
  '8.8.8.8',
  '93.184.216.34',
  '2606:4700::1111',
  '10.1.2.3',
  '10.200.0.1',
  '127.0.0.1',
  '169.254.169.254',
  '100.64.0.1',
  '192.168.1.1',
  '203.0.113.9',
  '::1',
  'fd00::1',
  'fe80::1',
  '::ffff:10.1.2.3',
  // NAT64, 6to4 and Teredo carrying 10.1.2.3 (and NAT64 carrying 8.8.8.8).
  '64:ff9b::a01:203',
  '64:ff9b::808:808',
  '2002:a01:203::1',
  '2001:0:a01:203::1',
] as const;
const PORTS = [443, 80, 8443, 22, 8050, 9000] as const;
const PATHS = ['/', '/v1/charges', '/admin/users', '/a', '/v1/%2e%2e/admin', '/v1/x?q=1', '/b'] as const;

const nameOrLiteral = fc.oneof(
  { weight: 8, arbitrary: hostName },
  { weight: 2, arbitrary: fc.constantFrom(...IP_LITERALS) },
);
const port = fc.oneof(
  { weight: 6, arbitrary: fc.constant(443) },
  { weight: 3, arbitrary: fc.constant(80) },
  { weight: 2, arbitrary: fc.constantFrom(...PORTS) },
);
const method = fc.constantFrom(...METHODS, 'PUT');
const rawPath = fc.constantFrom(...PATHS);
const source = fc.constantFrom(...SOURCES);
const tlsRequestScheme = fc.constantFrom('https' as const, 'wss' as const);
const plainRequestScheme = fc.constantFrom('http' as const, 'ws' as const);

// ---------------------------------------------------------------------------------------------------
// The two halves.
// ---------------------------------------------------------------------------------------------------

/** Every SDK event goes here (a pino destination that keeps count and drops the lines). */
const sink = {
  lines: 0,
  write(_line: string) {
    this.lines++;
  },
};

interface World {
  policy: Policy;
  /** The service the edge maps the connection's source to, and that the SDK process runs as. */
  service: string | undefined;
  guard: EgressGuard;
}

/**
 * One deployment: the policy loaded by both halves; the SDK process is the service whose `sources` the
 * edge maps its connections to (policy.md: "The SDK names its service; the edge maps the connection's
 * source address through sources"), or no service.
 */
function world(doc: Record<string, unknown>, from: string): World {
  const policy = createPolicy(doc);
  // packages/edge/src/flow.ts:runTunnel and http-forwarder.ts: `policy.serviceForAddress(conn.source)`.
  const service = policy.serviceForAddress(from);
  const guard = createGuard({ policy, service, watch: false, destination: sink, now: () => NOW });
  return { policy, service, guard };
}

/** The edge's reading of an IP literal: claims.ts:canonicalAddress (IPv4-mapped unmapped, canonical). */
function canonicalAddress(address: string): string | undefined {
  const unbracketed = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const ip = parseIpLiteral(unbracketed);
  return ip ? unmapIpv4(ip).canonical : undefined;
}

/** flow.ts:connectHost: the name or literal a CONNECT target names. */
function connectHost(host: string): { name?: string; literal?: string } {
  const parsed = parseHost(host);
  if (parsed.kind === 'ip') {
    const literal = canonicalAddress(parsed.ip.canonical);
    return literal === undefined ? {} : { literal };
  }
  if (parsed.kind === 'name') return { name: parsed.name };
  return {};
}

/**
 * The edge's decision of a TLS flow on an SNI-routed listener whose ClientHello names `serverName` (no
 * ECH, a version at or above the floor). Mirrors packages/edge/src/flow.ts:tlsFlow for a target of kind
 * `sni`: the host decision by SNI (`decideAnyScheme(policy, CONNECTION_SCHEMES.tls, ...)`), then the
 * checks in their order (invalid server_name, enforced whatever the mode; sni_missing).
 */
function edgeSniDecision(w: World, serverName: string, at: number): Decision {
  const { policy, service } = w;
  const sni = normaliseHostName(serverName);
  const hostDecision =
    sni !== undefined
      ? decideAnyScheme(policy, CONNECTION_SCHEMES.tls, { host: sni, port: at, service }, NOW)
      : blankDecision(policy, service, at, NOW);
  if (sni === undefined || parseHost(sni).kind !== 'name') {
    return refineDecision(hostDecision, 'invalid_destination', 'server_name is not a valid DNS name', true);
  }
  return hostDecision;
}

/**
 * The CONNECT pre-check of the explicit proxy: packages/edge/src/listeners/explicit-proxy.ts:openTunnel,
 * `decideTunnelOpening(policy, { host, port, service })`; refused (403, nothing dialled) when its result
 * is `denied`.
 */
function edgeConnectPreCheck(w: World, host: string, at: number): Decision {
  return decideTunnelOpening(w.policy, { host, port: at, service: w.service }, NOW);
}

/**
 * The TLS flow inside a CONNECT tunnel (flow.ts:tlsFlow, target of kind `connect`): the policy is asked
 * about the CONNECT host (a name, or a literal in canonical form); the ClientHello names that host (Node
 * and curl send no server_name for an IP literal, which docs/edge.md allows for a CONNECT to a literal).
 */
function edgeTunnelTlsDecision(w: World, host: string, at: number): Decision {
  const { name, literal } = connectHost(host);
  const target = name ?? literal;
  return target !== undefined
    ? decideAnyScheme(w.policy, CONNECTION_SCHEMES.tls, { host: target, port: at, service: w.service }, NOW)
    : blankDecision(w.policy, w.service, at, NOW);
}

/** The whole explicit-proxy path of a TLS connection: the pre-check, then the TLS flow in the tunnel. */
function edgeExplicitTls(w: World, host: string, at: number): Decision {
  const pre = edgeConnectPreCheck(w, host, at);
  return pre.result === 'denied' ? pre : edgeTunnelTlsDecision(w, host, at);
}

/**
 * Raw TCP at the edge (first bytes neither TLS, HTTP nor SSH): flow.ts:rawFlow with flow.ts:decideTarget.
 * Through a CONNECT tunnel the CONNECT host is decided as `tcp`; transparently, the original address.
 * A refusal is reworded `protocol_not_allowed` unless a deny rule named the destination.
 */
function edgeRawTcp(w: World, target: { host: string } | { original: string }, at: number): Decision {
  const { policy, service } = w;
  let tcp: Decision;
  if ('original' in target) {
    tcp = policy.decide({ scheme: 'tcp', address: target.original, port: at, service }, NOW);
  } else {
    const { name, literal } = connectHost(target.host);
    tcp = policy.decide({ scheme: 'tcp', host: name ?? literal ?? target.host, port: at, service }, NOW);
  }
  return !tcp.allowed || tcp.result === 'reported'
    ? tcp.reason === 'explicit_deny'
      ? tcp
      : refineDecision(tcp, 'protocol_not_allowed', 'the first bytes are neither TLS, HTTP nor SSH-2')
    : tcp;
}

/**
 * A plaintext HTTP request at the edge, decided by its Host (or the absolute-form URL host) with method
 * and path: packages/edge/src/http-forwarder.ts:HttpForwarder#plan, `scheme` `http` for a request and
 * `ws` for an Upgrade (onUpgrade); the path is the target without its query.
 */
function edgeHttpDecision(
  w: World,
  scheme: 'http' | 'ws',
  host: string,
  at: number,
  m: string,
  pathWithQuery: string,
): Decision {
  const parsed = parseHost(host);
  const name = parsed.kind === 'name' ? parsed.name : undefined;
  const literal = parsed.kind === 'ip' ? canonicalAddress(parsed.ip.canonical) : undefined;
  const path = pathWithQuery.split('?')[0] ?? '/';
  const dest = { scheme, port: at, method: m, path, service: w.service } as const;
  const decision =
    name !== undefined || literal !== undefined
      ? w.policy.decide({ ...dest, host: name ?? literal }, NOW)
      : blankDecision(w.policy, w.service, at, NOW);
  if (parsed.kind === 'invalid') return refineDecision(decision, 'invalid_destination', parsed.detail, true);
  return decision;
}

/**
 * The edge's decision of the address it dials for a name (packages/edge/src/destination.ts:
 * resolveDestination, name branch: `decideAddresses(policy, { ...base, host: name }, addresses)`), with
 * `base` the flow's: a TLS flow's scheme is its host decision's (flow.ts:tlsFlow `scheme:
 * hostDecision.scheme`, no method or path); an HTTP request's carries its method and path. A literal is
 * decided as `{ ...base, host: literal, address: literal }` (the literal branch).
 */
function edgeAddressDecision(
  w: World,
  base: { scheme: Scheme; port: number; method?: string; path?: string },
  host: string,
  address: string,
): Decision {
  const { name, literal } = connectHost(host);
  const b = { ...base, service: w.service };
  if (literal !== undefined) return w.policy.decide({ ...b, host: literal, address: literal }, NOW);
  return decideAddresses(w.policy, { ...b, host: name }, [address], NOW).decision;
}

/**
 * The SDK's dial-time check of one address (packages/node/src/pipeline/record.ts:checkDialledAddress,
 * run by the guarded lookup for every address a name resolves to, and by socket-connect.ts for an IP
 * literal): `decideDialledAddress` with the scheme, host and port of the decision that opened the
 * connection.
 */
function sdkDialDecision(
  g: EgressGuard,
  scheme: Scheme,
  host: string,
  at: number,
  address: string,
  request: { method?: string; path?: string } = {},
): Decision {
  const { method: m, path } = request;
  return decideDialledAddress(
    g.policy,
    { scheme, host, port: at, method: m, path, service: g.service },
    address,
    g.clock(),
  );
}

/**
 * A TLS request through node:https (hooks/http.ts:decideRequest and withTlsConnection): the request's
 * own decision, then its connection decided content unseen (`decideTransport`), whose refusal is the
 * request's answer; returns the request's answer and the connection decision its socket carries.
 */
function sdkHttpsRequest(g: EgressGuard, scheme: Scheme, host: string, at: number, m: string, path: string) {
  const request = sdkRequest(g, scheme, host, at, m, path);
  if (!request.allowed) return { answer: request, connection: request };
  const connection = g.decideTransport(host, at, true);
  return { answer: connection.allowed ? request : connection, connection };
}

/** An HTTP(S) request as the SDK's hooks decide it (hooks/http.ts:decideRequest, the undici interceptor). */
function sdkRequest(g: EgressGuard, scheme: Scheme, host: string, at: number, m: string, path: string) {
  return g.decide({ scheme, host, port: at, method: m, path: path.split('?')[0] });
}

/** The parts of a decision both halves must agree on. */
function view(d: Decision) {
  return {
    result: d.result,
    allowed: d.allowed,
    reason: d.reason,
    rule: d.rule,
    ruleKind: d.ruleKind,
    scheme: d.scheme,
    mode: d.mode,
    service: d.service,
    tls: d.tls,
    privateAddresses: d.privateAddresses,
  };
}
const outcome = (d: Decision) => ({ result: d.result, reason: d.reason });

// ---------------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------------

describe('SDK and edge decide alike wherever both can see the destination', () => {
  const dests = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { minLength: 1, maxLength: DESTS });

  // 1. Connection level.

  it('1a. a TLS connection, content unseen: SDK decideTransport(host, port, true) equals the edge SNI decision', () => {
    // Both can see: the host name (the SDK the name it connects to, the edge the same name as SNI) and
    // the port; neither sees which TLS scheme it carries. An invalid name is invalid_destination on both,
    // and the edge refuses it whatever the mode (docs/edge.md: "Refused outright, whatever the policy:
    // ... a server_name that is not a DNS name"), so in report mode the SDK reports what the edge denies.
    const sniHost = fc.oneof(
      { weight: 9, arbitrary: hostName },
      { weight: 1, arbitrary: fc.constantFrom(...INVALID_NAMES) },
    );
    assertCompared(
      fc.property(documentArb, source, dests(fc.tuple(sniHost, port)), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at] of cases) {
          const sdk = w.guard.decideTransport(host, at, true);
          const edge = edgeSniDecision(w, host, at);
          comparing();
          if (parseHost(host).kind === 'invalid') {
            expect([sdk.reason, edge.reason]).toEqual(['invalid_destination', 'invalid_destination']);
            expect(edge.result).toBe('denied');
            expect(sdk.result).toBe(sdk.mode === 'report' ? 'reported' : 'denied');
            continue;
          }
          expect(view(sdk), `${host}:${at}`).toEqual(view(edge));
        }
      }),
      4,
    );
  });

  it('1b. a TLS connection in a CONNECT tunnel: SDK decideTransport equals the edge tunnel TLS flow decision', () => {
    // Both can see: the CONNECT host (a name, or an IP literal in any spelling, read the same way) and
    // the port. The CONNECT pre-check that comes before the tunnel is in 2e and 4.
    assertCompared(
      fc.property(documentArb, source, dests(fc.tuple(nameOrLiteral, port)), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at] of cases) {
          comparing();
          expect(view(w.guard.decideTransport(host, at, true)), `${host}:${at}`).toEqual(
            view(edgeTunnelTlsDecision(w, host, at)),
          );
        }
      }),
      4,
    );
  });

  it('1c. raw TCP: SDK net.connect (scheme tcp) and the edge raw flow agree; the edge words a non-deny refusal protocol_not_allowed', () => {
    // Both can see: host and port through a CONNECT tunnel, and for an IP literal also the transparent
    // original address; both know the bytes are raw (neither TLS, HTTP nor SSH at the edge; a socket no
    // hook decided in hooks/socket-connect.ts: `{ scheme: 'tcp', host, port }`). Plaintext HTTP is
    // decided per request at the edge (2d): the edge never decides plaintext "content unseen", so the
    // SDK connector's decideTransport(host, port, false) has no edge counterpart.
    assertCompared(
      fc.property(
        documentArb,
        source,
        dests(fc.tuple(nameOrLiteral, port, fc.boolean())),
        (doc, from, cases) => {
          const w = world(doc, from);
          for (const [host, at, transparent] of cases) {
            const sdk = w.guard.decide({ scheme: 'tcp', host, port: at });
            const literal = canonicalAddress(host);
            const edge =
              transparent && literal !== undefined
                ? edgeRawTcp(w, { original: literal }, at)
                : edgeRawTcp(w, { host }, at);
            comparing();
            const reworded = sdk.result !== 'allowed' && sdk.reason !== 'explicit_deny';
            expect(outcome(edge), `${host}:${at}`).toEqual({
              result: sdk.result,
              reason: reworded ? 'protocol_not_allowed' : sdk.reason,
            });
            expect(edge.rule).toBe(sdk.rule);
          }
        },
      ),
      4,
    );
  });

  it('1d. raw TLS (tls.connect, scheme tls): what the SDK lets out, the edge SNI decision lets out', () => {
    // Both can see: the name (hooks/tls-connect.ts sends it as SNI) and the port. The SDK decides a raw
    // TLS socket that no hook decided as `{ scheme: 'tls', host, port }`; the edge cannot tell it from
    // HTTPS or WSS. "Lets out": `allowed` (allowed, or reported in report mode); allowed outright by the
    // SDK must be allowed outright by the edge.
    assertCompared(
      fc.property(documentArb, source, dests(fc.tuple(hostName, port)), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at] of cases) {
          const sdk = w.guard.decide({ scheme: 'tls', host, port: at });
          if (!sdk.allowed) continue;
          comparing();
          const edge = edgeSniDecision(w, host, at);
          expect(edge.allowed, `tls://${host}:${at} ${edge.reason} ${edge.rule}`).toBe(true);
          if (sdk.result === 'allowed') expect(edge.result).toBe('allowed');
        }
      }),
      0.3,
    );
  });

  // 2. Requests against the edge.

  const tlsRequest = fc.tuple(hostName, port, tlsRequestScheme, method, rawPath);

  it('2a. an HTTPS/WSS request the SDK lets out (request AND connector decision) is let out by the edge SNI decision', () => {
    // Both can see: host and port. The SDK also sees scheme, method and path; the edge none of them.
    // "Lets out": the guard's dispatcher and agents decide the request (hooks/undici/interceptors.ts) and
    // then its connection (hooks/undici/guarded-connector.ts, hooks/http-agents.ts: decideTransport).
    assertCompared(
      fc.property(documentArb, source, dests(tlsRequest), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at, scheme, m, p] of cases) {
          const request = sdkRequest(w.guard, scheme, host, at, m, p);
          const connection = w.guard.decideTransport(host, at, true);
          if (!(request.allowed && connection.allowed)) continue;
          comparing();
          const edge = edgeSniDecision(w, host, at);
          expect(edge.allowed, `${scheme}://${host}:${at} ${m} ${p}`).toBe(true);
          if (request.result === 'allowed' && connection.result === 'allowed')
            expect(edge.result).toBe('allowed');
        }
      }),
      0.3,
    );
  });

  it('2b. an edge denial of a TLS connection to (host, port) means the SDK denies every HTTPS/WSS request to it', () => {
    // Both can see: host and port. For each (host, port) the edge denies, random requests to it (scheme,
    // method, path): the SDK's request decision or its connection decision denies each.
    assertCompared(
      fc.property(
        documentArb,
        source,
        dests(fc.tuple(hostName, port)),
        fc.array(fc.tuple(tlsRequestScheme, method, rawPath), { minLength: 1, maxLength: 4 }),
        (doc, from, cases, requests) => {
          const w = world(doc, from);
          for (const [host, at] of cases) {
            if (edgeSniDecision(w, host, at).result !== 'denied') continue;
            comparing();
            for (const [scheme, m, p] of requests) {
              const request = sdkRequest(w.guard, scheme, host, at, m, p);
              const connection = w.guard.decideTransport(host, at, true);
              expect(request.allowed && connection.allowed, `${scheme}://${host}:${at} ${m} ${p}`).toBe(
                false,
              );
            }
          }
        },
      ),
      2,
    );
  });

  it('2c. an HTTPS/WSS request through node:https (request, then its connection content unseen) is let out by the edge SNI decision', () => {
    // Both can see: host and port. hooks/http.ts:decideRequest decides a direct request with its scheme,
    // method and path, then its TLS connection content unseen (withTlsConnection): https.request, and
    // http(s).request with `Upgrade: websocket` (scheme wss).
    assertCompared(
      fc.property(documentArb, source, dests(tlsRequest), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at, scheme, m, p] of cases) {
          const request = sdkHttpsRequest(w.guard, scheme, host, at, m, p).answer;
          if (!request.allowed) continue;
          comparing();
          const edge = edgeSniDecision(w, host, at);
          expect(edge.allowed, `${scheme}://${host}:${at} ${m} ${p}: ${edge.reason} ${edge.rule}`).toBe(true);
        }
      }),
      0.3,
    );
  });

  it('2d. plaintext HTTP and ws: the SDK request decision equals the edge Host decision', () => {
    // Both can see: the host (Host header, or absolute-form URL host), port, method, path without the
    // query, and whether it is an Upgrade (scheme ws on both: http-forwarder.ts onUpgrade, hooks/http.ts).
    const host = fc.oneof(
      { weight: 9, arbitrary: nameOrLiteral },
      { weight: 1, arbitrary: fc.constantFrom(...INVALID_NAMES) },
    );
    assertCompared(
      fc.property(
        documentArb,
        source,
        dests(fc.tuple(host, port, plainRequestScheme, method, rawPath)),
        (doc, from, cases) => {
          const w = world(doc, from);
          for (const [h, at, scheme, m, p] of cases) {
            const sdk = sdkRequest(w.guard, scheme, h, at, m, p);
            const edge = edgeHttpDecision(w, scheme, h, at, m, p);
            comparing();
            if (parseHost(h).kind === 'invalid') {
              // An unparsable Host: invalid_destination on both; the edge cannot route it, whatever the mode.
              expect([sdk.reason, edge.reason]).toEqual(['invalid_destination', 'invalid_destination']);
              expect(edge.result).toBe('denied');
              continue;
            }
            expect(view(sdk), `${scheme}://${h}:${at} ${m} ${p}`).toEqual(view(edge));
          }
        },
      ),
      4,
    );
  });

  it('2e. through the explicit proxy: an HTTPS/WSS request the SDK lets out passes the CONNECT pre-check and the tunnel TLS flow', () => {
    // Both can see: the CONNECT host and port (the SDK: the request's origin). "Lets out" as in 2a; the
    // edge decides the CONNECT (explicit-proxy.ts:openTunnel), then the ClientHello in the tunnel.
    assertCompared(
      fc.property(
        documentArb,
        source,
        dests(fc.tuple(nameOrLiteral, port, tlsRequestScheme, method, rawPath)),
        (doc, from, cases) => {
          const w = world(doc, from);
          for (const [host, at, scheme, m, p] of cases) {
            const request = sdkRequest(w.guard, scheme, host, at, m, p);
            const connection = w.guard.decideTransport(host, at, true);
            if (!(request.allowed && connection.allowed)) continue;
            comparing();
            const edge = edgeExplicitTls(w, host, at);
            expect(edge.allowed, `${scheme}://${host}:${at} ${m} ${p}: ${edge.reason} ${edge.rule}`).toBe(
              true,
            );
          }
        },
      ),
      0.3,
    );
  });

  // 3. The address dialled.

  it('3a. dial time, TLS through the connector: SDK decideDialledAddress equals the edge address decision', () => {
    // Both can see: the name (or literal), the port and the address dialled (the same resolver answer;
    // each address of DIALLED in turn); neither sees the scheme inside TLS. Only where both let the connection out (else nothing
    // is dialled). The connector dials with its decideTransport decision's scheme (guarded-connector.ts:
    // `scheme: decision.scheme`); the edge with its host decision's (flow.ts:tlsFlow).
    assertCompared(
      fc.property(documentArb, source, dests(fc.tuple(nameOrLiteral, port)), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at] of cases) {
          const connection = w.guard.decideTransport(host, at, true);
          const hostDecision = edgeTunnelTlsDecision(w, host, at);
          if (!(connection.allowed && hostDecision.allowed)) continue;
          // An IP literal is dialled as itself (socket-connect.ts checks it; destination.ts dials it).
          const literal = canonicalAddress(host);
          for (const address of literal !== undefined ? [literal] : DIALLED) {
            comparing();
            const sdk = sdkDialDecision(w.guard, connection.scheme, host, at, address);
            const edge = edgeAddressDecision(w, { scheme: hostDecision.scheme, port: at }, host, address);
            expect(outcome(sdk), `${host}:${at} -> ${address}`).toEqual(outcome(edge));
          }
        }
      }),
      2,
    );
  });

  it('3b. dial time, HTTPS/WSS through node:https (its connection decision): SDK decideDialledAddress equals the edge address decision', () => {
    // Both can see: the name, the port and the address. hooks/http.ts dials with its connection's decision
    // (content unseen: the first TLS scheme allowed, as the edge), without method or path. Only where both allow the connection outright (in report mode, a request that is
    // itself a would-deny is reported again at dial time with its own reason: nothing to compare).
    assertCompared(
      fc.property(
        documentArb,
        source,
        dests(fc.tuple(hostName, port, tlsRequestScheme, method, rawPath)),
        (doc, from, cases) => {
          const w = world(doc, from);
          for (const [host, at, scheme, m, p] of cases) {
            const { answer, connection } = sdkHttpsRequest(w.guard, scheme, host, at, m, p);
            const hostDecision = edgeSniDecision(w, host, at);
            if (!(answer.result === 'allowed' && hostDecision.result === 'allowed')) continue;
            for (const address of DIALLED) {
              comparing();
              const sdk = sdkDialDecision(w.guard, connection.scheme, host, at, address);
              const edge = edgeAddressDecision(w, { scheme: hostDecision.scheme, port: at }, host, address);
              expect(outcome(sdk), `${scheme}://${host}:${at} ${m} ${p} -> ${address}`).toEqual(
                outcome(edge),
              );
            }
          }
        },
      ),
      1,
    );
  });

  it('3c. dial time, plaintext HTTP/ws: SDK decideDialledAddress equals the edge address decision of the request', () => {
    // Both can see: the name, port, method, path and the address. The edge decides each address with the
    // request's method and path (destination.ts: `base` carries them); so does the SDK's dial-time check
    // of a plaintext request (hooks/http.ts puts them in the connection context). Only where both allowed the request
    // outright (not a would-deny of report mode).
    assertCompared(
      fc.property(
        plainDocumentArb,
        source,
        dests(fc.tuple(hostName, port, plainRequestScheme, method, rawPath)),
        (doc, from, cases) => {
          const w = world(doc, from);
          for (const [host, at, scheme, m, p] of cases) {
            const request = sdkRequest(w.guard, scheme, host, at, m, p);
            const edgeRequest = edgeHttpDecision(w, scheme, host, at, m, p);
            if (!(request.result === 'allowed' && edgeRequest.result === 'allowed')) continue;
            const base = { scheme, port: at, method: m, path: p.split('?')[0] ?? '/' };
            for (const address of DIALLED) {
              comparing();
              const sdk = sdkDialDecision(w.guard, request.scheme, host, at, address, base);
              const edge = edgeAddressDecision(w, base, host, address);
              expect(outcome(sdk), `${scheme}://${host}:${at} ${m} ${p} -> ${address}`).toEqual(
                outcome(edge),
              );
            }
          }
        },
      ),
      1,
    );
  });

  // 4. CONNECT.

  it('4. a tunnel target the edge CONNECT pre-check denies, the SDK decideTunnelTarget denies too (the SDK is never wider)', () => {
    // Both can see: the CONNECT authority (host:port), nothing of what the tunnel will carry. The SDK
    // decides a tunnel that carries no request a hook just allowed with decideTunnelTarget (hooks/http.ts,
    // hooks/http2.ts, hooks/undici/interceptors.ts); the edge with explicit-proxy.ts:openTunnel.
    assertCompared(
      fc.property(documentArb, source, dests(fc.tuple(nameOrLiteral, port)), (doc, from, cases) => {
        const w = world(doc, from);
        for (const [host, at] of cases) {
          if (edgeConnectPreCheck(w, host, at).result !== 'denied') continue;
          comparing();
          const authority = host.includes(':') ? `[${host}]:${at}` : `${host}:${at}`;
          const { decision } = decideTunnelTarget(
            w.guard.policy,
            authority,
            w.guard.service,
            w.guard.clock(),
          );
          expect(outcome(decision), `CONNECT ${authority}: ${decision.rule}`).toMatchObject({
            result: 'denied',
          });
        }
      }),
      2,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// 5. The case of the issue, and the smallest counterexamples the properties above shrank to.
// ---------------------------------------------------------------------------------------------------

const at = (allow: unknown[], deny: unknown[] = []) => world({ version: 1, allow, deny }, '192.168.7.7');

describe('examples', () => {
  it('5. allow x for https, deny x for wss: a TLS connection to x is denied by the SDK connector and by the edge alike', () => {
    const w = at(
      [{ name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] }],
      [{ name: 'x-wss', hosts: ['x.example.com'], schemes: ['wss'] }],
    );
    // The request itself is https: allowed on its own.
    expect(sdkRequest(w.guard, 'https', 'x.example.com', 443, 'GET', '/')).toMatchObject({
      result: 'allowed',
      rule: 'x-https',
    });
    // The connection that carries it cannot be told from a wss one: the deny wins, on both halves.
    const sdk = w.guard.decideTransport('x.example.com', 443, true);
    expect(sdk).toMatchObject({ result: 'denied', reason: 'explicit_deny', rule: 'x-wss' });
    expect(view(edgeSniDecision(w, 'x.example.com', 443))).toEqual(view(sdk));
    expect(view(edgeTunnelTlsDecision(w, 'x.example.com', 443))).toEqual(view(sdk));
    expect(view(edgeExplicitTls(w, 'x.example.com', 443))).toEqual(view(sdk));
  });
});

describe('regressions: the smallest disagreements the properties found, now decided alike', () => {
  it('1d: allow x for tls, deny x for https: a raw tls.connect to x is denied by the SDK as by the edge', () => {
    const w = at(
      [{ name: 'x-tls', hosts: ['x.example.com'], schemes: ['tls'] }],
      [{ name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] }],
    );
    // The raw socket could carry the HTTPS the deny rule forbids.
    const sdk = w.guard.decide({ scheme: 'tls', host: 'x.example.com', port: 443 });
    expect(sdk).toMatchObject({ result: 'denied', reason: 'explicit_deny', rule: 'x-https' });
    expect(outcome(sdk)).toEqual(outcome(edgeSniDecision(w, 'x.example.com', 443)));
  });

  it('2c: allow x for https, deny x for wss: https.request to x is denied by the SDK as by the edge', () => {
    const w = at(
      [{ name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] }],
      [{ name: 'x-wss', hosts: ['x.example.com'], schemes: ['wss'] }],
    );
    const { answer } = sdkHttpsRequest(w.guard, 'https', 'x.example.com', 443, 'GET', '/');
    expect(answer).toMatchObject({ result: 'denied', rule: 'x-wss' });
    expect(outcome(answer)).toEqual(outcome(edgeSniDecision(w, 'x.example.com', 443)));
  });

  it('2e: allow x for https, deny x for http: the explicit proxy opens the tunnel and the TLS in it is allowed', () => {
    const w = at(
      [{ name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] }],
      [{ name: 'x-http', hosts: ['x.example.com'], schemes: ['http'] }],
    );
    expect(sdkHttpsRequest(w.guard, 'https', 'x.example.com', 443, 'GET', '/').answer).toMatchObject({
      result: 'allowed',
    });
    expect(edgeExplicitTls(w, 'x.example.com', 443)).toMatchObject({ result: 'allowed', rule: 'x-https' });
  });

  it('3b: https rule without, wss rule with privateAddresses: allow: a wss upgrade to x at 10.1.2.3 is refused by both', () => {
    const w = at([
      { name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] },
      { name: 'x-wss', hosts: ['x.example.com'], schemes: ['wss'], privateAddresses: 'allow' },
    ]);
    const { answer, connection } = sdkHttpsRequest(w.guard, 'wss', 'x.example.com', 443, 'GET', '/socket');
    expect(answer).toMatchObject({ result: 'allowed', rule: 'x-wss' });
    const sdk = sdkDialDecision(w.guard, connection.scheme, 'x.example.com', 443, '10.1.2.3');
    const hostDecision = edgeSniDecision(w, 'x.example.com', 443);
    const edge = edgeAddressDecision(
      w,
      { scheme: hostDecision.scheme, port: 443 },
      'x.example.com',
      '10.1.2.3',
    );
    expect(edge).toMatchObject({ result: 'denied', reason: 'private_address', rule: 'x-https' });
    expect(outcome(sdk)).toEqual(outcome(edge));
  });

  it('3c: allow x for http on /v1/** with privateAddresses: allow, and x for http: GET /admin to x at 10.1.2.3 is refused by both', () => {
    const w = at([
      {
        name: 'x-v1',
        hosts: ['x.example.com'],
        schemes: ['http'],
        paths: ['/v1/**'],
        privateAddresses: 'allow',
      },
      { name: 'x-any', hosts: ['x.example.com'], schemes: ['http'] },
    ]);
    const request = { method: 'GET', path: '/admin' };
    const sdk = sdkDialDecision(w.guard, 'http', 'x.example.com', 80, '10.1.2.3', request);
    const edge = edgeAddressDecision(
      w,
      { scheme: 'http', port: 80, ...request },
      'x.example.com',
      '10.1.2.3',
    );
    expect(edge).toMatchObject({ result: 'denied', reason: 'private_address', rule: 'x-any' });
    expect(outcome(sdk)).toEqual(outcome(edge));
  });

  it('3c: deny 10.0.0.0/8 on /admin/**: GET /admin/users to x at 10.1.2.3 is refused by both', () => {
    const w = at(
      [{ name: 'x', hosts: ['x.example.com'], schemes: ['http'], privateAddresses: 'allow' }],
      [{ name: 'no-internal-admin', addresses: ['10.0.0.0/8'], paths: ['/admin/**'] }],
    );
    const request = { method: 'GET', path: '/admin/users' };
    const sdk = sdkDialDecision(w.guard, 'http', 'x.example.com', 80, '10.1.2.3', request);
    const edge = edgeAddressDecision(
      w,
      { scheme: 'http', port: 80, ...request },
      'x.example.com',
      '10.1.2.3',
    );
    expect(edge).toMatchObject({ result: 'denied', reason: 'explicit_deny', rule: 'no-internal-admin' });
    expect(outcome(sdk)).toEqual(outcome(edge));
  });

  it('4: allow x for tls, deny x for https: neither opens a tunnel to x:443', () => {
    const w = at(
      [{ name: 'x-tls', hosts: ['x.example.com'], schemes: ['tls'] }],
      [{ name: 'x-https', hosts: ['x.example.com'], schemes: ['https'] }],
    );
    expect(edgeConnectPreCheck(w, 'x.example.com', 443)).toMatchObject({ result: 'denied', rule: 'x-https' });
    const { decision } = decideTunnelTarget(w.policy, 'x.example.com:443', w.service, NOW);
    expect(decision).toMatchObject({ result: 'denied', rule: 'x-https' });
  });
});
