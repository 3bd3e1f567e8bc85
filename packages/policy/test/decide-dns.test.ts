import { describe, expect, it } from 'vitest';
import {
  decideDnsAnswerAddress,
  decideDnsQuestion,
  EgressPolicyError,
  parsePolicy,
  policyJsonSchema,
} from '../src/index.js';

const policy = parsePolicy(`
version: 1
allow:
  - name: api
    hosts: [api.example.com, "*.cdn.example.com"]
  - name: acme
    hosts: [_acme-challenge.example.com, api.example.com]
    dns: { types: [TXT, A] }
  - name: internal
    hosts: [db.internal.example]
    privateAddresses: allow
deny:
  - name: no-admin
    hosts: [admin.example.com]
  - name: no-ssh
    hosts: [git.example.com]
    schemes: [ssh]
  - name: no-bad-net
    addresses: [198.51.100.0/24]
  - name: no-ssh-net
    addresses: [203.0.113.0/24]
    schemes: [ssh]
services:
  payments:
    sources: [10.0.1.0/24]
    allow:
      - name: stripe
        hosts: [api.stripe.com]
        schemes: [https]
`);

describe('decideDnsQuestion', () => {
  it('allows A, AAAA, CNAME, HTTPS and SVCB for a listed name by default', () => {
    for (const type of ['A', 'AAAA', 'CNAME', 'HTTPS', 'SVCB']) {
      expect(
        decideDnsQuestion(policy, { name: 'x.cdn.example.com', type, service: undefined }),
      ).toMatchObject({
        result: 'allowed',
        rule: 'api',
      });
    }
  });

  it('refuses other types unless a rule listing the name allows them, naming the rule and how to allow it', () => {
    const txt = decideDnsQuestion(policy, { name: 'x.cdn.example.com', type: 'TXT', service: undefined });
    expect(txt).toMatchObject({ result: 'denied', reason: 'dns_type_not_allowed', rule: 'api' });
    expect(txt.message).toContain('add dns: { types: [A, AAAA, CNAME, HTTPS, SVCB, TXT] }');
    // A second rule listing the same name allows TXT.
    expect(
      decideDnsQuestion(policy, { name: 'api.example.com', type: 'TXT', service: undefined }),
    ).toMatchObject({
      result: 'allowed',
      rule: 'acme',
    });
    expect(
      decideDnsQuestion(policy, { name: '_acme-challenge.example.com', type: 'AAAA', service: undefined }),
    ).toMatchObject({ result: 'denied', reason: 'dns_type_not_allowed', rule: 'acme' });
    expect(
      decideDnsQuestion(policy, { name: 'api.example.com', type: 'ANY', service: undefined }).reason,
    ).toBe('dns_type_not_allowed');
  });

  it('refuses unlisted names, names a plain deny rule lists, and classes other than IN', () => {
    expect(decideDnsQuestion(policy, { name: 'evil.example', type: 'A', service: undefined })).toMatchObject({
      result: 'denied',
      reason: 'host_not_allowed',
    });
    expect(
      decideDnsQuestion(policy, { name: 'admin.example.com', type: 'A', service: undefined }),
    ).toMatchObject({
      reason: 'explicit_deny',
      rule: 'no-admin',
    });
    // A deny rule limited to a scheme says nothing about the name's look-up.
    expect(decideDnsQuestion(policy, { name: 'git.example.com', type: 'A', service: undefined }).reason).toBe(
      'host_not_allowed',
    );
    expect(
      decideDnsQuestion(policy, { name: 'api.example.com', type: 'A', class: 'CH', service: undefined }),
    ).toMatchObject({ result: 'denied', reason: 'dns_type_not_allowed' });
  });

  it('decides for the querying service', () => {
    expect(decideDnsQuestion(policy, { name: 'api.stripe.com', type: 'A', service: 'payments' }).result).toBe(
      'allowed',
    );
    expect(decideDnsQuestion(policy, { name: 'api.stripe.com', type: 'A', service: undefined }).result).toBe(
      'denied',
    );
  });
});

describe('decideDnsAnswerAddress', () => {
  it('refuses a special-purpose address unless the rule allows private addresses', () => {
    const q = decideDnsQuestion(policy, { name: 'api.example.com', type: 'A', service: undefined });
    expect(decideDnsAnswerAddress(policy, q, '93.184.216.34')).toMatchObject({
      result: 'allowed',
      address: '93.184.216.34',
    });
    const refused = decideDnsAnswerAddress(policy, q, '169.254.169.254');
    expect(refused).toMatchObject({ result: 'denied', reason: 'private_address', rule: 'api' });
    expect(refused.message).toContain('cloud metadata');
    expect(decideDnsAnswerAddress(policy, q, '::ffff:127.0.0.1')).toMatchObject({
      reason: 'private_address',
    });
    const internal = decideDnsQuestion(policy, {
      name: 'db.internal.example',
      type: 'A',
      service: undefined,
    });
    expect(decideDnsAnswerAddress(policy, internal, '10.0.0.5').result).toBe('allowed');
  });

  it('refuses an address a deny rule lists outright, also inside NAT64, and ignores scheme-limited ones', () => {
    const q = decideDnsQuestion(policy, { name: 'db.internal.example', type: 'A', service: undefined });
    expect(decideDnsAnswerAddress(policy, q, '198.51.100.7')).toMatchObject({
      result: 'denied',
      reason: 'explicit_deny',
      rule: 'no-bad-net',
      ruleKind: 'deny',
    });
    expect(decideDnsAnswerAddress(policy, q, '64:ff9b::c633:6407').rule).toBe('no-bad-net');
    expect(decideDnsAnswerAddress(policy, q, '203.0.113.9').result).toBe('allowed');
  });
});

describe('the dns key of rules', () => {
  it('is checked: known types only, never zone transfers, only on allow rules', () => {
    const bad = () =>
      parsePolicy(`
version: 1
allow:
  - name: a
    hosts: [a.example]
    dns: { types: [AXFR] }
  - name: b
    hosts: [b.example]
    dns: { typs: [TXT] }
deny:
  - name: c
    hosts: [c.example]
    dns: { types: [TXT] }
`);
    expect(bad).toThrow(EgressPolicyError);
    try {
      bad();
    } catch (error) {
      const text = (error as Error).message;
      expect(text).toContain('"AXFR" is not a DNS query type the edge forwards');
      expect(text).toContain('did you mean "types"?');
      expect(text).toContain('deny[0]');
    }
  });

  it('changes the policy hash only when written', () => {
    const base = 'version: 1\nallow:\n  - name: a\n    hosts: [a.example]\n';
    expect(parsePolicy(`${base}    dns: { types: [A, TXT] }\n`).hash).not.toBe(parsePolicy(base).hash);
    expect(JSON.stringify(policyJsonSchema())).toContain('"TXT"');
  });

  it('warns (lint) when a rule allows a public DNS-over-HTTPS resolver', () => {
    const p = parsePolicy(
      'version: 1\nallow:\n  - name: doh\n    hosts: [dns.google, "*.cloudflare-dns.com"]\n',
    );
    const messages = p.warnings.map((w) => `${w.path} ${w.message}`);
    expect(messages.some((m) => m.startsWith('allow[0].hosts[0]') && m.includes('dns.google'))).toBe(true);
    expect(
      messages.some((m) => m.startsWith('allow[0].hosts[1]') && m.includes('mozilla.cloudflare-dns.com')),
    ).toBe(true);
    expect(parsePolicy('version: 1\nallow:\n  - name: a\n    hosts: [api.example.com]\n').warnings).toEqual(
      [],
    );
  });
});
