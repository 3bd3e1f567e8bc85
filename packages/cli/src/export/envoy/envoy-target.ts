import { Document } from 'yaml';
import {
  ANY_PORT_REGEX,
  type ExportPlan,
  type ExportTarget,
  headerComment,
  type Listener,
  type MatchEntry,
  NAME_DIALLING_PROXY,
  type RenderOptions,
  withHostPortRegex,
} from '../core/index.js';

/** The cluster every allowed connection goes to: Envoy resolves the SNI or Host itself and dials the name. */
const CLUSTER = 'egress_guard_dynamic_forward_proxy';
const TYPE = 'type.googleapis.com/envoy.extensions';

/**
 * Envoy: a static bootstrap. Per TLS port, a listener with `tls_inspector` whose filter chain holds two
 * network RBAC filters on `requested_server_name` (the SNI) — DENY for deny rules, then ALLOW for allow
 * rules — then `sni_dynamic_forward_proxy` + `tcp_proxy`, so the connection goes to the name the client
 * asked for, resolved by Envoy (a client cannot send an allowed SNI to another address). Per plain-HTTP
 * port, an `http_connection_manager` with the same two RBAC filters on `:authority`, then
 * `dynamic_forward_proxy` and the router.
 *
 * Names are matched with RE2 `safe_regex`, case-insensitively, from the core's exact regexes: not with
 * `server_names` (whose `*.example.com` matches any depth) nor virtual-host `domains` (suffix wildcards).
 * The core's order (deny rules, exact allows, wildcard guards, wildcard allows) becomes: the DENY filter,
 * then in the ALLOW filter every wildcard permission is `and` (pattern, not any guard). RBAC policies are
 * named after the rules, so Envoy's logs and `rbac` stats name the rule. Report mode: both filters carry
 * `shadow_rules` only (evaluated, logged and counted, not enforced).
 */
export const envoyTarget: ExportTarget = {
  name: 'envoy',
  summary: 'Envoy bootstrap: tls_inspector + RBAC on the SNI, RBAC on :authority, dynamic forward proxy',
  // RBAC shadow rules: Envoy's audit mode.
  semantics: { ...NAME_DIALLING_PROXY, enforces: ['report-mode'], auditMode: true },
  render: renderEnvoy,
};

type Json = Record<string, unknown>;

function renderEnvoy(plan: ExportPlan, options: RenderOptions): string {
  const report = plan.mode === 'report';
  const dnsCache = dnsCacheConfig(options);
  const listeners = plan.listeners.map((l) =>
    l.transport === 'tls'
      ? tlsListener(l, report, dnsCache, options)
      : httpListener(l, report, dnsCache, options),
  );
  const bootstrap = {
    static_resources: {
      listeners,
      clusters: [
        {
          name: CLUSTER,
          connect_timeout: '5s',
          lb_policy: 'CLUSTER_PROVIDED',
          cluster_type: {
            name: 'envoy.clusters.dynamic_forward_proxy',
            typed_config: {
              '@type': `${TYPE}.clusters.dynamic_forward_proxy.v3.ClusterConfig`,
              dns_cache_config: dnsCache,
            },
          },
        },
      ],
    },
  };
  const header = [
    ...headerComment(plan, options, '#'),
    '#',
    '# Use: envoy -c <this file>. Clients reach Envoy as their egress point on the listed ports (a transparent',
    '# redirect keeping the port, or DNS pointing the allowed names here). Envoy dials the name from the SNI',
    '# or Host header itself; anything no rule allows is refused (RBAC: "no policy matched").',
    report
      ? '# Report mode: RBAC shadow_rules only. Nothing is refused; see the rbac.shadow_allowed/shadow_denied stats.'
      : '# Each RBAC policy is named after the rule it comes from ("allow:<rule>", "deny:<rule>").',
  ];
  const doc = new Document(bootstrap, { aliasDuplicateObjects: false });
  return `${header.join('\n')}\n${doc.toString({ lineWidth: 0 })}`;
}

function dnsCacheConfig(options: RenderOptions): Json {
  const config: Json = { name: 'egress_guard_dns', dns_lookup_family: 'V4_PREFERRED' };
  if (options.resolver !== undefined) {
    const [address, port] = splitResolver(options.resolver);
    config.typed_dns_resolver_config = {
      name: 'envoy.network.dns_resolver.cares',
      typed_config: {
        '@type': `${TYPE}.network.dns_resolver.cares.v3.CaresDnsResolverConfig`,
        resolvers: [{ socket_address: { address, port_value: port } }],
      },
    };
  }
  return config;
}

function splitResolver(resolver: string): [string, number] {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(resolver);
  if (bracketed) return [bracketed[1]!, Number(bracketed[2] ?? 53)];
  const parts = resolver.split(':');
  if (parts.length === 2) return [parts[0]!, Number(parts[1])];
  return [resolver, 53];
}

function address(options: RenderOptions, port: number): Json {
  return { socket_address: { address: options.listenAddress ?? '0.0.0.0', port_value: port } };
}

function tlsListener(listener: Listener, report: boolean, dnsCache: Json, options: RenderOptions): Json {
  const name = `egress_guard_tls_${listener.port}`;
  const sni = (regex: string): Json => ({ requested_server_name: { safe_regex: { regex: re2(regex) } } });
  return {
    name,
    address: address(options, listener.port),
    listener_filters: [
      {
        name: 'envoy.filters.listener.tls_inspector',
        typed_config: { '@type': `${TYPE}.filters.listener.tls_inspector.v3.TlsInspector` },
      },
    ],
    filter_chains: [
      {
        name: `${name}_sni`,
        // Only TLS: a connection without a ClientHello matches no chain and is closed.
        filter_chain_match: { transport_protocol: 'tls' },
        filters: [
          ...rbacFilters(listener, report, sni).map((rbac) => ({
            name: 'envoy.filters.network.rbac',
            typed_config: {
              '@type': `${TYPE}.filters.network.rbac.v3.RBAC`,
              stat_prefix: `${name}_${rbac.action.toLowerCase()}`,
              ...rbac.config,
            },
          })),
          {
            name: 'envoy.filters.network.sni_dynamic_forward_proxy',
            typed_config: {
              '@type': `${TYPE}.filters.network.sni_dynamic_forward_proxy.v3.FilterConfig`,
              dns_cache_config: dnsCache,
              port_value: listener.port,
            },
          },
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: {
              '@type': `${TYPE}.filters.network.tcp_proxy.v3.TcpProxy`,
              stat_prefix: name,
              cluster: CLUSTER,
            },
          },
        ],
      },
    ],
  };
}

function httpListener(listener: Listener, report: boolean, dnsCache: Json, options: RenderOptions): Json {
  const name = `egress_guard_http_${listener.port}`;
  const port = listener.port;
  const authority = (regex: string, action: 'allow' | 'deny'): Json => ({
    header: {
      name: ':authority',
      string_match: { safe_regex: { regex: re2(withPort(regex, port, action)) } },
    },
  });
  return {
    name,
    address: address(options, port),
    filter_chains: [
      {
        name: `${name}_host`,
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': `${TYPE}.filters.network.http_connection_manager.v3.HttpConnectionManager`,
              stat_prefix: name,
              route_config: {
                name,
                virtual_hosts: [
                  { name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: CLUSTER } }] },
                ],
              },
              http_filters: [
                ...rbacFilters(listener, report, authority).map((rbac) => ({
                  name: 'envoy.filters.http.rbac',
                  typed_config: { '@type': `${TYPE}.filters.http.rbac.v3.RBAC`, ...rbac.config },
                })),
                {
                  name: 'envoy.filters.http.dynamic_forward_proxy',
                  typed_config: {
                    '@type': `${TYPE}.filters.http.dynamic_forward_proxy.v3.FilterConfig`,
                    dns_cache_config: dnsCache,
                  },
                },
                {
                  name: 'envoy.filters.http.router',
                  typed_config: { '@type': `${TYPE}.filters.http.router.v3.Router` },
                },
              ],
            },
          },
        ],
      },
    ],
  };
}

/**
 * Envoy's `safe_regex` must match the whole string (RE2 FullMatch), while the core's guards are searches
 * (`[^.]{64}` anywhere): those are wrapped in `.*( ).*`. Case-insensitive with RE2's `(?i)`.
 */
function re2(regex: string): string {
  const anchored = regex.startsWith('^') && regex.endsWith('$');
  return anchored ? `(?i)${regex}` : `(?i).*(${regex}).*`;
}

/**
 * The `:authority` of a plain request may carry a port, and the dynamic forward proxy dials that port (80
 * when absent). An allow matches only this listener's port (written, or absent on port 80); a deny matches
 * whatever port is written (denying more is the safe side). Guards (unanchored) see the port too, which
 * can only make them refuse more.
 */
function withPort(regex: string, port: number, action: 'allow' | 'deny'): string {
  if (action === 'deny') return withHostPortRegex(regex, ANY_PORT_REGEX);
  return withHostPortRegex(regex, port === 80 ? '(:80)?' : `:${port}`);
}

interface RbacFilter {
  action: 'DENY' | 'ALLOW';
  config: Json;
}

/**
 * The listener's ordered entries as two RBAC filters. Deny entries (deny rules) go to a DENY filter that
 * runs first; allow entries to an ALLOW filter, one policy per rule; an allow entry that comes after the
 * wildcard guards in the core's order is `and` (entry, not any guard). No allow policy: everything is
 * refused (an ALLOW filter with no policies denies all).
 */
function rbacFilters(
  listener: Listener,
  report: boolean,
  permission: (regex: string, action: 'allow' | 'deny') => Json,
): RbacFilter[] {
  const guards: MatchEntry[] = [];
  const deny = new Map<string, Json[]>();
  const allow = new Map<string, Json[]>();
  for (const entry of listener.entries) {
    if (entry.rule === undefined) {
      guards.push(entry);
      continue;
    }
    const bucket = entry.action === 'deny' ? deny : allow;
    const list = bucket.get(entry.rule) ?? [];
    let p = permission(entry.regex, entry.action);
    if (entry.action === 'allow' && guards.length > 0) {
      p = {
        and_rules: {
          rules: [p, { not_rule: { or_rules: { rules: guards.map((g) => permission(g.regex, 'deny')) } } }],
        },
      };
    }
    list.push(p);
    bucket.set(entry.rule, list);
  }
  const policies = (kind: 'allow' | 'deny', bucket: Map<string, Json[]>): Json => {
    const out: Json = {};
    for (const [rule, permissions] of bucket) {
      // A policy's permissions are OR'ed: any of the rule's patterns.
      out[`${kind}:${rule}`] = { permissions, principals: [{ any: true }] };
    }
    return out;
  };
  const config = (action: 'DENY' | 'ALLOW', bucket: Map<string, Json[]>, kind: 'allow' | 'deny'): Json => {
    const rules = { action, policies: policies(kind, bucket) };
    return report ? { shadow_rules: rules, shadow_rules_stat_prefix: `egress_guard_${kind}_` } : { rules };
  };
  const filters: RbacFilter[] = [];
  if (deny.size > 0) filters.push({ action: 'DENY', config: config('DENY', deny, 'deny') });
  filters.push({ action: 'ALLOW', config: config('ALLOW', allow, 'allow') });
  return filters;
}
