import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { policyJsonSchema } from '../src/index.js';

describe('the published JSON Schema', () => {
  it('is the schema the code generates (regenerate: egress-guard schema > packages/policy/schema/policy-v1.json)', () => {
    const file = JSON.parse(readFileSync(new URL('../schema/policy-v1.json', import.meta.url), 'utf8'));
    expect(file).toEqual(policyJsonSchema());
  });
});
