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
 * nginx: a stream server per TLS port reads the SNI with `ssl_preread` and picks the upstream from a
 * `map $ssl_preread_server_name`; an http server per plain-HTTP port does the same on `$host`.
 *
 * Every map key is a case-insensitive regex (`~*`), in the core's order: nginx tries string keys before
 * regexes whatever their position, so plain string keys would let an exact allow beat a deny pattern. With
 * regexes only, the first match in file order wins, which is the policy's precedence (deny, exact allows,
 * wildcard guards, wildcard allows). Allowed names go to `name:port` through `resolver`; refused TLS
 * connections go to a local socket that closes them, refused HTTP requests get 403.
 */
export const nginxTarget: ExportTarget = {
  name: 'nginx',
  summary: 'nginx.conf: stream ssl_preread + map on the SNI; http map on Host for plain HTTP',
  // The one proxy here that reads the versions a ClientHello offers ($ssl_preread_protocol).
  semantics: { ...NAME_DIALLING_PROXY, enforces: ['tls-floor'] },
  render: renderNginx,
};

function renderNginx(plan: ExportPlan, options: RenderOptions): string {
  const resolver = options.resolver ?? RENDER_DEFAULTS.resolver;
  const runtime = options.runtimeDir ?? RENDER_DEFAULTS.runtimeDir;
  const refused = `unix:${runtime}/nginx-refused.sock`;
  const tls = plan.listeners.filter((l) => l.transport === 'tls');
  const http = plan.listeners.filter((l) => l.transport === 'http');
  const out: string[] = [
    ...headerComment(plan, options),
    '#',
    '# Use: nginx -c <this file>. Clients reach nginx as their egress point (a transparent redirect, or DNS',
    '# pointing the allowed names here); nginx forwards allowed names to the name itself, resolved by',
    `# "resolver" (${resolver}). Anything no rule allows is refused: the default of every map.`,
    '',
    '# Debian: libnginx-mod-stream. Remove this line where the stream module is built in.',
    'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
    '',
    'events {',
    '    worker_connections 1024;',
    '}',
  ];
  if (tls.length > 0) {
    out.push(
      '',
      'stream {',
      `    resolver ${resolver} valid=30s ipv6=off;`,
      '    resolver_timeout 5s;',
      '',
      '    # Refused connections end here: closed before a byte reaches any upstream.',
      '    server {',
      `        listen ${refused};`,
      '        return "";',
      '    }',
    );
    for (const l of tls) out.push('', ...streamListener(l, refused, options).map(indent));
    out.push('}');
  }
  if (http.length > 0) {
    out.push(
      '',
      'http {',
      `    resolver ${resolver} valid=30s ipv6=off;`,
      '    resolver_timeout 5s;',
      '    access_log off;',
    );
    for (const l of http) out.push('', ...httpListener(l, options).map(indent));
    out.push('}');
  }
  return `${out.join('\n')}\n`;
}

function indent(line: string): string {
  return line === '' ? '' : `    ${line}`;
}

/** A map key: the core's regex, matched case-insensitively. */
function key(e: MatchEntry): string {
  return `"~*${e.regex}"`;
}

function streamListener(l: Listener, refused: string, options: RenderOptions): string[] {
  const verdict = `$egress_guard_tls_${l.port}_verdict`;
  const v = `$egress_guard_tls_${l.port}`;
  const lines = [
    `# TLS on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
    '# The name decides: refused, or allowed with the TLS floor the client must offer.',
    `map $ssl_preread_server_name ${verdict} {`,
  ];
  for (const e of l.entries) {
    lines.push(`    # ${describeEntry(e)}`);
    lines.push(`    ${key(e)} ${e.action === 'allow' ? (e.tlsMinVersion ?? 'TLSv1.2') : 'refused'};`);
  }
  lines.push('    # No rule allows it (or no SNI at all): refused.', '    default refused;', '}');
  lines.push(
    '# Then the floor: $ssl_preread_protocol is the highest version the ClientHello offers.',
    `map "${verdict} $ssl_preread_protocol" ${v} {`,
    `    "~^TLSv1\\.2 TLSv1\\.[23]$" $ssl_preread_server_name:${l.port};`,
    `    "~^TLSv1\\.3 TLSv1\\.3$" $ssl_preread_server_name:${l.port};`,
    '    # Refused by name, or the client offers less than the floor.',
    `    default "${refused}";`,
    '}',
    'server {',
    `    listen ${listenOn(options, l.port)};`,
    '    ssl_preread on;',
    '    preread_timeout 10s;',
    `    proxy_pass ${v};`,
    '}',
  );
  return lines;
}

function httpListener(l: Listener, options: RenderOptions): string[] {
  const v = `$egress_guard_http_${l.port}`;
  const lines = [
    `# Plain HTTP on port ${l.port}: rules ${l.rules.map((r) => `"${r}"`).join(', ')}`,
    '# $host: the request line host or the Host header, lower-cased, without port.',
    `map $host ${v} {`,
  ];
  for (const e of l.entries) {
    lines.push(`    # ${describeEntry(e)}`);
    lines.push(`    ${key(e)} ${e.action === 'allow' ? `"$host:${l.port}"` : '""'};`);
  }
  lines.push('    # No rule allows it: refused.', '    default "";', '}');
  lines.push(
    'server {',
    `    listen ${listenOn(options, l.port)};`,
    '    location / {',
    `        if (${v} = "") {`,
    '            return 403 "egress denied by policy: no rule allows this host\\n";',
    '        }',
    `        proxy_pass http://${v};`,
    // The Host sent on is the name decided: an absolute-form request line cannot carry another Host past it.
    `        proxy_set_header Host ${l.port === 80 ? '$host' : `"$host:${l.port}"`};`,
    '    }',
    '}',
  );
  return lines;
}
