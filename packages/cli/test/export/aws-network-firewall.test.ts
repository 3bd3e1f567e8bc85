import { loadPolicyFile } from '@egress-guard/policy';
import { describe, expect, it } from 'vitest';
import { awsNetworkFirewallTarget } from '../../src/export/aws-network-firewall/aws-network-firewall-target.js';
import { type ParsedRule, parseSuricataRule } from './aws-suricata-grammar.js';
import { expectGolden, exportFile, exportText, goldenPolicy } from './golden-file.js';
import { expectNeverWider } from './server-name-property.js';

const POLICY = goldenPolicy('aws-network-firewall', 'sni-host-and-addresses.policy.yaml');
const WEAKER = ['tls-floor', 'private-addresses', 'destination-binding'];

function rules(text: string): ParsedRule[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map(parseSuricataRule);
}

function option(rule: ParsedRule, keyword: string): string | undefined {
  return rule.options.find((o) => o.keyword === keyword)?.value;
}

/**
 * Strict rule order as Network Firewall runs it, for a TLS flow to port 443 with this server name: the first
 * `tls` rule whose content and pcre match decides; pass lets it through, drop refuses it.
 */
function firewallPasses(parsed: ParsedRule[], sni: string): boolean {
  for (const rule of parsed) {
    if (rule.protocol !== 'tls' || rule.header[6] !== '443') continue;
    const content = option(rule, 'content');
    if (content && !sni.toLowerCase().includes(JSON.parse(content).toLowerCase())) continue;
    const pcre = option(rule, 'pcre');
    if (pcre) {
      const m = /^"\/(.*)\/([a-z]*)"$/.exec(pcre)!;
      if (!new RegExp(m[1]!, m[2]).test(sni)) continue;
    }
    return rule.action === 'pass';
  }
  return false;
}

describe('export --to aws-network-firewall', () => {
  it('strict-order rules on tls.sni and http.host, drop ip for denied addresses: golden, grammar, unique sids', async () => {
    const text = await exportFile(awsNetworkFirewallTarget, POLICY, { allowWeaker: WEAKER });
    expectGolden('aws-network-firewall', 'strict-order-sni-and-host.rules', text);
    const parsed = rules(text);
    const sids = parsed.map((r) => option(r, 'sid'));
    expect(new Set(sids).size).toBe(parsed.length);
    expect(parsed[0]?.header.slice(0, 2)).toEqual(['drop', 'ip']);
    expect(
      parsed.some((r) => r.action === 'pass' && option(r, 'msg')?.includes('allow rule \\"stripe\\"')),
    ).toBe(true);
    expect(text).toContain('http.host');
  });

  it('lets through the server names egress-guard check allows, never more (fast-check, strict order)', async () => {
    const parsed = rules(await exportFile(awsNetworkFirewallTarget, POLICY, { allowWeaker: WEAKER }));
    const policy = await loadPolicyFile(POLICY);
    expectNeverWider(policy, (sni) => firewallPasses(parsed, sni), [
      'stripe.com',
      's3.eu-west-1.amazonaws.com',
      'example.com',
      'example.org',
      'example.org.evil.io',
    ]);
  });

  it('report mode: alert where enforce drops, the same pass rules', () => {
    const policy =
      'version: 1\nmode: report\nallow: [{ name: a, hosts: ["*.example.com"] }]\ndeny: [{ name: b, hosts: [b.example.com] }]\n';
    const text = exportText(awsNetworkFirewallTarget, policy, { allowWeaker: WEAKER });
    expectGolden('aws-network-firewall', 'report-mode-alert.rules', text);
    const parsed = rules(text);
    expect(parsed.filter((r) => r.action === 'drop')).toEqual([]);
    expect(parsed.filter((r) => r.action === 'alert').length).toBeGreaterThan(0);
    expect(text).toContain('aws:alert_established only');
  });

  it('fails without --allow-weaker destination-binding: the flow goes to the address the client chose', () => {
    const policy = 'version: 1\nallow: [{ name: a, hosts: [a.example.com] }]\n';
    expect(() =>
      exportText(awsNetworkFirewallTarget, policy, { allowWeaker: ['tls-floor', 'private-addresses'] }),
    ).toThrow(
      /rule "a": the address behind the name .*not enforced by aws-network-firewall \(a\.example\.com on TLS 443 goes to whatever address the client chose\).*--allow-weaker destination-binding/,
    );
  });

  it('the grammar check refuses what Suricata refuses', () => {
    expect(() => parseSuricataRule('pass tls $HOME_NET any -> $EXTERNAL_NET 443 (msg:"x"; sid:1;)')).toThrow(
      /rev/,
    );
    expect(() =>
      parseSuricataRule('pass tls $HOME_NET any -> $EXTERNAL_NET 443 (msg:"x"; nocase; sid:1; rev:1;)'),
    ).toThrow(/without a preceding content/);
    expect(() =>
      parseSuricataRule(
        'pass tls $HOME_NET any -> $EXTERNAL_NET 443 (msg:"a;b"; tls.sni; content:"x"; sid:1; rev:1;)',
      ),
    ).toThrow();
  });
});
