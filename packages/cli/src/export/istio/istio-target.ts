import { Document } from 'yaml';
import { type ExportPlan, type ExportTarget, headerComment, type RenderOptions } from '../core/index.js';
import { kubernetesNamePart } from '../kubernetes/object-name.js';
import { istioHost } from './host.js';

const NAMESPACE = 'istio-system';
const GATEWAY = 'egress-guard';
const EGRESS_GATEWAY_SERVICE = 'istio-egressgateway.istio-system.svc.cluster.local';
const SUBSET = 'egress-guard';

/**
 * Istio: the mesh registry made the allowlist. A Sidecar in the root namespace sets
 * `outboundTrafficPolicy: REGISTRY_ONLY` (what the registry does not list is refused: default deny), a
 * ServiceEntry per allow rule lists its hosts and ports (MESH_EXTERNAL), and exact names are routed through
 * the egress gateway (Gateway in TLS PASSTHROUGH / HTTP, a DestinationRule subset for the gateway, a
 * VirtualService per name: sidecar → gateway by SNI or Host, gateway → the name).
 *
 * Istio's wildcard `*.example.com` matches any number of labels (Envoy `server_names` on the sidecar), so it
 * is our `**.example.com`; our one-label and label-glob patterns have no Istio form and the core drops them
 * (narrower). The registry has no deny, so the core also drops allows a deny carves into.
 */
export const istioTarget: ExportTarget = {
  name: 'istio',
  summary:
    'Istio: Sidecar REGISTRY_ONLY, ServiceEntry per rule, egress gateway Gateway/VirtualService/DestinationRule',
  semantics: {
    hostMatching: 'patterns',
    constructs: { oneLabel: false, labelGlob: false, multiLabel: true },
    denyPrecedence: false,
    transports: ['tls', 'http'],
    enforces: [],
    // Exact names leave through the egress gateway, which resolves them; wildcard hosts (resolution NONE)
    // leave from the sidecar to the address the client resolved.
    destination: { exact: 'resolves-name', wildcard: 'client-address' },
    // A `*.` host is a suffix match on any labels: no check of label syntax or punycode.
    wildcardsRefuseInvalidNames: false,
    auditMode: false,
  },
  render: renderIstio,
};

type Json = Record<string, unknown>;

/** Where one host of a rule is allowed (the core may drop a pattern on some ports only). */
interface HostPorts {
  exact: boolean;
  tls: Set<number>;
  http: Set<number>;
}

/** Hosts of one rule that share the same ports: one ServiceEntry (its hosts × ports is a cross product). */
interface PortGroup {
  hosts: string[];
  tls: number[];
  http: number[];
}

function renderIstio(plan: ExportPlan, options: RenderOptions): string {
  const perRule = new Map<string, Map<string, HostPorts>>();
  for (const listener of plan.listeners) {
    for (const { rule, match } of listener.allowed) {
      const host = istioHost(match);
      const hosts = perRule.get(rule) ?? new Map<string, HostPorts>();
      const entry = hosts.get(host) ?? { exact: match.kind === 'exact', tls: new Set(), http: new Set() };
      entry[listener.transport].add(listener.port);
      hosts.set(host, entry);
      perRule.set(rule, hosts);
    }
  }
  const labels = { 'app.kubernetes.io/managed-by': 'egress-guard' };
  const annotations = { 'egress-guard.dev/policy-sha256': plan.policyHash };
  const meta = (name: string, rule?: string): Json => ({
    name,
    namespace: NAMESPACE,
    labels,
    annotations: rule === undefined ? annotations : { ...annotations, 'egress-guard.dev/rule': rule },
  });
  const docs: Json[] = [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: meta('default'),
      spec: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } },
    },
  ];
  const gatewayServers = new Map<string, { port: number; protocol: 'TLS' | 'HTTP'; hosts: Set<string> }>();
  const routed: Json[] = [];
  for (const rule of plan.rules) {
    const hosts = perRule.get(rule.name);
    if (!hosts) continue;
    const groups = portGroups(hosts);
    groups.forEach((group, i) => {
      const suffix = groups.length > 1 ? `-${i + 1}` : '';
      docs.push({
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: meta(`egress-guard-${kubernetesNamePart(rule.name, 'rule')}${suffix}`, rule.name),
        spec: {
          hosts: group.hosts,
          ports: [
            ...group.tls.map((p) => ({ number: p, name: `tls-${p}`, protocol: 'TLS' })),
            ...group.http.map((p) => ({ number: p, name: `http-${p}`, protocol: 'HTTP' })),
          ],
          location: 'MESH_EXTERNAL',
          // Wildcard hosts cannot be resolved ahead of time: NONE passes the connection to the address the
          // client resolved (the name is still checked against the SNI or Host).
          resolution: group.hosts.every((h) => !h.startsWith('*')) ? 'DNS' : 'NONE',
        },
      });
    });
    for (const host of sorted(hosts.keys())) {
      const entry = hosts.get(host)!;
      if (!entry.exact) continue;
      for (const port of entry.tls) addServer(gatewayServers, port, 'TLS', host);
      for (const port of entry.http) addServer(gatewayServers, port, 'HTTP', host);
      routed.push(virtualService(rule.name, host, entry, meta));
    }
  }
  if (routed.length > 0) {
    docs.push({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: meta(GATEWAY),
      spec: {
        selector: { istio: 'egressgateway' },
        servers: [...gatewayServers.values()]
          .sort((a, b) => (a.protocol === b.protocol ? a.port - b.port : a.protocol === 'TLS' ? -1 : 1))
          .map((s) => ({
            port: { number: s.port, name: `${s.protocol.toLowerCase()}-${s.port}`, protocol: s.protocol },
            hosts: sorted(s.hosts),
            ...(s.protocol === 'TLS' ? { tls: { mode: 'PASSTHROUGH' } } : {}),
          })),
      },
    });
    docs.push({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: meta('egress-guard-egressgateway'),
      spec: { host: EGRESS_GATEWAY_SERVICE, subsets: [{ name: SUBSET }] },
    });
    docs.push(...routed);
  }

  const header = [
    ...headerComment(plan, options, '#'),
    '#',
    `# Apply with kubectl apply -f (everything in ${NAMESPACE}, the root namespace: the Sidecar is the mesh default).`,
    '# REGISTRY_ONLY refuses what no ServiceEntry lists. Exact names go through the egress gateway',
    '# (istio: egressgateway); wildcard hosts leave from the sidecar, checked on the SNI or Host.',
  ];
  return `${header.join('\n')}\n${docs.map((d) => new Document(d, { aliasDuplicateObjects: false }).toString({ lineWidth: 0 })).join('---\n')}`;
}

function addServer(
  servers: Map<string, { port: number; protocol: 'TLS' | 'HTTP'; hosts: Set<string> }>,
  port: number,
  protocol: 'TLS' | 'HTTP',
  host: string,
): void {
  const key = `${protocol}:${port}`;
  const server = servers.get(key) ?? { port, protocol, hosts: new Set<string>() };
  server.hosts.add(host);
  servers.set(key, server);
}

/** The rule's hosts grouped by identical ports, in host order. */
function portGroups(hosts: Map<string, HostPorts>): PortGroup[] {
  const groups = new Map<string, PortGroup>();
  for (const host of sorted(hosts.keys())) {
    const entry = hosts.get(host)!;
    const tls = sortedNumbers(entry.tls);
    const http = sortedNumbers(entry.http);
    const key = `${tls.join(',')}|${http.join(',')}`;
    const group = groups.get(key) ?? { hosts: [], tls, http };
    group.hosts.push(host);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/** Sidecar → egress gateway (by SNI or port), gateway → the name itself, on each of the rule's ports. */
function virtualService(
  rule: string,
  host: string,
  entry: HostPorts,
  meta: (n: string, r?: string) => Json,
): Json {
  const mesh = 'mesh';
  const gateway = `${NAMESPACE}/${GATEWAY}`;
  const toGateway = (port: number) => [
    { destination: { host: EGRESS_GATEWAY_SERVICE, subset: SUBSET, port: { number: port } } },
  ];
  const toHost = (port: number) => [{ destination: { host, port: { number: port } } }];
  const tls = sortedNumbers(entry.tls).flatMap((port) => [
    { match: [{ gateways: [mesh], port, sniHosts: [host] }], route: toGateway(port) },
    { match: [{ gateways: [gateway], port, sniHosts: [host] }], route: toHost(port) },
  ]);
  const http = sortedNumbers(entry.http).flatMap((port) => [
    { match: [{ gateways: [mesh], port }], route: toGateway(port) },
    { match: [{ gateways: [gateway], port }], route: toHost(port) },
  ]);
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: meta(
      `egress-guard-${kubernetesNamePart(rule, 'rule')}-${kubernetesNamePart(host, 'rule')}`
        .slice(0, 253)
        .replace(/-+$/, ''),
      rule,
    ),
    spec: {
      hosts: [host],
      gateways: [mesh, gateway],
      ...(tls.length > 0 ? { tls } : {}),
      ...(http.length > 0 ? { http } : {}),
    },
  };
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

function sortedNumbers(values: Iterable<number>): number[] {
  return [...values].sort((a, b) => a - b);
}
