import * as z from 'zod';
import { policySchema } from './schema.js';

/**
 * The JSON Schema (draft 2020-12) of policy files, for editors (`# yaml-language-server: $schema=...`).
 * Checks the shape; the semantic checks (host patterns, CIDRs, unique names) are `egress-guard lint`'s.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(policySchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    ...schema,
    $id: 'https://egress-guard.dev/schema/policy-v1.json',
    title: 'egress-guard policy, version 1',
    description: 'One policy for the egress-guard SDK and edge filter. See docs/policy.md.',
  };
}
