import { decideConnection, loadPolicyFile, parsePolicy } from '@egress-guard/policy';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildExportPlan, parseAllowWeaker } from '../../src/export/core/index.js';
import { envoyTarget } from '../../src/export/envoy/envoy-target.js';
import { validateEnvoyMessage } from './envoy-proto-schema.js';
import { expectGolden, exportFile, exportText, goldenPolicy } from './golden-file.js';
import { expectNeverWider, serverNamesNear } from './server-name-property.js';

const POLICY = goldenPolicy('envoy', 'sni-and-host.policy.yaml');
const WEAKER = ['tls-floor', 'private-addresses'];
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

type Json = Record<string, any>;

/** What Envoy's two network RBAC filters decide for a server name: the DENY filter first, then ALLOW. */
function rbacAllows(listener: Json, serverName: string): boolean {
  const rbacs = (listener.filter_chains[0].filters as Json[]).filter(
    (f) => f.name === 'envoy.filters.network.rbac',
  );
  for (const f of rbacs) {
    const rules = f.typed_config.rules;
    const matched = Object.values(rules.policies as Record<string, Json>).some((p) =>
      (p.permissions as Json[]).some((perm) => permissionMatches(perm, serverName)),
    );
    if (rules.action === 'DENY' && matched) return false;
    if (rules.action === 'ALLOW' && !matched) return false;
  }
  return true;
}

/** The HTTP RBAC filters of a plain-HTTP listener, on the request's `:authority`. */
function httpRbacAllows(listener: Json, authority: string): boolean {
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  const rbacs = (hcm.http_filters as Json[]).filter((f) => f.name === 'envoy.filters.http.rbac');
  for (const f of rbacs) {
    const rules = f.typed_config.rules;
    const matched = Object.values(rules.policies as Record<string, Json>).some((p) =>
      (p.permissions as Json[]).some((perm) => permissionMatches(perm, authority)),
    );
    if (rules.action === 'DENY' && matched) return false;
    if (rules.action === 'ALLOW' && !matched) return false;
  }
  return true;
}

/**
 * RBAC permission semantics for the fields export writes: `safe_regex` must match the whole server name
 * (RE2 FullMatch), RE2's (?i) read as JavaScript's "i" flag.
 */
function permissionMatches(perm: Json, sni: string): boolean {
  if (perm.and_rules) return (perm.and_rules.rules as Json[]).every((r) => permissionMatches(r, sni));
  if (perm.or_rules) return (perm.or_rules.rules as Json[]).some((r) => permissionMatches(r, sni));
  if (perm.not_rule) return !permissionMatches(perm.not_rule, sni);
  const matcher = perm.requested_server_name ?? perm.header?.string_match;
  if (perm.header) expect(perm.header.name).toBe(':authority');
  const regex: string = matcher.safe_regex.regex;
  expect(regex.startsWith('(?i)')).toBe(true);
  return new RegExp(`^(?:${regex.slice(4)})$`, 'i').test(sni);
}

describe('export --to envoy', () => {
  it('SNI and Host RBAC, dynamic forward proxy: valid against Envoy protos, golden', async () => {
    const text = await exportFile(envoyTarget, POLICY, { allowWeaker: WEAKER });
    expectGolden('envoy', 'sni-rbac-and-host-rbac.yaml', text);
    expect(await validateEnvoyMessage(BOOTSTRAP, parse(text))).toEqual([]);
    const names = (parse(text).static_resources.listeners as Json[]).map((l) => l.name);
    expect(names).toEqual(['egress_guard_tls_443', 'egress_guard_http_80', 'egress_guard_http_8080']);
    expect(text).toContain('allow:stripe');
    expect(text).toContain('deny:example-admin');
  });

  it('report mode maps to RBAC shadow rules (nothing enforced, everything counted)', () => {
    const text = exportText(
      envoyTarget,
      'version: 1\nmode: report\nallow: [{ name: a, hosts: [a.example.com] }]\ndeny: [{ name: b, hosts: [b.example.com] }]\n',
      { allowWeaker: WEAKER },
    );
    expectGolden('envoy', 'report-mode-shadow-rules.yaml', text);
    const doc = parse(text);
    return validateEnvoyMessage(BOOTSTRAP, doc).then((problems) => {
      expect(problems).toEqual([]);
      const filters = doc.static_resources.listeners[0].filter_chains[0].filters as Json[];
      const rbac = filters.filter((f) => f.name === 'envoy.filters.network.rbac');
      expect(rbac).toHaveLength(2);
      for (const f of rbac) {
        expect(f.typed_config.rules).toBeUndefined();
        expect(f.typed_config.shadow_rules).toBeDefined();
      }
    });
  });

  it('lets through the server names egress-guard check allows, never more (fast-check, RBAC as Envoy reads it)', async () => {
    const text = await exportFile(envoyTarget, POLICY, { allowWeaker: WEAKER });
    const listener = (parse(text).static_resources.listeners as Json[])[0]!;
    const policy = await loadPolicyFile(POLICY);
    expectNeverWider(policy, (sni) => rbacAllows(listener, sni), [
      'stripe.com',
      'eu-west-1.amazonaws.com',
      's3.eu-west-1.amazonaws.com',
      'example.com',
      'example.org',
      'example.org.evil.io',
      'example.net',
    ]);
  });

  it('plain HTTP: lets a request through only to a host and port egress-guard check allows', async () => {
    const text = await exportFile(envoyTarget, POLICY, { allowWeaker: WEAKER });
    const listeners = parse(text).static_resources.listeners as Json[];
    const policy = await loadPolicyFile(POLICY);
    const authority = fc.tuple(
      serverNamesNear(['mirror.example.net', 'example.net', 'admin.example.org', 'stripe.com']),
      fc.constantFrom(undefined, 80, 8080, 443),
    );
    fc.assert(
      fc.property(authority, fc.constantFrom(80, 8080), ([host, port], listenerPort) => {
        const listener = listeners.find((l) => l.name === `egress_guard_http_${listenerPort}`)!;
        const value = port === undefined ? host : `${host}:${port}`;
        if (!httpRbacAllows(listener, value)) return;
        // The dynamic forward proxy dials the authority's port, 80 when absent.
        const decision = decideConnection(policy, { transport: 'plain', host, port: port ?? 80 });
        expect(decision.allowed, `${value} on listener ${listenerPort}`).toBe(true);
        expect(port ?? 80, value).toBe(listenerPort);
      }),
      { numRuns: 3000 },
    );
  });

  it('fails without --allow-weaker (TLS floor, private addresses), naming each rule', () => {
    const policy = parsePolicy('version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n');
    expect(() => buildExportPlan(policy, envoyTarget, { allowWeaker: parseAllowWeaker([]) })).toThrow(
      /rule "a": the TLS floor/,
    );
  });

  it('the proto check refuses what Envoy refuses: unknown fields, bad enums, a typed_config of an unknown type', async () => {
    const text = exportText(envoyTarget, 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n', {
      allowWeaker: WEAKER,
    });
    const doc = parse(text);
    doc.static_resources.listeners[0].filter_chains[0].filter_chain_match.server_name = 'a.example.com';
    doc.static_resources.clusters[0].lb_policy = 'FASTEST';
    doc.static_resources.listeners[0].listener_filters[0].typed_config['@type'] =
      'type.googleapis.com/envoy.Nope';
    const problems = await validateEnvoyMessage(BOOTSTRAP, doc);
    expect(problems.join('\n')).toMatch(/server_name: unknown field/);
    expect(problems.join('\n')).toMatch(/FASTEST/);
    expect(problems.join('\n')).toMatch(/envoy\.Nope is not a known message/);
  });

  it('writes the resolver when one is given, and stays valid', async () => {
    const text = await exportFile(envoyTarget, POLICY, {
      allowWeaker: WEAKER,
      render: { resolver: '10.96.0.10:53', listenAddress: '127.0.0.1' },
    });
    const doc = parse(text);
    expect(await validateEnvoyMessage(BOOTSTRAP, doc)).toEqual([]);
    expect(text).toContain('envoy.network.dns_resolver.cares');
  });
});
