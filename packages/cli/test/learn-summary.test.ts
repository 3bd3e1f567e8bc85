import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, type SummaryEvent } from '@egress-guard/policy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

// A service in summary mode: its allowed traffic is in egress.summary lines, its denials are decisions.

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const HASH = 'c'.repeat(64);

function summaryLine(fields: Partial<SummaryEvent>): string {
  const event: SummaryEvent = {
    'event.name': 'egress.summary',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': 'payments',
    'egress.rule': 'stripe',
    'egress.policy.hash': HASH,
    'egress.outcome': 'ok',
    'url.scheme': 'https',
    'server.address': 'api.stripe.com',
    'server.port': 443,
    'egress.summary.start': '2026-01-31T10:00:00.000Z',
    'egress.summary.end': '2026-01-31T10:01:00.000Z',
    'egress.summary.count': 1000,
    'egress.bytes.sent': 1,
    'egress.bytes.received': 1,
    'egress.summary.duration_p50_ms': 10,
    'egress.summary.duration_p90_ms': 20,
    'egress.summary.duration_p99_ms': 30,
    'egress.summary.duration_max_ms': 40,
    ...fields,
  };
  return JSON.stringify({ level: 30, time: '2026-01-31T10:01:00.000Z', ...event, msg: 'egress summary' });
}

function decisionLine(i: number, host: string, result: 'allowed' | 'denied', method = 'GET'): string {
  return JSON.stringify({
    level: result === 'allowed' ? 30 : 40,
    time: '2026-01-31T10:00:05.000Z',
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': 'payments',
    'egress.id': `d-${i}`,
    'egress.decision': result,
    'egress.reason': result === 'allowed' ? 'allowed' : 'host_not_allowed',
    ...(result === 'allowed' ? { 'egress.rule': 'github' } : {}),
    'egress.mode': 'enforce',
    'egress.policy.hash': HASH,
    'egress.hook': 'fetch',
    'url.scheme': 'https',
    'url.path': '/v1/x',
    'server.address': host,
    'server.port': 443,
    'http.request.method': method,
  });
}

let dir: string;
let log: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'egress-learn-summary-'));
  log = join(dir, 'summary-mode.jsonl');
  writeFileSync(
    log,
    [
      summaryLine({}),
      summaryLine({ 'egress.outcome': 'error', 'error.type': 'ECONNRESET', 'egress.summary.count': 5 }),
      summaryLine({
        'egress.summary.start': '2026-01-31T10:01:00.000Z',
        'egress.summary.end': '2026-01-31T10:02:00.000Z',
        'egress.summary.count': 995,
      }),
      // A destination seen both as a decision (GET /v1/x) and in a summary: its methods are not all known.
      decisionLine(1, 'api.github.com', 'allowed'),
      summaryLine({
        'egress.rule': 'github',
        'server.address': 'api.github.com',
        'egress.summary.count': 50,
      }),
      summaryLine({
        'url.scheme': 'tcp',
        'egress.rule': 'db',
        'server.address': '10.0.0.7',
        'server.port': 5432,
      }),
      decisionLine(2, 'pastebin.com', 'denied', 'POST'),
      // A malformed summary is skipped as an event of another kind.
      summaryLine({ 'egress.summary.count': 0 }),
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('summary events in learn, diff and report', () => {
  it('learn counts a summary as the requests it stands for, and leaves methods and paths open', async () => {
    const out = join(dir, 'learned.yaml');
    const r = await run('learn', log, '--out', out);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/ from 3,052 decisions/);
    const text = readFileSync(out, 'utf8');
    const rules = parsePolicy(text).document.services?.payments?.allow ?? [];
    const stripe = rules.find((x) => x.hosts?.includes('api.stripe.com'));
    expect(stripe).toBeDefined();
    expect(stripe?.methods).toBeUndefined();
    const github = rules.find((x) => x.hosts?.includes('api.github.com'));
    // One decision said GET /v1/x; the 50 in the summary could have been anything.
    expect(github?.methods).toBeUndefined();
    expect(github?.paths).toBeUndefined();
    const db = rules.find((x) => x.addresses?.includes('10.0.0.7/32'));
    expect(db).toMatchObject({ schemes: ['tcp'], ports: [5432] });
    expect(text).toContain('2,000 decisions (2,000 allowed)');
    expect(text).toContain('2,000 of them counted in summaries (egress.summary)');
    expect(text).toContain('methods and paths not restricted: summaries (egress.summary) do not log them');
    // The policy in force denied pastebin.com in enforce mode: left out, and said so.
    expect(rules.some((x) => x.hosts?.includes('pastebin.com'))).toBe(false);
    expect(text).toMatch(/^# {3}https:\/\/pastebin\.com:443 POST \/\S* \(service payments\): 1 decision, /m);
    const included = await run('learn', log, '--include-denied');
    const withDenied = parsePolicy(included.out).document.services?.payments?.allow ?? [];
    expect(withDenied.find((x) => x.hosts?.includes('pastebin.com'))).toMatchObject({ methods: ['POST'] });
  });

  it('diff weighs a summary by its count', async () => {
    const policy = join(dir, 'no-stripe.yaml');
    writeFileSync(
      policy,
      'version: 1\nallow:\n  - name: github\n    hosts: [api.github.com]\n  - name: db\n    addresses: [10.0.0.7/32]\n    schemes: [tcp]\n    ports: [5432]\n',
    );
    const r = await run('diff', policy, log, '--json');
    expect(r.code, r.out).toBe(1);
    const [payments] = JSON.parse(r.out) as {
      service: string;
      decisions: number;
      wouldDeny: number;
      reasons: Record<string, { count: number; top: { destination: string; count: number }[] }>;
    }[];
    expect(payments?.decisions).toBe(3052);
    expect(payments?.wouldDeny).toBe(2001);
    expect(payments?.reasons.host_not_allowed?.top).toEqual([
      { destination: 'https://api.stripe.com:443', count: 2000 },
      { destination: 'https://pastebin.com:443', count: 1 },
    ]);
  });

  it('report counts them, charts them at the start of their interval, and says how many came from summaries', async () => {
    const html = join(dir, 'report.html');
    const r = await run('report', log, '--html', html);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('3,052 decisions (3,051 allowed, 0 reported, 1 denied)');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(
      '3,050 of the decisions are allowed requests counted in 5 summaries (egress.summary)',
    );
  });
});
