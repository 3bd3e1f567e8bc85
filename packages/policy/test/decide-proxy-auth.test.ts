/**
 * decideProxyAuth: the refusal of a proxy request whose service credentials were missing, wrong or tried
 * too often. Always denied (report mode too), no rule, the destination named when the request named one.
 */
import { describe, expect, it } from 'vitest';
import { decideProxyAuth, parsePolicy } from '../src/index.js';

const policy = (mode: 'enforce' | 'report') =>
  parsePolicy(`version: 1
mode: ${mode}
allow:
  - name: pay
    hosts: [pay.test]
    schemes: [tcp, https]
    ports: [443]
services:
  payments:
    allow:
      - name: pay-more
        hosts: [more.test]
`);

describe('decideProxyAuth', () => {
  it('maps each failure to its reason, denied without a rule', () => {
    const p = policy('enforce');
    const at = { host: 'pay.test', port: 443, detail: 'what was wrong' };
    expect(decideProxyAuth(p, { ...at, failure: 'missing' }).reason).toBe('proxy_auth_required');
    expect(decideProxyAuth(p, { ...at, failure: 'invalid' }).reason).toBe('proxy_auth_invalid');
    const limited = decideProxyAuth(p, { ...at, failure: 'rate_limited' });
    expect(limited).toMatchObject({
      result: 'denied',
      allowed: false,
      reason: 'proxy_auth_rate_limited',
      rule: undefined,
      ruleKind: undefined,
      host: 'pay.test',
      port: 443,
      policyHash: p.hash,
    });
    expect(limited.message).toContain(
      'egress denied: tcp://pay.test:443 [proxy_auth_rate_limited]: what was wrong',
    );
  });

  it('denies in report mode too, and keeps the claimed service', () => {
    const d = decideProxyAuth(policy('report'), {
      failure: 'invalid',
      host: 'more.test',
      port: 443,
      service: 'payments',
      detail: 'a wrong token for payments',
    });
    expect(d).toMatchObject({ result: 'denied', allowed: false, mode: 'report', service: 'payments' });
    expect(d.message).toContain('HTTPS_PROXY=http://SERVICE:TOKEN@edge:PORT');
  });

  it('needs no destination', () => {
    const d = decideProxyAuth(policy('enforce'), { failure: 'missing', port: 3128, detail: 'no header' });
    expect(d).toMatchObject({ result: 'denied', reason: 'proxy_auth_required', host: undefined, port: 3128 });
  });
});
