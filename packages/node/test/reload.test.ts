/**
 * Policy reload from a file: a valid change is in force at once (reloaded event with old and new hash
 * and a diff), an invalid one keeps the old policy (rejected event with every problem, line and column).
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { install, uninstall } from '../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  lookupVia,
  type RecordingServer,
  rejection,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let dir: string;
let file: string;
let sink: EventSink;

const rule = (name: string, host: string) => `  - name: ${name}
    hosts: [${host}]
    ports: ["1024-65535"]
    privateAddresses: allow
`;
const policyText = (...rules: string[]) => `version: 1\nallow:\n${rules.join('')}`;
const V1 = policyText(rule('api', 'api.example.test'));
const V2 = policyText(rule('api', 'api.example.test'), rule('billing', 'billing.example.test'));

/** Replaces the file the way editors and ConfigMap updates do: write elsewhere, rename over it. */
async function replaceFile(text: string): Promise<void> {
  const next = join(dir, `.next-${Math.random().toString(36).slice(2)}`);
  await writeFile(next, text);
  await rename(next, file);
}

async function waitFor(name: string, count = 1, timeoutMs = 5000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const events = sink.named(name);
    if (events.length >= count) return events[count - 1]!;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${name} event within ${timeoutMs} ms`);
}

const url = (host: string) => `https://${host}:${api.port}/`;

async function status(host: string): Promise<number | string> {
  try {
    const res = await fetch(url(host));
    await res.text();
    return res.status;
  } catch (error) {
    return ((error as Error).cause as { reason?: string })?.reason ?? String(error);
  }
}

function installFromFile(watch?: boolean) {
  sink = eventSink();
  return install({ policyFile: file, watch, lookup: lookupVia(dns), ca: pki.caCertPem, destination: sink });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    'api.example.test': [{ type: 'A', data: '127.0.0.1' }],
    'billing.example.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  api = await startHttpsServer({ pki, names: ['api.example.test', 'billing.example.test'] });
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'egress-guard-reload-'));
  file = join(dir, 'egress.yaml');
  await writeFile(file, V1);
});

afterEach(async () => {
  await uninstall();
  await rm(dir, { recursive: true, force: true });
  api.reset();
});

afterAll(async () => {
  await Promise.all([api.close(), dns.close()]);
  await pki.cleanup();
});

describe('reload from a watched file', () => {
  it('a valid change is in force without a restart; the reloaded event has both hashes and the diff', async () => {
    const guard = installFromFile();
    const loaded = sink.named('egress.policy.loaded')[0]!;
    expect(loaded['egress.policy.file']).toBe(file);
    const firstHash = guard.policy.hash;
    expect(loaded['egress.policy.hash']).toBe(firstHash);
    expect(await status('billing.example.test')).toBe('host_not_allowed');

    await replaceFile(V2);
    const reloaded = await waitFor('egress.policy.reloaded');
    expect(reloaded).toMatchObject({
      'egress.policy.previous_hash': firstHash,
      'egress.policy.hash': guard.policy.hash,
      'egress.policy.diff': { added: ['allow:billing'], removed: [], changed: [] },
    });
    expect(guard.policy.hash).not.toBe(firstHash);
    expect(await status('billing.example.test')).toBe(200);
    // Decisions carry the hash of the policy that made them.
    const hashes = sink.decisions().map((e) => e['egress.policy.hash']);
    expect(hashes).toEqual([firstHash, guard.policy.hash]);
  });

  it('a changed and a removed rule are named in the diff', async () => {
    const guard = installFromFile();
    await replaceFile(V2);
    await waitFor('egress.policy.reloaded');
    await replaceFile(
      policyText(
        rule('billing', 'billing.example.test').replace('privateAddresses: allow', 'privateAddresses: deny'),
      ),
    );
    const second = await waitFor('egress.policy.reloaded', 2);
    expect(second['egress.policy.diff']).toEqual({
      added: [],
      removed: ['allow:api'],
      changed: ['allow:billing'],
    });
    expect(await status('api.example.test')).toBe('host_not_allowed');
    expect(await status('billing.example.test')).toBe('private_address');
    expect(guard.policy.rules.map((r) => r.name)).toEqual(['billing']);
  });

  it('an invalid file keeps the old policy in force and emits a rejected event with every problem', async () => {
    const guard = installFromFile();
    const hash = guard.policy.hash;
    await replaceFile(
      `version: 1\nallow:\n  - name: api\n    hosts: [api.example.test]\n    prots: [443]\n  - name: broad\n    hosts: ["*.com"]\n`,
    );
    const rejected = await waitFor('egress.policy.rejected');
    expect(rejected['egress.policy.hash']).toBe(hash);
    expect(rejected['egress.policy.file']).toBe(file);
    const problems = rejected['egress.policy.problems'] as string[];
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.some((p) => /^5:\d+ /.test(p) && p.includes('prots'))).toBe(true);
    expect(problems.some((p) => p.includes('*.com'))).toBe(true);
    expect(rejected.level).toBe(40);
    expect(guard.policy.hash).toBe(hash);
    expect(await status('api.example.test')).toBe(200);
    expect(sink.named('egress.policy.reloaded')).toEqual([]);
  });

  it('a deleted file is rejected too; the policy stays', async () => {
    const guard = installFromFile();
    const hash = guard.policy.hash;
    await rm(file);
    expect(await guard.reload()).toBe(false);
    expect(sink.named('egress.policy.rejected')[0]!['egress.policy.problems']).toEqual(
      expect.arrayContaining([expect.stringContaining('file not found')]),
    );
    expect(guard.policy.hash).toBe(hash);
  });
});

describe('reload() by hand', () => {
  it('with watch: false, a change is picked up only by reload()', async () => {
    const guard = installFromFile(false);
    await replaceFile(V2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.named('egress.policy.reloaded')).toEqual([]);
    expect(await guard.reload()).toBe(true);
    expect(sink.named('egress.policy.reloaded')).toHaveLength(1);
    expect(await status('billing.example.test')).toBe(200);
  });

  it('an unchanged file is a no-op (no event)', async () => {
    const guard = installFromFile(false);
    expect(await guard.reload()).toBe(true);
    expect(sink.named('egress.policy.reloaded')).toEqual([]);
  });

  it('open breakers start afresh after a reload', async () => {
    const guard = installFromFile(false);
    const decision = guard.decide({ scheme: 'https', host: 'api.example.test', port: api.port });
    for (let i = 0; i < 40; i++) {
      const admission = guard.admit(decision, 'https://api.example.test');
      if (admission?.admitted) admission.ticket.fail(new Error('down'));
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(guard.breakers.state(`api|https://api.example.test`)).toBe('open');
    await replaceFile(V2);
    expect(await guard.reload()).toBe(true);
    expect(guard.breakers.state(`api|https://api.example.test`)).toBeUndefined();
  });

  it('reload() without a policy file is an options error', async () => {
    sink = eventSink();
    const guard = install({
      policy: (await import('@egress-guard/policy')).parsePolicy(V1),
      destination: sink,
    });
    const error = await rejection(guard.reload());
    expect(error).toMatchObject({ code: 'EGRESS_ERR_INVALID_OPTIONS' });
  });
});
