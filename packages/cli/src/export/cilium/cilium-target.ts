import { Document } from 'yaml';
import {
  ExportError,
  type ExportPlan,
  type ExportProblem,
  type ExportTarget,
  headerComment,
  hostMatchKey,
  type RenderOptions,
} from '../core/index.js';
import { kubernetesNamePart } from '../kubernetes/object-name.js';
import { type FqdnSelector, fqdnSelector } from './fqdn-selector.js';

/** The pod label `--service NAME` selects: operators put it on the service's pods (docs/export.md). */
export const CILIUM_SERVICE_LABEL = 'egress-guard.dev/service';

/** Where Cilium's DNS proxy sees the lookups that `toFQDNs` learns addresses from: kube-dns. */
const KUBE_DNS = { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' };

/**
 * Cilium: one CiliumClusterwideNetworkPolicy whose `specs` hold, per allow rule, an egress rule with
 * `toFQDNs` and its ports, plus the DNS rule that makes `toFQDNs` work (lookups through Cilium's DNS proxy,
 * and only for the allowed names: DNS is an exfiltration path too) and `egressDeny` for deny rules' addresses.
 *
 * Semantics (docs/export.md has the table): `matchPattern` `*` is a run of DNS characters inside one label,
 * so one-label patterns and globs with `*` are exact; `**.` is one-or-more labels from Cilium 1.19 (earlier:
 * one label, narrower). Cilium has no FQDN deny, so the core drops allows a deny carves into. Cilium enforces
 * names at the address level: it allows the addresses the allowed names resolved to, on the listed ports,
 * for any protocol and any name sharing them (destination `resolved-addresses`: weaker `server-name`).
 */
export const ciliumTarget: ExportTarget = {
  name: 'cilium',
  summary: 'CiliumClusterwideNetworkPolicy: toFQDNs per rule, the DNS-proxy rule, egressDeny for addresses',
  semantics: {
    hostMatching: 'patterns',
    constructs: { oneLabel: true, labelGlob: true, multiLabel: true },
    denyPrecedence: false,
    transports: ['tls', 'http'],
    // egressDeny with toCIDRSet wins over every allow, including toFQDNs.
    enforces: ['addresses'],
    // toFQDNs allows the addresses the names resolved to, for any protocol and any name sharing them.
    destination: { exact: 'resolved-addresses', wildcard: 'resolved-addresses' },
    // matchPattern's `*` is any run of DNS characters: `-a.x.com` and broken `xn--` labels match `*.x.com`.
    wildcardsRefuseInvalidNames: false,
    // Policy Audit Mode is an agent or endpoint setting, not part of a policy resource.
    auditMode: false,
  },
  render: renderCilium,
};

/** Per rule: each selector with the ports it is allowed on (the core may drop a pattern on one port only). */
type RuleEgress = Map<string, { selector: FqdnSelector; ports: Set<number> }>;

function renderCilium(plan: ExportPlan, options: RenderOptions): string {
  const problems = new Map<string, ExportProblem>();
  const notes = new Set<string>();
  const perRule = new Map<string, RuleEgress>();
  const dns = new Map<string, FqdnSelector>();
  for (const listener of plan.listeners) {
    for (const { rule, match } of listener.allowed) {
      const result = fqdnSelector(match);
      if (!result.ok) {
        problems.set(`${rule}\u0000${result.reason}`, {
          rule,
          reason: result.reason,
          choices: result.choices,
        });
        continue;
      }
      if (result.note) notes.add(result.note);
      const key = hostMatchKey(match);
      const egress: RuleEgress = perRule.get(rule) ?? new Map();
      const entry = egress.get(key) ?? { selector: result.selector, ports: new Set<number>() };
      entry.ports.add(listener.port);
      egress.set(key, entry);
      perRule.set(rule, egress);
      dns.set(key, result.selector);
    }
  }
  if (problems.size > 0) throw new ExportError([...problems.values()]);

  const endpointSelector =
    plan.service === undefined
      ? {}
      : { matchLabels: { [CILIUM_SERVICE_LABEL]: kubernetesNamePart(plan.service, 'service') } };
  const specs: Record<string, unknown>[] = [];
  if (dns.size > 0) {
    specs.push({
      description: 'egress-guard: DNS to kube-dns through the Cilium DNS proxy, for the allowed names only',
      endpointSelector,
      egress: [
        {
          toEndpoints: [{ matchLabels: KUBE_DNS }],
          toPorts: [
            {
              ports: [
                { port: '53', protocol: 'UDP' },
                { port: '53', protocol: 'TCP' },
              ],
              rules: { dns: sortedSelectors(dns) },
            },
          ],
        },
      ],
    });
  }
  for (const rule of plan.rules) {
    if (rule.kind === 'allow') {
      const egress = perRule.get(rule.name);
      if (!egress) continue;
      specs.push({
        description: `egress-guard allow rule "${rule.name}"`,
        endpointSelector,
        egress: egressByPorts(egress),
      });
    } else if (rule.addresses.length > 0) {
      const ports = rule.ports;
      specs.push({
        description: `egress-guard deny rule "${rule.name}" (addresses)`,
        endpointSelector,
        egressDeny: [
          {
            toCIDRSet: rule.addresses.map((cidr) => ({ cidr: withPrefix(cidr) })),
            ...(ports
              ? {
                  toPorts: [
                    {
                      ports: ports.map(([lo, hi]) => ({
                        port: String(lo),
                        ...(hi !== lo ? { endPort: hi } : {}),
                        protocol: 'ANY',
                      })),
                    },
                  ],
                }
              : {}),
          },
        ],
      });
    }
  }
  if (specs.length === 0) {
    // Nothing allowed: a policy that selects the pods and allows no egress denies all of it.
    specs.push({ description: 'egress-guard: the policy allows nothing', endpointSelector, egress: [{}] });
  }

  const manifest = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: {
      name:
        plan.service === undefined
          ? 'egress-guard'
          : `egress-guard-${kubernetesNamePart(plan.service, 'service')}`,
      labels: { 'app.kubernetes.io/managed-by': 'egress-guard' },
      annotations: { 'egress-guard.dev/policy-sha256': plan.policyHash },
    },
    specs,
  };
  const doc = new Document(manifest, { aliasDuplicateObjects: false });
  const header = [
    ...headerComment(plan, options, '#'),
    '#',
    plan.service === undefined
      ? '# Selects every pod (endpointSelector {}): the top-level rules apply to every caller.'
      : `# Selects the pods labelled ${CILIUM_SERVICE_LABEL}=${kubernetesNamePart(plan.service, 'service')}: label the service's pods so.`,
    '# Apply with kubectl apply -f. Pods this policy selects may reach only what it allows (default deny).',
    ...[...notes].sort().map((n) => `# Note: ${n}`),
  ];
  return `${header.join('\n')}\n${doc.toString({ lineWidth: 0 })}`;
}

/**
 * One egress rule per set of ports: `toFQDNs` × `toPorts` is a cross product in Cilium, so selectors allowed
 * on different ports must not share an entry (that would open each on the other's ports).
 */
function egressByPorts(egress: RuleEgress): Record<string, unknown>[] {
  const groups = new Map<string, { ports: number[]; selectors: FqdnSelector[] }>();
  for (const { selector, ports } of egress.values()) {
    const sortedPorts = [...ports].sort((a, b) => a - b);
    const key = sortedPorts.join(',');
    const group = groups.get(key) ?? { ports: sortedPorts, selectors: [] };
    group.selectors.push(selector);
    groups.set(key, group);
  }
  return [...groups.values()].map((g) => ({
    toFQDNs: g.selectors,
    toPorts: [{ ports: g.ports.map(tcpPort) }],
  }));
}

function tcpPort(port: number): { port: string; protocol: 'TCP' } {
  return { port: String(port), protocol: 'TCP' };
}

function sortedSelectors(map: Map<string, FqdnSelector>): FqdnSelector[] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
}

/** Cilium's toCIDRSet wants a prefix; a bare address in the policy means /32 or /128. */
function withPrefix(cidr: string): string {
  if (cidr.includes('/')) return cidr;
  return cidr.includes(':') ? `${cidr}/128` : `${cidr}/32`;
}
