import { decideConnection, loadPolicyFile, parseHost } from '@egress-guard/policy';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { exportCommand } from '../../src/commands/export.js';
import { ciliumTarget } from '../../src/export/cilium/cilium-target.js';
import { ExportError } from '../../src/export/core/index.js';
import { ciliumPolicySchema } from './cilium-crd-schema.js';
import {
  expectGolden,
  exportFile,
  exportText,
  goldenPolicy,
  PATTERN_DROPPED_ON_ONE_PORT,
} from './golden-file.js';
import { serverNamesNear } from './server-name-property.js';

const POLICY = goldenPolicy('cilium', 'kubernetes-services.policy.yaml');
const WEAKER = ['tls-floor', 'private-addresses', 'services', 'server-name', 'name-validity'];

function manifests(text: string) {
  return parseAllDocuments(text).map((d) => d.toJS());
}

function refusal(run: () => unknown): ExportError {
  try {
    run();
  } catch (error) {
    if (error instanceof ExportError) return error;
    throw error;
  }
  throw new Error('export was not refused');
}

/**
 * Cilium's FQDN matching (pkg/fqdn/matchpattern, 1.19): names compared lower case as FQDNs; in a pattern
 * `**.` is one or more labels, `*` a run of DNS characters inside a label, `.` a literal dot.
 */
function ciliumSelects(selector: { matchName?: string; matchPattern?: string }, name: string): boolean {
  const fqdn = name.toLowerCase().endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.`;
  if (selector.matchName !== undefined) return fqdn === `${selector.matchName.toLowerCase()}.`;
  const pattern = `${selector.matchPattern!.toLowerCase()}.`;
  const chars = '[-a-zA-Z0-9_]';
  const body = pattern.startsWith('**.')
    ? `(${chars}+[.])+${pattern.slice(3).replace(/\./g, '[.]').replace(/\*/g, `${chars}*`)}`
    : pattern.replace(/\./g, '[.]').replace(/\*/g, `${chars}*`);
  return new RegExp(`^${body}$`).test(fqdn);
}

describe('export --to cilium', () => {
  it('top-level rules: one clusterwide policy, toFQDNs per rule, the DNS-proxy rule, egressDeny for addresses', async () => {
    const text = await exportFile(ciliumTarget, POLICY, { allowWeaker: WEAKER });
    expectGolden('cilium', 'top-level-all-pods.yaml', text);
    const [doc] = manifests(text);
    const parsed = ciliumPolicySchema.parse(doc);
    expect(parsed.kind).toBe('CiliumClusterwideNetworkPolicy');
    const descriptions = parsed.specs.map((s) => s.description);
    expect(descriptions).toContain('egress-guard allow rule "stripe"');
    // The DNS rule lists only the allowed names: no lookups of anything else leave through kube-dns.
    const dns = parsed.specs[0]?.egress?.[0]?.toPorts?.[0]?.rules?.dns ?? [];
    expect(dns).toContainEqual({ matchName: 'api.stripe.com' });
    expect(JSON.stringify(dns)).not.toContain('pastebin');
    // Every pod: endpointSelector {}.
    expect(parsed.specs.every((s) => Object.keys(s.endpointSelector).length === 0)).toBe(true);
  });

  it('--service payments: selects the pods labelled with the service, adds its rules', async () => {
    const text = await exportFile(ciliumTarget, POLICY, { service: 'payments', allowWeaker: WEAKER });
    expectGolden('cilium', 'service-payments-label-selector.yaml', text);
    const parsed = ciliumPolicySchema.parse(manifests(text)[0]);
    expect(parsed.metadata.name).toBe('egress-guard-payments');
    expect(parsed.specs[0]?.endpointSelector).toEqual({
      matchLabels: { 'egress-guard.dev/service': 'payments' },
    });
    const bank = parsed.specs.find((s) => s.description === 'egress-guard allow rule "payments-bank"');
    // https and http: both ports, over TCP.
    expect(bank?.egress?.[0]?.toPorts?.[0]?.ports).toEqual([
      { port: '80', protocol: 'TCP' },
      { port: '443', protocol: 'TCP' },
    ]);
  });

  it('egress-guard export --to cilium writes the same bytes, and exits 1 with the rules when refused', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    expect(await exportCommand([POLICY, '--to', 'cilium', '--allow-weaker', WEAKER.join(',')], io)).toBe(0);
    expect(`${out.join('\n')}\n`).toBe(await exportFile(ciliumTarget, POLICY, { allowWeaker: WEAKER }));
    expect(err.join('\n')).toContain('rule "internal-api": addresses 203.0.113.0/24 not exported');
    err.length = 0;
    expect(await exportCommand([POLICY, '--to', 'cilium'], io)).toBe(1);
    expect(err.join('\n')).toMatch(/rule "stripe": the TLS floor/);
  });

  it('allows, on port 443, only names egress-guard check allows (or names it refuses as invalid: name-validity)', async () => {
    const parsed = ciliumPolicySchema.parse(
      manifests(await exportFile(ciliumTarget, POLICY, { allowWeaker: WEAKER }))[0],
    );
    const policy = await loadPolicyFile(POLICY);
    const on443 = parsed.specs.flatMap((s) =>
      (s.egress ?? []).filter(
        (e) => e.toFQDNs && e.toPorts?.some((p) => p.ports.some((x) => x.port === '443')),
      ),
    );
    const suffixes = [
      'stripe.com',
      's3.eu-west-1.amazonaws.com',
      'githubusercontent.com',
      'pastebin.com',
      'example.com',
    ];
    fc.assert(
      fc.property(serverNamesNear(suffixes), (name) => {
        const cilium = on443.some((e) => e.toFQDNs!.some((sel) => ciliumSelects(sel, name)));
        if (!cilium) return;
        const decision = decideConnection(policy, { transport: 'tls', host: name, port: 443 });
        if (!decision.allowed) expect(parseHost(name).kind, name).toBe('invalid');
      }),
      { numRuns: 4000 },
    );
  });

  it('is deterministic: the same policy gives the same bytes', async () => {
    const a = await exportFile(ciliumTarget, POLICY, { allowWeaker: WEAKER });
    const b = await exportFile(ciliumTarget, POLICY, { allowWeaker: WEAKER });
    expect(a).toBe(b);
  });

  it('keeps one-label and label-glob wildcards as Cilium reads them (one label)', () => {
    const text = exportText(
      ciliumTarget,
      `version: 1
allow:
  - name: buckets
    hosts: ["*.s3.eu-west-1.amazonaws.com", "api-*.example.com", "**.example.org"]
`,
      { allowWeaker: WEAKER },
    );
    const parsed = ciliumPolicySchema.parse(manifests(text)[0]);
    const rule = parsed.specs.find((s) => s.description === 'egress-guard allow rule "buckets"');
    expect(rule?.egress?.[0]?.toFQDNs).toEqual([
      { matchPattern: '*.s3.eu-west-1.amazonaws.com' },
      { matchPattern: 'api-*.example.com' },
      { matchPattern: '**.example.org' },
    ]);
    // Before Cilium 1.19 "**." is read as "*.": the output says so (narrower, never wider).
    expect(text).toContain('# Note: "**.example.org" matches one or more labels from Cilium 1.19 on');
  });

  it('drops a wildcard allow a deny carves into (Cilium has no FQDN deny): narrower, with a warning', () => {
    const text = exportText(
      ciliumTarget,
      `version: 1
allow:
  - name: example-any
    hosts: ["**.example.com"]
  - name: example-api
    hosts: [api.example.com]
deny:
  - name: example-admin
    hosts: [admin.example.com]
`,
      { allowWeaker: WEAKER },
    );
    const parsed = ciliumPolicySchema.parse(manifests(text)[0]);
    expect(JSON.stringify(parsed.specs)).not.toContain('**.example.com');
    expect(JSON.stringify(parsed.specs)).not.toContain('admin.example.com');
    expect(parsed.specs.map((s) => s.description)).toContain('egress-guard allow rule "example-api"');
    expect(text).toMatch(/rule "example-any": .*"\*\*\.example\.com" dropped: deny rule "example-admin"/);
  });

  it('a pattern dropped on one port only stays off that port (toFQDNs × toPorts is a cross product)', () => {
    const text = exportText(ciliumTarget, PATTERN_DROPPED_ON_ONE_PORT, { allowWeaker: WEAKER });
    const parsed = ciliumPolicySchema.parse(manifests(text)[0]);
    const rule = parsed.specs.find((s) => s.description === 'egress-guard allow rule "example"');
    expect(rule?.egress).toHaveLength(2);
    expect(rule?.egress).toContainEqual({
      toFQDNs: [{ matchPattern: '**.example.com' }],
      toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }],
    });
    expect(rule?.egress).toContainEqual({
      toFQDNs: [{ matchName: 'example.com' }],
      toPorts: [
        {
          ports: [
            { port: '80', protocol: 'TCP' },
            { port: '443', protocol: 'TCP' },
          ],
        },
      ],
    });
  });

  it('refuses a glob Cilium cannot write ("?"), naming the rule, the reason and the choices', () => {
    const error = refusal(() =>
      exportText(
        ciliumTarget,
        `version: 1
allow:
  - name: versioned
    hosts: ["v?.example.com"]
`,
        { allowWeaker: WEAKER },
      ),
    );
    expect(error.problems[0]?.rule).toBe('versioned');
    expect(error.problems[0]?.reason).toContain('"v?"');
    expect(error.problems[0]?.choices.length).toBeGreaterThan(0);
  });

  it('fails without --allow-weaker for the TLS floor, and for report mode (Cilium audit mode is not in the policy)', () => {
    const floor = refusal(() =>
      exportText(ciliumTarget, 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n'),
    );
    expect(floor.problems.map((p) => p.rule)).toContain('a');
    expect(floor.message).toContain('tls-floor');
    // toFQDNs opens the addresses, not the name: any protocol and any name sharing them.
    expect(floor.message).toMatch(
      /rule "a": the name and protocol on the connection .*not enforced by cilium \(the addresses of a\.example\.com are open on TCP 443 to any protocol and name\)/,
    );
    const report = refusal(() =>
      exportText(ciliumTarget, 'version: 1\nmode: report\nallow: [{ name: a, hosts: [a.example.com] }]\n', {
        allowWeaker: WEAKER,
      }),
    );
    expect(report.message).toContain('report-mode');
  });

  it("name-validity: needed for every rule with a wildcard (Cilium's * takes any DNS characters), not for exact names", () => {
    const lax = ['tls-floor', 'private-addresses', 'server-name'];
    const exact = 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n';
    expect(exportText(ciliumTarget, exact, { allowWeaker: lax })).not.toContain('name-validity');
    const wildcard =
      'version: 1\nallow: [{ name: a, hosts: [a.example.com] }, { name: w, hosts: ["*.example.org", "api-*.example.io"] }]\n';
    expect(() => exportText(ciliumTarget, wildcard, { allowWeaker: lax })).toThrow(
      /^rule "w": valid names under wildcards .*not enforced by cilium \(\*\.example\.org, api-\*\.example\.io on TLS 443 also matches names the policy denies as invalid\).*--allow-weaker name-validity;[^\n]*$/,
    );
  });

  it('the CRD schema used here refuses what Cilium refuses (unknown keys, FQDN deny)', () => {
    const base = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumClusterwideNetworkPolicy',
      metadata: { name: 'x' },
      specs: [{ endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.example.com' }] }] }],
    };
    expect(ciliumPolicySchema.safeParse(base).success).toBe(true);
    const unknownKey = { ...base, specs: [{ ...base.specs[0], egres: [] }] };
    expect(ciliumPolicySchema.safeParse(unknownKey).success).toBe(false);
    const fqdnDeny = {
      ...base,
      specs: [{ endpointSelector: {}, egressDeny: [{ toFQDNs: [{ matchName: 'a.example.com' }] }] }],
    };
    expect(ciliumPolicySchema.safeParse(fqdnDeny).success).toBe(false);
  });
});
