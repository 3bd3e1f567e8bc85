import {
  describeEntry,
  type ExportPlan,
  type ExportTarget,
  headerComment,
  type Listener,
  listenOn,
  type MatchEntry,
  NAME_DIALLING_PROXY,
  RENDER_DEFAULTS,
  type RenderOptions,
} from '../core/index.js';

/**
 * HAProxy: a TCP frontend per TLS port reads `req.ssl_sni`, a HTTP frontend per plain-HTTP port the Host
 * header. Names are matched only with anchored regexes (`-m reg -i`), never `map_end`/`map_dom`/`-m end`/
 * `-m dom` (their suffix and domain semantics are wider than ours: `-m end api.x.com` matches
 * `evilapi.x.com`, `-m dom example.org` matches `example.org.evil.io`).
 *
 * First match wins, as in the policy: each entry sets `txn.egress_guard` only if no earlier entry did, then
 * anything not set to `allow` is rejected. Allowed names are resolved by HAProxy (`do-resolve`) and the
 * connection goes to that address and the listener's port.
 */
export const haproxyTarget: ExportTarget = {
  name: 'haproxy',
  summary: 'haproxy.cfg: req.ssl_sni / Host matched by anchored -m reg -i, in policy order',
  semantics: NAME_DIALLING_PROXY,
  render: renderHaproxy,
};

function renderHaproxy(plan: ExportPlan, options: RenderOptions): string {
  const resolver = options.resolver ?? RENDER_DEFAULTS.resolver;
  const nameserver =
    resolver.includes(':') && !resolver.includes('[') && resolver.split(':').length === 2
      ? resolver
      : `${resolver}:53`;
  const out = [
    ...headerComment(plan, options),
    '#',
    '# Use: haproxy -f <this file>. Clients reach HAProxy as their egress point; allowed names are',
    `# resolved by the nameserver below (${nameserver}) and forwarded there, to the same port.`,
    '',
    'global',
    '    maxconn 4096',
    '',
    'defaults',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    '',
    'resolvers egress_guard_dns',
    `    nameserver dns1 ${nameserver}`,
    '    accepted_payload_size 8192',
    '    hold valid 30s',
    '    resolve_retries 2',
    '    timeout resolve 1s',
    '    timeout retry 1s',
  ];
  for (const l of plan.listeners) {
    out.push('', ...(l.transport === 'tls' ? tlsFrontend(l, options) : httpFrontend(l, options)));
  }
  out.push(
    '',
    '# Allowed connections go to the address do-resolve found (set-dst): no fixed server.',
    'backend egress_guard_forward_tcp',
    '    mode tcp',
    '    server forward 0.0.0.0:0',
  );
  if (plan.listeners.some((l) => l.transport === 'http')) {
    out.push('', 'backend egress_guard_forward_http', '    mode http', '    server forward 0.0.0.0:0');
  }
  return `${out.join('\n')}\n`;
}

/** HAProxy wants `:port` for every address. */
function bindOn(options: RenderOptions, port: number): string {
  return options.listenAddress === undefined ? `:${port}` : listenOn(options, port);
}

/** First match wins: each line decides only while no earlier line has. */
function verdictLines(prefix: string, fetch: string, entries: MatchEntry[]): string[] {
  const lines: string[] = [];
  for (const e of entries) {
    lines.push(`    # ${describeEntry(e)}`);
    lines.push(
      `    ${prefix} set-var(txn.egress_guard) str(${e.action}) if !{ var(txn.egress_guard) -m found } { ${fetch} -m reg -i '${e.regex}' }`,
    );
  }
  return lines;
}

function tlsFrontend(l: Listener, options: RenderOptions): string[] {
  return [
    `# TLS on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
    `frontend egress_guard_tls_${l.port}`,
    '    mode tcp',
    `    bind ${bindOn(options, l.port)}`,
    '    tcp-request inspect-delay 10s',
    '    # Wait for the ClientHello; anything else is refused.',
    '    tcp-request content reject unless { req.ssl_hello_type 1 }',
    ...verdictLines('tcp-request content', 'req.ssl_sni', l.entries),
    '    # No rule allows it (or no SNI at all): refused.',
    '    tcp-request content reject unless { var(txn.egress_guard) -m str allow }',
    '    tcp-request content do-resolve(txn.egress_guard_ip,egress_guard_dns,ipv4) req.ssl_sni,lower',
    '    tcp-request content reject unless { var(txn.egress_guard_ip) -m found }',
    '    tcp-request content set-dst var(txn.egress_guard_ip)',
    `    tcp-request content set-dst-port int(${l.port})`,
    '    default_backend egress_guard_forward_tcp',
  ];
}

function httpFrontend(l: Listener, options: RenderOptions): string[] {
  return [
    `# Plain HTTP on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
    `frontend egress_guard_http_${l.port}`,
    '    mode http',
    `    bind ${bindOn(options, l.port)}`,
    '    # The Host header without its port (an absolute-form request line must agree with it).',
    '    http-request set-var(txn.egress_guard_host) req.hdr(host),field(1,:),lower',
    ...verdictLines('http-request', 'var(txn.egress_guard_host)', l.entries),
    '    # No rule allows it: refused.',
    '    http-request deny deny_status 403 unless { var(txn.egress_guard) -m str allow }',
    '    http-request do-resolve(txn.egress_guard_ip,egress_guard_dns,ipv4) var(txn.egress_guard_host)',
    '    http-request deny deny_status 502 unless { var(txn.egress_guard_ip) -m found }',
    '    http-request set-dst var(txn.egress_guard_ip)',
    `    http-request set-dst-port int(${l.port})`,
    '    default_backend egress_guard_forward_http',
  ];
}
