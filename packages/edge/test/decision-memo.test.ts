/**
 * The edge's memo of decisions per compiled policy: the same frozen decision for the same destination,
 * a fresh memo for a reloaded policy, and no cached decision outliving the mode it was made in.
 */
import { describe, expect, it } from 'vitest';
import { decisionsFor } from '../src/decision-memo.js';
import { policyOf } from './helpers/edge-kit.js';

const yaml = (mode: string) => `
version: 1
mode: ${mode}
allow:
  - name: api
    hosts: [api.test]
    schemes: [https]
    ports: [443]
`;

describe('decisionsFor', () => {
  it('answers as the policy does, with one frozen object per destination', () => {
    const policy = policyOf(yaml('enforce'));
    const memo = decisionsFor(policy);
    const dest = { scheme: 'https', host: 'api.test', port: 443 } as const;
    const first = memo.decide(dest);
    expect(first).toEqual(policy.decide(dest));
    expect(memo.decide({ ...dest })).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(memo.decide({ ...dest, host: 'other.test' }).result).toBe('denied');
    expect(memo.decide({ ...dest, service: 'svc' })).not.toBe(first);
    expect(decisionsFor(policy)).toBe(memo);
  });

  it('starts again for a reloaded policy', () => {
    const before = decisionsFor(policyOf(yaml('enforce')));
    const after = decisionsFor(policyOf(yaml('report')));
    expect(after).not.toBe(before);
    const dest = { scheme: 'https', host: 'other.test', port: 443 } as const;
    expect(before.decide(dest).result).toBe('denied');
    expect(after.decide(dest).result).toBe('reported');
  });

  it('decides again once report mode has ended (reportUntil)', () => {
    const until = Date.parse('2030-01-01T00:00:00Z');
    const policy = policyOf(`${yaml('report')}reportUntil: "2030-01-01T00:00:00Z"\n`);
    const memo = decisionsFor(policy);
    const dest = { scheme: 'https', host: 'other.test', port: 443 } as const;
    expect(memo.decide(dest, until - 1000).result).toBe('reported');
    expect(memo.decide(dest, until + 1000).result).toBe('denied');
  });
});
