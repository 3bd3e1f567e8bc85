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
    expect(r.code, r.out).toBe(1);
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
    const r = await run('learn', logs.edge, '--mode', 'report', '--report-until', '2099-03-01');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^mode: report\nreportUntil: "2099-03-01"$/m);
    const file = join(dir, 'report-mode.yaml');
    writeFileSync(file, `${r.out}\n`);
    expect((await run('lint', file)).code).toBe(0);
  });

  it('refuses bad input in one line', async () => {
    expect((await run('learn')).code).toBe(2); // usage errors and unreadable files exit 2
    const missing = await run('learn', join(dir, 'nope.jsonl'));
    expect(missing).toMatchObject({ code: 2 });
    expect(missing.err).toMatch(/nope\.jsonl: file not found/);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, 'just an application log line\n');
    const none = await run('learn', empty);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no decision events in 1 file \(1 other line skipped\)/);
    expect((await run('learn', logs.sdk, '--wildcard-threshold', '1')).code).toBe(2);
    expect((await run('learn', logs.sdk, '--report-until', '2026-03-01')).code).toBe(2);
  });

  it('refuses a --report-until that is not a date, or is past, instead of writing a file lint rejects', async () => {
    const out = join(dir, 'not-written.yaml');
    const bad = await run('learn', logs.sdk, '--mode', 'report', '--report-until', 'notadate', '--out', out);
    expect(bad.code).toBe(2);
    expect(bad.err.split('\n')).toHaveLength(1);
    expect(bad.err).toMatch(/--report-until: "notadate" is not a date \(write 2027-01-31/);
    const past = await run(
      'learn',
      logs.sdk,
      '--mode',
      'report',
      '--report-until',
      '2020-01-01',
      '--out',
      out,
    );
    expect(past.code).toBe(2);
    expect(past.err).toMatch(/--report-until: 2020-01-01 is in the past/);
    expect(() => readFileSync(out)).toThrow(/ENOENT/);
  });

  it('leaves out what the policy in force denied in enforce mode, listed in comments; --include-denied learns it', async () => {
    // The edge enforced from minute 80: hooks.slack.com flows after that were denied (host_not_allowed).
    expect(text).toMatch(
      /^# Seen, and denied by the policy in force in enforce mode; not allowed here \(--include-denied learns them\):$/m,
    );
    expect(text).toMatch(
      /^# {3}https:\/\/hooks\.slack\.com:443 \(service payments\): 5 decisions, host_not_allowed, last /m,
    );
    // Its reported flows (before minute 80) are still learned: only the denied decisions are left out.
    expect(text).toMatch(/# 5 decisions \(0 allowed, 5 reported\)[^\n]*\n[^\n]*hooks edge\.explicit/);
    const included = await run('learn', logs.edge, '--include-denied');
    expect(included.code).toBe(0);
    expect(included.out).toMatch(/# 10 decisions \(0 allowed, 5 reported, 5 denied\)/);
    expect(included.out).not.toMatch(/not allowed here/);
  });

  it("learns the edge DNS guard's questions: their types and private answers, never a wildcard over names only looked up", async () => {
    const file = join(dir, 'dns.jsonl');
    const question = (name: string, type: string, answers?: string[]) =>
      JSON.stringify({
        'event.name': 'egress.dns',
        'egress.schema': 1,
        'egress.source': 'edge',
        'egress.id': `q-${name}-${type}`,
        'egress.decision': 'reported',
        'egress.reason': 'host_not_allowed',
        'egress.mode': 'report',
        'egress.policy.hash': 'h',
        'egress.hook': 'edge.dns',
        'dns.question.name': name,
        'egress.dns.type': type,
        'egress.dns.rcode': 'NOERROR',
        'egress.dns.answer_count': answers?.length ?? 0,
        ...(answers ? { 'dns.answers': answers } : {}),
        'network.transport': 'udp',
        'egress.duration_ms': 1,
      });
    const tunnel = ['a1', 'b2', 'c3', 'd4', 'e5', 'f6'].map((l) => question(`${l}.tunnel.example`, 'TXT'));
    writeFileSync(file, `${[...tunnel, question('cache.internal.test', 'A', ['10.0.0.9'])].join('\n')}\n`);
    const r = await run('learn', file);
    expect(r.code, r.err).toBe(0);
    const rules = parsePolicy(r.out).document.allow ?? [];
    // Six names under one parent, only looked up: listed one by one, never *.tunnel.example.
    expect(rules.flatMap((x) => x.hosts ?? []).filter((h) => h.endsWith('tunnel.example'))).toHaveLength(6);
    expect(r.out).not.toMatch(/\*\.tunnel\.example/);
    expect(rules.find((x) => x.hosts?.includes('a1.tunnel.example'))?.dns?.types).toContain('TXT');
    expect(rules.find((x) => x.hosts?.includes('cache.internal.test'))).toMatchObject({
      privateAddresses: 'allow',
    });
    writeFileSync(file.replace('.jsonl', '.yaml'), r.out);
    const again = await run('diff', file.replace('.jsonl', '.yaml'), file);
    expect(again.code, again.out).toBe(0);
  });

  it('learns per scheme and port: a PUT /admin seen on one port is not allowed on another', async () => {
    const file = join(dir, 'ports.jsonl');
    const line = (port: number, method: string, path: string, scheme = 'https') =>
      JSON.stringify({
        'event.name': 'egress.decision',
        'egress.schema': 1,
        'egress.source': 'sdk',
        'egress.id': `p-${port}-${method}`,
        'egress.decision': 'reported',
        'egress.reason': 'host_not_allowed',
        'egress.mode': 'report',
        'egress.policy.hash': 'h',
        'egress.hook': 'fetch',
        'url.scheme': scheme,
        'server.address': 'api.example.com',
        'server.port': port,
        'http.request.method': method,
        'url.path': path,
      });
    const lines = [
      line(8443, 'PUT', '/admin'),
      line(443, 'GET', '/status'),
      line(443, 'POST', '/v1/x'),
      line(80, 'GET', '/status', 'http'),
    ];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = await run('learn', file);
    expect(r.code, r.err).toBe(0);
    const policy = parsePolicy(r.out);
    const decide = (scheme: 'https' | 'http', port: number, method: string, path: string) =>
      policy.decide({ scheme, host: 'api.example.com', port, method, path }).result;
    expect(decide('https', 8443, 'PUT', '/admin')).toBe('allowed');
    expect(decide('https', 443, 'GET', '/status')).toBe('allowed');
    expect(decide('https', 443, 'POST', '/v1/x')).toBe('allowed');
    expect(decide('http', 80, 'GET', '/status')).toBe('allowed');
    expect(decide('https', 443, 'PUT', '/admin')).toBe('denied');
    expect(decide('http', 8443, 'PUT', '/admin')).toBe('denied');
    expect(decide('https', 443, 'POST', '/status')).toBe('denied');
    expect(decide('https', 443, 'GET', '/v1/x')).toBe('denied');
    expect(decide('http', 80, 'POST', '/v1/x')).toBe('denied');
    expect(decide('http', 443, 'GET', '/status')).toBe('denied');
  });
});
