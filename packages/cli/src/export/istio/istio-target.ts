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
    auditMode: false,
  },
  render: renderIstio,
};

type Json = Record<string, unknown>;

interface RulePorts {
  hosts: Set<string>;
  exact: Set<string>;
  tls: Set<number>;
  http: Set<number>;
}

function renderIstio(plan: ExportPlan, options: RenderOptions): string {
  const perRule = new Map<string, RulePorts>();
  for (const listener of plan.listeners) {
    for (const { rule, match } of listener.allowed) {
      const host = istioHost(match);
      const entry = perRule.get(rule) ?? {
        hosts: new Set(),
        exact: new Set(),
        tls: new Set(),
        http: new Set(),
      };
      entry.hosts.add(host);
      if (match.kind === 'exact') entry.exact.add(host);
      entry[listener.transport].add(listener.port);
      perRule.set(rule, entry);
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
    const entry = perRule.get(rule.name);
    if (!entry) continue;
    const hosts = sorted(entry.hosts);
    const ports = [
      ...sortedNumbers(entry.tls).map((p) => ({ number: p, name: `tls-${p}`, protocol: 'TLS' })),
      ...sortedNumbers(entry.http).map((p) => ({ number: p, name: `http-${p}`, protocol: 'HTTP' })),
    ];
    docs.push({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: meta(`egress-guard-${kubernetesNamePart(rule.name, 'rule')}`, rule.name),
      spec: {
        hosts,
        ports,
        location: 'MESH_EXTERNAL',
        // Wildcard hosts cannot be resolved ahead of time: NONE passes the connection to the address the
        // client resolved (the name is still checked against the SNI or Host).
        resolution: hosts.every((h) => !h.startsWith('*')) ? 'DNS' : 'NONE',
      },
    });
    for (const port of sortedNumbers(entry.tls)) addServer(gatewayServers, port, 'TLS', entry.exact);
    for (const port of sortedNumbers(entry.http)) addServer(gatewayServers, port, 'HTTP', entry.exact);
    for (const host of sorted(entry.exact)) routed.push(virtualService(rule.name, host, entry, meta));
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
  hosts: Set<string>,
): void {
  if (hosts.size === 0) return;
  const key = `${protocol}:${port}`;
  const server = servers.get(key) ?? { port, protocol, hosts: new Set<string>() };
  for (const h of hosts) server.hosts.add(h);
  servers.set(key, server);
}

/** Sidecar → egress gateway (by SNI or port), gateway → the name itself, on each of the rule's ports. */
function virtualService(
  rule: string,
  host: string,
  entry: RulePorts,
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
