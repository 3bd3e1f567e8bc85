import { decideConnection, loadPolicyFile, parseHost } from '@egress-guard/policy';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import { Gateway } from '@kubernetes-models/istio/networking.istio.io/v1/Gateway';
import { ServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry';
import { Sidecar } from '@kubernetes-models/istio/networking.istio.io/v1/Sidecar';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { istioTarget } from '../../src/export/istio/istio-target.js';
import {
  expectGolden,
  exportFile,
  exportText,
  goldenPolicy,
  PATTERN_DROPPED_ON_ONE_PORT,
} from './golden-file.js';
import { serverNamesNear } from './server-name-property.js';

const POLICY = goldenPolicy('istio', 'registry-and-egress-gateway.policy.yaml');
const WEAKER = ['tls-floor', 'private-addresses', 'destination-binding', 'name-validity'];

type Json = Record<string, any>;

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  Sidecar,
  ServiceEntry,
  Gateway,
  DestinationRule,
  VirtualService,
};

/** Each document as the model class of its kind (@kubernetes-models/istio), validated against Istio's schema. */
function validated(text: string): Json[] {
  return parseAllDocuments(text).map((d) => {
    const doc = d.toJS() as Json;
    const Model = MODELS[doc.kind];
    if (!Model) throw new Error(`unexpected kind ${doc.kind}`);
    new Model(doc).validate();
    return doc;
  });
}

/**
 * Istio host matching (the sidecar's `server_names`): a host is exact, or `*.suffix` matching any name that
 * ends in `.suffix` (any depth), case-insensitive.
 */
function istioMatches(host: string, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  return host.startsWith('*.') ? n.endsWith(host.slice(1)) : n === host;
}

describe('export --to istio', () => {
  it('Sidecar REGISTRY_ONLY, a ServiceEntry per rule, the egress gateway for exact names: valid, golden', async () => {
    const text = await exportFile(istioTarget, POLICY, { allowWeaker: WEAKER });
    expectGolden('istio', 'registry-only-and-egress-gateway.yaml', text);
    const docs = validated(text);
    expect(docs.map((d) => d.kind)).toEqual([
      'Sidecar',
      'ServiceEntry',
      'ServiceEntry',
      'ServiceEntry',
      'ServiceEntry',
      'Gateway',
      'DestinationRule',
      'VirtualService',
      'VirtualService',
      'VirtualService',
    ]);
    expect(docs[0]?.spec.outboundTrafficPolicy.mode).toBe('REGISTRY_ONLY');
    const github = docs.find((d) => d.metadata.name === 'egress-guard-github-content');
    // Istio's "*." is any depth: our "**.".
    expect(github?.spec.hosts).toEqual(['*.githubusercontent.com']);
    expect(github?.spec.resolution).toBe('NONE');
    expect(github?.metadata.annotations['egress-guard.dev/rule']).toBe('github-content');
  });

  it('lets through, on TLS port 443, only names egress-guard check allows (never wider)', async () => {
    const docs = validated(await exportFile(istioTarget, POLICY, { allowWeaker: WEAKER }));
    const tlsHosts = docs
      .filter((d) => d.kind === 'ServiceEntry' && (d.spec.ports as Json[]).some((p) => p.number === 443))
      .flatMap((d) => d.spec.hosts as string[]);
    const policy = await loadPolicyFile(POLICY);
    fc.assert(
      fc.property(
        serverNamesNear([
          'api.stripe.com',
          'stripe.com',
          'githubusercontent.com',
          's3.eu-west-1.amazonaws.com',
          'pastebin.com',
        ]),
        (name) => {
          if (!tlsHosts.some((h) => istioMatches(h, name))) return;
          const decision = decideConnection(policy, { transport: 'tls', host: name, port: 443 });
          // Istio's wildcard does not check label syntax: names our decider refuses as invalid (name-validity).
          if (!decision.allowed) expect(parseHost(name).kind, name).toBe('invalid');
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a pattern dropped on one port only stays off that port (one ServiceEntry per set of ports)', () => {
    const docs = validated(exportText(istioTarget, PATTERN_DROPPED_ON_ONE_PORT, { allowWeaker: WEAKER }));
    const entries = docs.filter((d) => d.kind === 'ServiceEntry').map((d) => [d.spec.hosts, d.spec.ports]);
    expect(entries).toEqual([
      [['*.example.com'], [{ number: 443, name: 'tls-443', protocol: 'TLS' }]],
      [
        ['example.com'],
        [
          { number: 443, name: 'tls-443', protocol: 'TLS' },
          { number: 80, name: 'http-80', protocol: 'HTTP' },
        ],
      ],
    ]);
  });

  it('drops a one-label wildcard (Istio would match any depth): narrower, with a warning naming the rule', async () => {
    const text = await exportFile(istioTarget, POLICY, { allowWeaker: WEAKER });
    const docs = validated(text);
    const storage = docs.find((d) => d.metadata.name === 'egress-guard-object-storage');
    expect(storage?.spec.hosts).toEqual(['s3.eu-west-1.amazonaws.com']);
    expect(text).not.toContain('"*.s3.eu-west-1.amazonaws.com"\n');
    expect(text).toMatch(/rule "object-storage": .*"\*\.s3\.eu-west-1\.amazonaws\.com" dropped/);
  });

  it('is deterministic, and report mode is refused unless accepted as weaker (Istio has no audit mode)', async () => {
    expect(await exportFile(istioTarget, POLICY, { allowWeaker: WEAKER })).toBe(
      await exportFile(istioTarget, POLICY, { allowWeaker: WEAKER }),
    );
    const report = 'version: 1\nmode: report\nallow: [{ name: a, hosts: [a.example.com] }]\n';
    expect(() => exportText(istioTarget, report, { allowWeaker: WEAKER })).toThrow(/report-mode/);
    const text = exportText(istioTarget, report, { allowWeaker: [...WEAKER, 'report-mode'] });
    expect(text).toMatch(/report-mode: .*this configuration enforces/);
  });

  it('destination-binding: needed for wildcard hosts (resolution NONE), not for exact names (egress gateway)', () => {
    const lax = ['tls-floor', 'private-addresses', 'name-validity'];
    const exact = 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n';
    expect(exportText(istioTarget, exact, { allowWeaker: lax })).not.toContain('destination-binding');
    const wildcard =
      'version: 1\nallow: [{ name: a, hosts: [a.example.com] }, { name: w, hosts: ["**.example.org"] }]\n';
    expect(() => exportText(istioTarget, wildcard, { allowWeaker: lax })).toThrow(
      /^rule "w": the address behind the name .*\(\*\*\.example\.org on TLS 443 goes to whatever address the client chose\)[^\n]*$/,
    );
  });

  it('name-validity: needed for wildcard hosts (a suffix match on any labels), not for exact names', () => {
    const lax = ['tls-floor', 'private-addresses', 'destination-binding'];
    const exact = 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n';
    expect(exportText(istioTarget, exact, { allowWeaker: lax })).not.toContain('name-validity');
    const wildcard =
      'version: 1\nallow: [{ name: a, hosts: [a.example.com] }, { name: w, hosts: ["**.example.org"] }]\n';
    expect(() => exportText(istioTarget, wildcard, { allowWeaker: lax })).toThrow(
      /^rule "w": valid names under wildcards .*not enforced by istio \(\*\*\.example\.org on TLS 443 also matches names the policy denies as invalid\).*--allow-weaker name-validity;[^\n]*$/,
    );
  });

  it("the models' validation refuses what Istio refuses", () => {
    expect(() =>
      new ServiceEntry({
        metadata: { name: 'x' },
        spec: { hosts: ['a.example.com'], resolution: 'SOMETIMES' as never, location: 'MESH_EXTERNAL' },
      }).validate(),
    ).toThrow();
    expect(() =>
      new Sidecar({
        metadata: { name: 'x' },
        spec: { outboundTrafficPolicy: { mode: 'OPEN' as never } },
      }).validate(),
    ).toThrow();
  });
});
