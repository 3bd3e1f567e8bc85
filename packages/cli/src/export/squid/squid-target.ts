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
 * Squid (`squid-openssl`) as an explicit forward proxy: HTTPS arrives as CONNECT, is peeked at step 1 to read
 * the ClientHello, then spliced (passed through untouched) when the SNI the client sent is allowed and
 * terminated otherwise. Never bumped: Squid never decrypts. Plain HTTP is decided by http_access on the
 * request's host.
 *
 * Names are matched with anchored case-insensitive regexes only (`dstdom_regex -n -i`,
 * `ssl::server_name_regex --client-requested -i`), never `dstdomain .x` (which includes the apex `x`, wider
 * than `*.x` and `**.x`). Squid applies the first matching http_access / ssl_bump line, which is the
 * policy's order. A CONNECT must pass twice: its authority (http_access) and then its SNI (ssl_bump).
 */
export const squidTarget: ExportTarget = {
  name: 'squid',
  summary: 'squid.conf: CONNECT peek/splice on ssl::server_name --client-requested (never bump), http_access',
  semantics: NAME_DIALLING_PROXY,
  render: renderSquid,
};

/** The proxy port clients are configured with, unless `--proxy-port` says otherwise. */
export const SQUID_PROXY_PORT = 3128;

function renderSquid(plan: ExportPlan, options: RenderOptions): string {
  const runtime = options.runtimeDir ?? RENDER_DEFAULTS.runtimeDir;
  const tls = plan.listeners.filter((l) => l.transport === 'tls');
  const http = plan.listeners.filter((l) => l.transport === 'http');
  const out = [
    ...headerComment(plan, options),
    '#',
    '# Use: squid -f <this file>. Clients use it as their HTTP proxy (HTTPS_PROXY / HTTP_PROXY).',
    `# ${runtime}/squid-never-bump.pem must hold a certificate and key: Squid requires one on an ssl-bump`,
    '# port even though this configuration never bumps (nothing is ever signed with it). Make one with',
    `#   openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=egress-guard-never-bump -keyout ${runtime}/squid-never-bump.pem -out ${runtime}/squid-never-bump.pem`,
    '',
    `http_port ${listenOn(options, options.proxyPort ?? SQUID_PROXY_PORT)} ssl-bump tls-cert=${runtime}/squid-never-bump.pem generate-host-certificates=off`,
    `pid_filename ${runtime}/squid.pid`,
    `cache_log ${runtime}/squid-cache.log`,
    `access_log stdio:${runtime}/squid-access.log`,
    `coredump_dir ${runtime}`,
    'cache deny all',
    'shutdown_lifetime 1 seconds',
    '# The proxy passes bytes through: no caching, no forwarded header that reveals clients.',
    'forwarded_for delete',
    '',
    'acl egress_guard_step1 at_step SslBump1',
  ];
  const acls: string[] = [];
  const access: string[] = [];
  const bump: string[] = [];
  for (const l of tls) {
    const port = `egress_guard_tls_port_${l.port}`;
    acls.push(
      '',
      `# TLS on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
      `acl ${port} port ${l.port}`,
    );
    l.entries.forEach((e, i) => {
      const connect = aclName('tls', l, i, e, 'connect');
      const sni = aclName('tls', l, i, e, 'sni');
      acls.push(
        `# ${describeEntry(e)}`,
        `acl ${connect} dstdom_regex -n -i ${e.regex}`,
        `acl ${sni} ssl::server_name_regex --client-requested -i ${e.regex}`,
      );
      access.push(`http_access ${e.action} CONNECT ${port} ${connect}`);
      bump.push(`ssl_bump ${e.action === 'allow' ? 'splice' : 'terminate'} ${port} ${sni}`);
    });
  }
  for (const l of http) {
    const port = `egress_guard_http_port_${l.port}`;
    acls.push(
      '',
      `# Plain HTTP on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
      `acl ${port} port ${l.port}`,
      `acl egress_guard_http_proto_${l.port} proto HTTP`,
    );
    l.entries.forEach((e, i) => {
      const host = aclName('http', l, i, e, 'host');
      acls.push(`# ${describeEntry(e)}`, `acl ${host} dstdom_regex -n -i ${e.regex}`);
      access.push(`http_access ${e.action} !CONNECT egress_guard_http_proto_${l.port} ${port} ${host}`);
    });
  }
  out.push(
    ...acls,
    '',
    '# First match wins, in the policy order: deny rules, exact allows, wildcard guards, wildcard allows.',
    ...access,
    '# No rule allows it: refused.',
    'http_access deny all',
    '',
    '# Read the ClientHello, then pass the connection through untouched (splice) or close it (terminate).',
    '# Never bump: this proxy does not decrypt.',
    'ssl_bump peek egress_guard_step1',
    ...bump,
    'ssl_bump terminate all',
  );
  return `${out.join('\n')}\n`;
}

/** ACL names carry the rule (or guard) name, so every http_access / ssl_bump line traces back to the policy. */
function aclName(transport: string, l: Listener, i: number, e: MatchEntry, what: string): string {
  return `eg_${transport}${l.port}_${i + 1}_${e.rule ?? `guard-${e.pattern}`}_${what}`;
}
