/**
 * learn → diff → enforce with the real SDK: a service in report mode with an empty policy calls
 * `http://localhost:PORT` (a loopback server). The learned policy must let the same call through when
 * enforced: `localhost` resolves to a special-purpose address, which enforcing checks at dial time.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { install, uninstall } from '@egress-guard/node';
import { createPolicy, loadPolicyFile } from '@egress-guard/policy';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RecordingServer, startHttpServer } from '../../../test/support/index.js';
import { main } from '../src/index.js';

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
let server: RecordingServer;
let log: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'egress-learn-loopback-'));
  server = await startHttpServer();
  log = join(dir, 'report.jsonl');
  writeFileSync(log, '');
  // Report mode, nothing allowed: every call is reported, none refused.
  install({
    policy: createPolicy({ version: 1, mode: 'report' }),
    destination: { write: (line: string) => appendFileSync(log, line) },
  });
  try {
    for (const path of ['/v1/items', '/v1/items/7']) {
      const res = await fetch(`http://localhost:${server.port}${path}`);
      expect(res.status).toBe(200);
      await res.text();
    }
  } finally {
    await uninstall();
  }
  expect(server.requests).toHaveLength(2);
});

afterEach(async () => {
  await uninstall();
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('learn → diff → enforce over loopback, with the real SDK', () => {
  it('the report-mode log records the special-purpose address localhost was dialled at', () => {
    const events = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const dials = events.filter((e) => String(e['egress.hook']).endsWith('.dial'));
    expect(dials.length).toBeGreaterThan(0);
    for (const d of dials) {
      expect(d).toMatchObject({ 'egress.decision': 'reported', 'server.address': 'localhost' });
      expect(['127.0.0.1', '::1']).toContain(d['network.peer.address']);
    }
  });

  it('learn allows localhost on that scheme and port with privateAddresses: allow; diff finds nothing; enforcing it lets the call through', async () => {
    const learned = join(dir, 'learned.yaml');
    const r = await run('learn', log, '--out', learned);
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(learned, 'utf8');
    const policy = await loadPolicyFile(learned);
    const rules = policy.document.allow ?? [];
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({
      hosts: ['localhost'],
      schemes: ['http'],
      ports: [server.port],
      methods: ['GET'],
      paths: ['/v1/**'],
      privateAddresses: 'allow',
    });
    expect(text).toMatch(/# review: dialled at a special-purpose .*127\.0\.0\.1/);

    const diff = await run('diff', learned, log);
    expect(diff.code, diff.out).toBe(0);
    expect(diff.out).toMatch(/nothing would be denied/);

    install({ policy, destination: { write: () => {} } });
    const res = await fetch(`http://localhost:${server.port}/v1/items`);
    expect(res.status).toBe(200);
    await res.text();
    expect(server.requests).toHaveLength(3);
  });

  it('without privateAddresses: allow, diff says the dial would be denied (private_address), as enforcing does', async () => {
    const learned = readFileSync(join(dir, 'learned.yaml'), 'utf8');
    const strict = join(dir, 'strict.yaml');
    writeFileSync(strict, learned.replace(/^ *privateAddresses: allow\n/m, ''));
    const diff = await run('diff', strict, log);
    expect(diff.code).not.toBe(0);
    expect(diff.out).toMatch(
      /private_address .*: \d+, \d+ destinations?\n +\d+ {2}http:\/\/localhost:\d+ at (127\.0\.0\.1|::1)$/m,
    );

    install({ policy: await loadPolicyFile(strict), destination: { write: () => {} } });
    const before = server.connections;
    const error = await fetch(`http://localhost:${server.port}/v1/items`).then(
      () => undefined,
      (e: Error) => e,
    );
    expect((error?.cause as { reason?: string } | undefined)?.reason).toBe('private_address');
    expect(server.connections).toBe(before);
  });
});
