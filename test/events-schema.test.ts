/**
 * Every event the test suite emitted, validated against the published schema.
 *
 * `scripts/test-all.mjs` runs the whole suite with `EGRESS_GUARD_EVENT_AUDIT_FILE` set, so that every
 * emitter (in every test process and child process) appends each event it emits to one file; then it runs
 * this file alone with `EGRESS_GUARD_EVENTS_TO_VALIDATE` naming that file. Run on its own (plain
 * `vitest run`), it validates the events it makes itself through the real emitter and a real policy.
 */
import { once } from 'node:events';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import {
  createEventEmitter,
  createPolicy,
  diffPolicies,
  type EgressEvent,
  EVENT_AUDIT_FILE_ENV,
} from '@egress-guard/policy';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';

/** Names the file of events to validate; set by scripts/test-all.mjs for its second pass. */
const TO_VALIDATE_ENV = 'EGRESS_GUARD_EVENTS_TO_VALIDATE';
const schemaFile = new URL('../packages/policy/schema/events-v1.json', import.meta.url);
/** Offending events listed in full in the failure; the rest are counted by kind of problem. */
const SHOWN = 20;

interface Outcome {
  total: number;
  byName: Record<string, number>;
  offending: { line: number; event: string; errors: string }[];
  problems: Map<string, number>;
}

function compile() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);
  return ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
}

function describeErrors(event: Record<string, unknown>, errors: ErrorObject[] | null | undefined): string {
  // oneOf reports the failures against every kind; keep those of the kind the event names.
  const kind = String(event['event.name'] ?? '');
  const ref = kind.startsWith('egress.policy.')
    ? 'PolicyEvent'
    : ({
        'egress.decision': 'DecisionEvent',
        'egress.completion': 'CompletionEvent',
        'egress.breaker.state': 'BreakerEvent',
        'egress.events.dropped': 'DroppedEvent',
        'egress.worker.exited': 'WorkerEvent',
        'egress.dns': 'DnsEvent',
      }[kind] ?? '');
  const relevant = (errors ?? []).filter((e) => !ref || e.schemaPath.includes(`/${ref}/`));
  return (relevant.length > 0 ? relevant : (errors ?? []))
    .filter((e) => e.keyword !== 'oneOf')
    .map((e) =>
      e.keyword === 'additionalProperties'
        ? `unknown attribute "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : `${e.instancePath || '(event)'} ${e.message}`,
    )
    .join('; ');
}

async function validateFile(file: string): Promise<Outcome> {
  const validate = compile();
  const outcome: Outcome = { total: 0, byName: {}, offending: [], problems: new Map() };
  const lines = createInterface({
    input: createReadStream(file, 'utf8'),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === '') continue;
    outcome.total++;
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(text);
    } catch {
      outcome.offending.push({ line: n, event: text.slice(0, 200), errors: 'not JSON' });
      outcome.problems.set('not JSON', (outcome.problems.get('not JSON') ?? 0) + 1);
      continue;
    }
    const name = String(event['event.name']);
    outcome.byName[name] = (outcome.byName[name] ?? 0) + 1;
    if (validate(event)) continue;
    const errors = describeErrors(event, validate.errors);
    const key = `${name} from ${String(event['egress.source'])}/${String(event['egress.hook'] ?? '-')}: ${errors}`;
    outcome.problems.set(key, (outcome.problems.get(key) ?? 0) + 1);
    if (outcome.offending.length < SHOWN)
      outcome.offending.push({ line: n, event: text.slice(0, 400), errors });
  }
  return outcome;
}

function expectValid(outcome: Outcome): void {
  const report = [
    ...[...outcome.problems].map(([problem, count]) => `${count} x ${problem}`),
    '',
    ...outcome.offending.map((o) => `line ${o.line}: ${o.errors}\n  ${o.event}`),
  ].join('\n');
  expect(outcome.problems.size, `events that do not match schema/events-v1.json:\n${report}`).toBe(0);
}

describe('every event the test suite emitted', () => {
  const file = process.env[TO_VALIDATE_ENV];
  if (file) {
    it(`validates against packages/policy/schema/events-v1.json (${file})`, async () => {
      let size = 0;
      try {
        size = statSync(file).size;
      } catch {
        // Missing is reported below as empty.
      }
      expect(size, `${file} is missing or empty: the test suite emitted no events`).toBeGreaterThan(0);
      const outcome = await validateFile(file);
      expect(outcome.total).toBeGreaterThan(0);
      // The decisions are the audit trail: a suite that never exercised them has tested nothing here.
      expect(outcome.byName['egress.decision'] ?? 0).toBeGreaterThan(0);
      console.log(
        `validated ${outcome.total} events: ${Object.entries(outcome.byName)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
      expectValid(outcome);
    }, 300_000);
  } else {
    it('(run alone) validates the events a real policy and the real emitter produce', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'egress-events-schema-'));
      const audit = join(dir, 'audit.jsonl');
      const saved = process.env[EVENT_AUDIT_FILE_ENV];
      process.env[EVENT_AUDIT_FILE_ENV] = audit;
      try {
        const sink = new Writable({ write: (_c, _e, cb) => cb() });
        const events = createEventEmitter({ destination: sink });
        const before = createPolicy({ version: 1, allow: [{ name: 'api', hosts: ['api.example.com'] }] });
        const after = createPolicy({
          version: 1,
          mode: 'report',
          allow: [{ name: 'api', hosts: ['api.example.com'], methods: ['GET'] }],
          deny: [{ name: 'paste', hosts: ['pastebin.com'] }],
        });
        for (const [i, host] of ['api.example.com', 'pastebin.com', 'other.example'].entries()) {
          const d = after.decide({ scheme: 'https', host, port: 443, method: 'POST', path: '/x' });
          const event: EgressEvent = {
            'event.name': 'egress.decision',
            'egress.schema': 1,
            'egress.source': 'sdk',
            'egress.id': `alone-${i}`,
            'egress.decision': d.result,
            'egress.reason': d.reason,
            'egress.rule': d.rule,
            'egress.mode': d.mode,
            'egress.policy.hash': d.policyHash,
            'egress.hook': 'fetch',
            'url.scheme': d.scheme,
            'server.address': d.host,
            'server.port': d.port,
            'http.request.method': 'POST',
            'url.path': '/x',
            'egress.message': d.message,
          };
          events.emit(event);
        }
        events.emit({
          'event.name': 'egress.policy.reloaded',
          'egress.schema': 1,
          'egress.source': 'edge',
          'egress.policy.hash': after.hash,
          'egress.policy.previous_hash': before.hash,
          'egress.policy.diff': diffPolicies(before, after),
        });
        await events.flush();
        const outcome = await validateFile(audit);
        expect(outcome.total).toBe(4);
        expectValid(outcome);

        // And the validation does catch a bad event.
        const bad = createEventEmitter({ destination: sink });
        bad.emit({ 'event.name': 'egress.decision', 'egress.schema': 1 } as unknown as EgressEvent);
        const failing = await validateFile(audit);
        expect([...failing.problems.keys()].join('\n')).toMatch(/must have required property 'egress.id'/);
        sink.end();
        await once(sink, 'finish');
      } finally {
        if (saved === undefined) delete process.env[EVENT_AUDIT_FILE_ENV];
        else process.env[EVENT_AUDIT_FILE_ENV] = saved;
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
