/** A few real decisions, for running the recipes by hand and in their tests. */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createPolicy, type DecisionEvent, diffPolicies, type EventEmitter } from '@egress-guard/policy';

export const SAMPLE_POLICY = createPolicy({
  version: 1,
  allow: [{ name: 'stripe', hosts: ['api.stripe.com'], methods: ['POST'], paths: ['/v1/**'] }],
  deny: [{ name: 'paste-sites', hosts: ['pastebin.com'] }],
});

/** The decision event the SDK writes for one request. */
export function sampleDecision(id: string, url: string, method = 'GET'): DecisionEvent {
  const u = new URL(url);
  const d = SAMPLE_POLICY.decide({ scheme: 'https', host: u.hostname, port: 443, method, path: u.pathname });
  return {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': 'payments',
    'egress.id': id,
    'egress.decision': d.result,
    'egress.reason': d.reason,
    'egress.rule': d.rule,
    'egress.mode': d.mode,
    'egress.policy.hash': d.policyHash,
    'egress.hook': 'fetch',
    'url.scheme': 'https',
    'url.full': url,
    'url.path': u.pathname,
    'server.address': d.host,
    'server.port': 443,
    'http.request.method': method,
    ...(d.result !== 'allowed' ? { 'egress.message': d.message } : {}),
  };
}

/** Emits a policy load, an allowed request and a denied one. */
export function emitSamples(events: EventEmitter): void {
  events.emit({
    'event.name': 'egress.policy.loaded',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': 'payments',
    'egress.policy.hash': SAMPLE_POLICY.hash,
    'egress.policy.diff': diffPolicies(undefined, SAMPLE_POLICY),
  });
  events.emit(sampleDecision('sample-1', 'https://api.stripe.com/v1/charges', 'POST'));
  events.emit(sampleDecision('sample-2', 'https://pastebin.com/api/api_post.php', 'POST'));
}

/** Whether the module was run directly (`npx tsx examples/siem/x.ts`), not imported. */
export function isMain(url: string): boolean {
  const argv = process.argv[1];
  if (!argv) return false;
  try {
    return realpathSync(argv) === realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
}
