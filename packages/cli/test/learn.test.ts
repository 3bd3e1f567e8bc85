import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '@egress-guard/policy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/index.js';
import { BUCKETS, COUK, FEW, type Logs, PAGES, SHARDS, writeLogs } from './learn-logs.js';

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
let logs: Logs;
let learned: string;
let text: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'egress-learn-'));
  logs = writeLogs(dir);
  learned = join(dir, 'learned.yaml');
  const r = await run('learn', logs.sdk, logs.edge, '--out', learned);
  expect(r.code, r.err).toBe(0);
  expect(r.err).toMatch(/learned\.yaml: \d+ rules from [\d,]+ decisions/);
  text = readFileSync(learned, 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The learned document, parsed by the same loader the product uses. */
const doc = () => parsePolicy(text).document;
const serviceRules = (service: string) => doc().services?.[service]?.allow ?? [];
const ruleFor = (service: string, host: string) => serviceRules(service).find((r) => r.hosts?.includes(host));

describe('egress-guard learn', () => {
  it('writes a policy that egress-guard lint accepts', async () => {
    const r = await run('lint', learned);
    expect(r.code, `${r.out}\n${r.err}\n${text}`).toBe(0);
    expect(r.out).toMatch(/ok, \d+ rules/);
  });

  it('allows what was seen: enforcing it over the same logs denies only what an explicit deny refused', async () => {
    const r = await run('diff', learned, logs.sdk, logs.edge, '--json');
    expect(r.code, r.out).toBe(2);
    const services = JSON.parse(r.out) as {
      service: string;
      wouldDeny: number;
      reasons: Record<string, { top: { destination: string }[] }>;
    }[];
    expect(services.find((s) => s.service === 'search')?.wouldDeny).toBe(0);
    const payments = services.find((s) => s.service === 'payments');
    expect(Object.keys(payments?.reasons ?? {})).toEqual(['host_not_allowed']);
    expect(payments?.reasons.host_not_allowed?.top.map((t) => t.destination)).toEqual([
      'https://pastebin.com:443',
    ]);
  });

  it('writes per-service sections with schemes, ports, methods and path prefixes seen', () => {
    expect(Object.keys(doc().services ?? {}).sort()).toEqual(['payments', 'search']);
    expect(doc().allow ?? []).toEqual([]);
    const stripe = ruleFor('payments', 'api.stripe.com');
    expect(stripe).toMatchObject({ methods: ['GET', 'POST'], paths: ['/v1/**'] });
    expect(stripe?.schemes).toBeUndefined(); // https only: the default
    expect(stripe?.ports).toBeUndefined(); // 443 only: the default
    expect(ruleFor('payments', 'db.internal.example')).toMatchObject({ schemes: ['tcp'], ports: [5432] });
    expect(serviceRules('payments').find((r) => r.addresses)).toMatchObject({
      addresses: ['203.0.113.10/32'],
      schemes: ['http'],
      ports: [8080],
      methods: ['GET'],
      paths: ['/metrics'],
    });
    expect(ruleFor('search', 'api.search.example')).toMatchObject({ methods: ['GET'], paths: ['/v2/**'] });
    expect(ruleFor('search', 'exfil.example')).toMatchObject({ methods: ['PUT'], paths: ['/upload'] });
    // The edge saw hooks.slack.com over TLS only: a host rule with no method or path restriction.
    const slack = ruleFor('payments', 'hooks.slack.com');
    expect(slack).toBeDefined();
    expect(slack?.methods).toBeUndefined();
    expect(slack?.paths).toBeUndefined();
    // The edge's client addresses become the service's sources.
    expect(doc().services?.payments?.sources).toEqual(['10.0.1.5/32', '10.0.1.6/32']);
  });

  it('groups five or more siblings into a wildcard, never over a public suffix', () => {
    const hosts = serviceRules('payments').flatMap((r) => r.hosts ?? []);
    expect(hosts).toContain('*.api.example.net');
    for (const s of SHARDS) expect(hosts).not.toContain(s);
    // s3.eu-west-1.amazonaws.com, github.io (private section) and co.uk (ICANN) are public suffixes.
    for (const h of [...BUCKETS, ...PAGES, ...COUK, ...FEW]) expect(hosts).toContain(h);
    expect(hosts.filter((h) => h.startsWith('*'))).toEqual(['*.api.example.net']);
    expect(text).toMatch(/# 6 names: s1\.api\.example\.net, s2\.api\.example\.net, /);
    expect(text).toMatch(
      /# one of 6 names under github\.io, not grouped into \*\.github\.io: github\.io is a public suffix/,
    );
    expect(text).toMatch(/- name: payments-any\.api\.example\.net\n {8}hosts: \["\*\.api\.example\.net"\]/);
  });

  it('comments every rule with counts, first and last seen, sources and services', () => {
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.includes('name: payments-api.stripe.com'));
    const comments = lines.slice(at - 4, at).join('\n');
    expect(comments).toMatch(
      /# [\d,]+ decisions \([\d,]+ allowed, \d+ reported\), first 2026-01-31T08:00:00Z, last 2026-01-31T10:5\d:00Z/,
    );
    expect(comments).toMatch(/# seen by edge and sdk; service payments; hooks edge\.explicit, fetch/);
    expect(comments).toMatch(/not allowed by the policy in force: method_not_allowed \d+/);
    expect(text).toMatch(/# seen only as DNS look-ups/);
    expect(text).toMatch(
      /^# egress-guard policy learned from 2 log files: [\d,]+ decisions, 2026-01-31T08:00:00Z to /m,
    );
    expect(text).toMatch(/\(3 non-event lines skipped\)/);
  });

  it('never allows what an explicit deny refused: it lists it in a comment instead', () => {
    expect(serviceRules('payments').some((r) => r.hosts?.includes('pastebin.com'))).toBe(false);
    expect(text).toMatch(/^# {3}pastebin\.com \(service payments\): \d+ decisions, rule paste-sites, last /m);
  });

  it('--wildcard-threshold moves the line', async () => {
    const out3 = join(dir, 'learned-3.yaml');
    expect((await run('learn', logs.sdk, '--out', out3, '--wildcard-threshold', '3')).code).toBe(0);
    expect(readFileSync(out3, 'utf8')).toMatch(/hosts: \["\*\.example\.org"\]/);
    const out7 = join(dir, 'learned-7.yaml');
    expect((await run('learn', logs.sdk, '--out', out7, '--wildcard-threshold', '7')).code).toBe(0);
    const seven = readFileSync(out7, 'utf8');
    expect(seven).not.toMatch(/\*\.api\.example\.net/);
    expect(seven).toMatch(/hosts: \[s1\.api\.example\.net\]/);
    expect((await run('lint', out7)).code).toBe(0);
  });

  it('--mode report with --report-until writes a report-mode policy; to stdout without --out', async () => {
    const r = await run('learn', logs.edge, '--mode', 'report', '--report-until', '2026-03-01');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^mode: report\nreportUntil: "2026-03-01"$/m);
    const file = join(dir, 'report-mode.yaml');
    writeFileSync(file, `${r.out}\n`);
    expect((await run('lint', file)).code).toBe(0);
  });

  it('refuses bad input in one line', async () => {
    expect((await run('learn')).code).toBe(1);
    const missing = await run('learn', join(dir, 'nope.jsonl'));
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.err).toMatch(/nope\.jsonl: file not found/);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, 'just an application log line\n');
    const none = await run('learn', empty);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no decision events in 1 file \(1 other line skipped\)/);
    expect((await run('learn', logs.sdk, '--wildcard-threshold', '1')).code).toBe(1);
    expect((await run('learn', logs.sdk, '--report-until', '2026-03-01')).code).toBe(1);
  });
});
