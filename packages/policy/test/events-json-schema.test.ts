import { readFileSync, writeFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import {
  type BreakerEvent,
  type breakerEventSchema,
  type CompletionEvent,
  type completionEventSchema,
  type DecisionEvent,
  type DnsEvent,
  type DroppedEvent,
  type decisionEventSchema,
  type dnsEventSchema,
  type droppedEventSchema,
  type EgressEvent,
  eventJsonSchema,
  type PolicyEvent,
  type policyEventSchema,
  type WorkerExitEvent,
  type workerEventSchema,
} from '../src/index.js';

const schemaFile = new URL('../schema/events-v1.json', import.meta.url);
const docsFile = new URL('../../../docs/events.md', import.meta.url);
const HASH = 'a'.repeat(64);

function validator() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);
  return ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
}

/** One of each kind, with every optional field the SDK and edge set. */
const SAMPLES: EgressEvent[] = [
  {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': 'payments',
    'egress.id': '1f2e3d4c-1',
    'egress.decision': 'denied',
    'egress.reason': 'host_not_allowed',
    'egress.mode': 'enforce',
    'egress.policy.hash': HASH,
    'egress.hook': 'fetch',
    'egress.message': 'egress denied: https://evil.example:443 [host_not_allowed]',
    'url.scheme': 'https',
    'url.full': 'https://evil.example/upload?REDACTED',
    'url.path': '/upload',
    'server.address': 'evil.example',
    'server.port': 443,
    'http.request.method': 'POST',
  },
  {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.id': 'edge-7',
    'egress.decision': 'allowed',
    'egress.reason': 'allowed',
    'egress.rule': 'stripe',
    'egress.mode': 'report',
    'egress.policy.hash': HASH,
    'egress.hook': 'edge.explicit',
    'url.scheme': 'tls',
    'server.address': 'api.stripe.com',
    'server.port': 443,
    'network.peer.address': '203.0.113.7',
    'client.address': '10.0.1.5',
    'tls.client.server_name': 'api.stripe.com',
  },
  {
    'event.name': 'egress.completion',
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.id': 'edge-7',
    'egress.hook': 'edge.explicit',
    'egress.rule': 'stripe',
    'egress.policy.hash': HASH,
    'egress.outcome': 'ok',
    'egress.duration_ms': 12.5,
    'server.address': 'api.stripe.com',
    'server.port': 443,
    'client.address': '10.0.1.5',
    'http.response.status_code': 200,
    'tls.protocol.version': 'TLSv1.3',
    'tls.client.alpn': 'h2,http/1.1',
    'tls.client.server_name': 'api.stripe.com',
    'egress.tls.client_max_version': 'TLSv1.3',
    'egress.bytes.sent': 517,
    'egress.bytes.received': 4096,
    'egress.close_reason': 'client_end',
    'error.type': 'ECONNRESET',
  },
  {
    'event.name': 'egress.policy.reloaded',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.policy.hash': HASH,
    'egress.policy.previous_hash': 'b'.repeat(64),
    'egress.policy.file': '/etc/egress.yaml',
    'egress.policy.diff': { added: ['allow:new'], removed: ['payments/allow:old'], changed: ['deny:paste'] },
  },
  {
    'event.name': 'egress.policy.rejected',
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.policy.hash': HASH,
    'egress.policy.file': '/etc/egress.yaml',
    'egress.policy.problems': ['3:5 allow[0].hosts[0] "*.com" is too broad'],
  },
  {
    'event.name': 'egress.breaker.state',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.breaker.state': 'open',
    'egress.breaker.key': 'stripe|https://api.stripe.com:443',
    'egress.rule': 'stripe',
  },
  {
    'event.name': 'egress.worker.exited',
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.worker.id': 3,
    'process.pid': 4242,
    'process.exit.code': 1,
    'egress.worker.uptime_ms': 812,
    'egress.worker.replaced_in_ms': 200,
    'egress.policy.hash': HASH,
  },
  {
    'event.name': 'egress.events.dropped',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.events.dropped': 12,
    'egress.events.dropped_total': 40,
    'egress.events.drop_reason': 'backpressure',
    'egress.events.since': '2026-01-31T10:00:00.000Z',
  },
  {
    'event.name': 'egress.dns',
    'egress.schema': 1,
    'egress.source': 'edge',
    'service.name': 'payments',
    'egress.id': 'edge-1a2b-9',
    'egress.decision': 'denied',
    'egress.reason': 'host_not_allowed',
    'egress.mode': 'enforce',
    'egress.policy.hash': HASH,
    'egress.hook': 'edge.dns',
    'egress.message': 'egress denied: dns:c2VjcmV0.t.example [host_not_allowed]',
    'dns.question.name': 'c2vjcmv0.t.example',
    'egress.dns.type': 'TXT',
    'egress.dns.rcode': 'REFUSED',
    'egress.dns.answer_count': 0,
    'dns.answers': ['93.184.216.34'],
    'network.transport': 'udp',
    'client.address': '10.0.1.5',
    'egress.duration_ms': 0.4,
    'egress.dns.label_max_length': 8,
    'egress.dns.entropy': 2.75,
    'egress.dns.parent': 't.example',
    'egress.dns.parent_distinct_names': 17,
  },
];

describe('the published event schema', () => {
  it('is what the zod definition generates (regenerate: EGRESS_GUARD_UPDATE_SCHEMA=1 npx vitest run packages/policy/test/events-json-schema.test.ts)', () => {
    const generated = eventJsonSchema();
    if (process.env.EGRESS_GUARD_UPDATE_SCHEMA === '1') {
      writeFileSync(schemaFile, `${JSON.stringify(generated, null, 2)}\n`);
    }
    expect(JSON.parse(readFileSync(schemaFile, 'utf8'))).toEqual(generated);
  });

  it('has the same fields, with the same optionality, as the TypeScript event types', () => {
    // Keys and optional keys must match exactly; the schema's value types may be narrower (enums).
    type Keys<T> = keyof T;
    type OptionalKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T];
    type Out<S extends z.ZodType> = z.output<S>;
    expectTypeOf<Keys<Out<typeof decisionEventSchema>>>().toEqualTypeOf<Keys<DecisionEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof decisionEventSchema>>>().toEqualTypeOf<
      OptionalKeys<DecisionEvent>
    >();
    expectTypeOf<Out<typeof decisionEventSchema>>().toExtend<DecisionEvent>();
    expectTypeOf<Keys<Out<typeof completionEventSchema>>>().toEqualTypeOf<Keys<CompletionEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof completionEventSchema>>>().toEqualTypeOf<
      OptionalKeys<CompletionEvent>
    >();
    expectTypeOf<Out<typeof completionEventSchema>>().toExtend<CompletionEvent>();
    expectTypeOf<Keys<Out<typeof policyEventSchema>>>().toEqualTypeOf<Keys<PolicyEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof policyEventSchema>>>().toEqualTypeOf<OptionalKeys<PolicyEvent>>();
    expectTypeOf<Out<typeof policyEventSchema>>().toExtend<PolicyEvent>();
    expectTypeOf<Keys<Out<typeof breakerEventSchema>>>().toEqualTypeOf<Keys<BreakerEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof breakerEventSchema>>>().toEqualTypeOf<OptionalKeys<BreakerEvent>>();
    expectTypeOf<Out<typeof breakerEventSchema>>().toExtend<BreakerEvent>();
    expectTypeOf<Keys<Out<typeof droppedEventSchema>>>().toEqualTypeOf<Keys<DroppedEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof droppedEventSchema>>>().toEqualTypeOf<OptionalKeys<DroppedEvent>>();
    expectTypeOf<Out<typeof droppedEventSchema>>().toExtend<DroppedEvent>();
    expectTypeOf<Keys<Out<typeof dnsEventSchema>>>().toEqualTypeOf<Keys<DnsEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof dnsEventSchema>>>().toEqualTypeOf<OptionalKeys<DnsEvent>>();
    expectTypeOf<Out<typeof dnsEventSchema>>().toExtend<DnsEvent>();
    expectTypeOf<Keys<Out<typeof workerEventSchema>>>().toEqualTypeOf<Keys<WorkerExitEvent>>();
    expectTypeOf<OptionalKeys<Out<typeof workerEventSchema>>>().toEqualTypeOf<
      OptionalKeys<WorkerExitEvent>
    >();
    expectTypeOf<Out<typeof workerEventSchema>>().toExtend<WorkerExitEvent>();
    // And at run time: the $defs list the same properties as the samples can carry.
    const defs = (eventJsonSchema() as { $defs: Record<string, { properties?: object }> }).$defs;
    expect(Object.keys(defs).sort()).toEqual([
      'BreakerEvent',
      'CompletionEvent',
      'DecisionEvent',
      'DnsEvent',
      'DroppedEvent',
      'PolicyDiff',
      'PolicyEvent',
      'SummaryEvent',
      'WorkerEvent',
    ]);
  });

  it('accepts every kind of event, alone and inside a pino line or an application logger line', () => {
    const validate = validator();
    for (const event of SAMPLES) {
      expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
      const line = { level: 30, time: '2026-01-31T10:00:00.000Z', msg: 'egress', ...event };
      expect(validate(line), JSON.stringify(validate.errors)).toBe(true);
      const appLine = { level: 40, time: 1769853600000, pid: 7, hostname: 'h', egress: true, ...event };
      expect(validate(appLine), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it('refuses a misspelt attribute, an unknown reason, a missing field and a wrong schema version', () => {
    const validate = validator();
    const decision = SAMPLES[0] as DecisionEvent;
    expect(validate({ ...decision, 'egress.reasons': 'x' })).toBe(false);
    expect(validate({ ...decision, 'egress.reason': 'because' })).toBe(false);
    const { 'egress.policy.hash': _hash, ...noHash } = decision;
    expect(validate(noHash)).toBe(false);
    expect(validate({ ...decision, 'egress.schema': 2 })).toBe(false);
    expect(validate({ ...decision, 'event.name': 'egress.something' })).toBe(false);
    expect(validate({ ...decision, 'server.port': 70000 })).toBe(false);
    expect(validate({ ...SAMPLES[6], 'egress.events.since': 'yesterday' })).toBe(false);
  });

  it('is explained field by field in docs/events.md', () => {
    const docs = readFileSync(docsFile, 'utf8');
    const defs = (eventJsonSchema() as { $defs: Record<string, { properties: Record<string, unknown> }> })
      .$defs;
    const missing: string[] = [];
    for (const def of Object.values(defs)) {
      for (const name of Object.keys(def.properties)) if (!docs.includes(`\`${name}\``)) missing.push(name);
    }
    expect([...new Set(missing)]).toEqual([]);
  });
});
