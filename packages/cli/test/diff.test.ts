import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'egress-diff-'));
  logs = writeLogs(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('egress-guard diff', () => {
  it('shows, per service, what enforcing the policy would deny: counts and top destinations per reason; exit 1', async () => {
    const r = await run('diff', logs.policyFile, logs.sdk, logs.edge, '--top', '2');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /^.*policy\.yaml \(sha256:[0-9a-f]{12}\), enforced over [\d,]+ logged decisions: [\d,]+ would be denied$/m,
    );
    const payments = r.out.slice(r.out.indexOf('service payments:'), r.out.indexOf('service search:'));
    expect(payments).toMatch(/^service payments: [\d,]+ decisions, [\d,]+ would be denied$/m);
    // hooks.slack.com, the DNS look-up, db.internal.example and the 27 sibling names.
    expect(payments).toMatch(
      /^ {2}host_not_allowed \(no allow rule lists this host name\): \d+, 30 destinations$/m,
    );
    expect(payments).toMatch(/^ {9}10 {2}https:\/\/hooks\.slack\.com:443$/m);
    expect(payments).toMatch(/^ {2}method_not_allowed \([^)]*\): 20, 20 destinations$/m);
    expect(payments).toMatch(/^ {10}1 {2}https:\/\/api\.stripe\.com:443 GET \/v1\/customers\/cus_\d+$/m);
    expect(payments).toMatch(
      /^ {2}explicit_deny \([^)]*\): 6, 1 destination\n {10}6 {2}https:\/\/pastebin\.com:443$/m,
    );
    expect(payments).toMatch(
      /^ {2}address_not_allowed \([^)]*\): 6, 1 destination\n {10}6 {2}http:\/\/203\.0\.113\.10:8080$/m,
    );
    // The top two per reason, then how many more.
    expect(payments).toMatch(/^ {13}\.\.\. 28 more$/m);
    const search = r.out.slice(r.out.indexOf('service search:'));
    expect(search).toMatch(/^service search: 30 decisions, 30 would be denied$/m);
    expect(search).toMatch(
      /^ {2}host_not_allowed \([^)]*\): 30, 2 destinations\n {9}20 {2}https:\/\/api\.search\.example:443\n {9}10 {2}https:\/\/exfil\.example:443$/m,
    );
  });

  it('exit 0 when the policy allows everything the logs show', async () => {
    const open = join(dir, 'open.yaml');
    const hosts = [
      ...SHARDS,
      ...BUCKETS,
      ...PAGES,
      ...COUK,
      ...FEW,
      'api.stripe.com',
      'hooks.slack.com',
      'pastebin.com',
    ];
    writeFileSync(
      open,
      `version: 1
allow:
  - name: web
    hosts: [${hosts.join(', ')}, api.search.example, exfil.example]
    schemes: [https]
  - name: db
    hosts: [db.internal.example]
    schemes: [tcp]
    ports: [5432]
  - name: telemetry
    hosts: [telemetry.vendor.example]
  - name: metrics
    addresses: [203.0.113.10/32]
    schemes: [http]
    ports: [8080]
`,
    );
    const r = await run('diff', open, logs.sdk, logs.edge);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/nothing would be denied/);
    expect(r.code).toBe(0);
  });

  it('says when a logged service has no section in the policy, and --json gives the same figures', async () => {
    const log = join(dir, 'billing.jsonl');
    writeFileSync(
      log,
      `${JSON.stringify({
        'event.name': 'egress.decision',
        'egress.schema': 1,
        'egress.source': 'sdk',
        'service.name': 'billing',
        'egress.id': 'b-1',
        'egress.decision': 'allowed',
        'egress.reason': 'allowed',
        'egress.mode': 'enforce',
        'egress.policy.hash': 'a'.repeat(64),
        'egress.hook': 'fetch',
        'url.scheme': 'https',
        'server.address': 'api.stripe.com',
        'server.port': 443,
        'http.request.method': 'GET',
        'url.path': '/v2/x',
      })}\n`,
    );
    const r = await run('diff', logs.policyFile, log);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /^service billing \[not in the policy: its top-level rules decide\]: 1 decision, 1 would be denied$/m,
    );
    expect(r.out).toMatch(/method_not_allowed/);
    const j = await run('diff', logs.policyFile, log, '--json');
    expect(JSON.parse(j.out)).toEqual([
      {
        service: 'billing',
        inPolicy: false,
        decisions: 1,
        wouldDeny: 1,
        reasons: {
          method_not_allowed: {
            count: 1,
            destinations: 1,
            top: [{ destination: 'https://api.stripe.com:443 GET /v2/x', count: 1 }],
          },
        },
      },
    ]);
  });

  it('refuses bad input in one line', async () => {
    expect((await run('diff', logs.policyFile)).code).toBe(2); // usage errors exit 2
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 2\n');
    const r = await run('diff', bad, logs.sdk);
    expect(r.code).toBe(2); // an invalid policy: diff cannot answer
    expect(r.err).toMatch(/bad\.yaml:1:\d+ .*version must be 1/);
    expect((await run('diff', logs.policyFile, logs.sdk, '--top', '0')).code).toBe(2);
  });
});
