/**
 * The proxy credentials' secrets file (YAML/JSON, or a directory of one file per service as Kubernetes
 * projects Secrets), its problems (never quoting a token), the Proxy-Authorization checks, and the
 * per-source failure window.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailureLimiter,
  readSecretsFile,
  SecretsFileError,
  tokenDigest,
  verifyProxyAuthorization,
} from '../src/proxy-auth/index.js';

const PAY = 'pay-0123456789abcdef0123';
const OPS = 'ops-fedcba9876543210fedc';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edge-secrets-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

function problemsOf(path: string): readonly string[] {
  try {
    readSecretsFile(path);
  } catch (error) {
    if (error instanceof SecretsFileError) return error.problems;
    throw error;
  }
  throw new Error('expected a SecretsFileError');
}

describe('the secrets file', () => {
  it('reads tokens and digests, in YAML and JSON', async () => {
    const yaml = await file(
      'ok.yaml',
      `services:\n  payments: ${PAY}\n  ops:\n    - sha256:${tokenDigest(OPS).toString('hex')}\n    - ${OPS}x\n`,
    );
    const read = readSecretsFile(yaml);
    expect([...read.credentials.keys()]).toEqual(['payments', 'ops']);
    expect(read.credentials.get('payments')).toEqual([tokenDigest(PAY)]);
    expect(read.credentials.get('ops')).toEqual([tokenDigest(OPS), tokenDigest(`${OPS}x`)]);
    expect(read.warnings).toEqual([]);
    const json = await file('ok.json', JSON.stringify({ services: { payments: [PAY] } }));
    expect(readSecretsFile(json).credentials.get('payments')).toEqual([tokenDigest(PAY)]);
  });

  it('lists every problem without quoting a token', async () => {
    const path = await file(
      'bad.yaml',
      `services:\n  payments: [short]\n  "a:b": [${PAY}]\n  ops: [${PAY}]\n  empty: []\n`,
    );
    const problems = problemsOf(path);
    expect(problems).toEqual([
      'services.payments[0]: expected a token of at least 16 characters (letters, digits, . _ ~ + / = -) or sha256: and 64 hex digits',
      'services.a:b: a service name is letters, digits, ".", "_" and "-" (no ":")',
      'services.empty: no token',
    ]);
    expect(problems.join('\n')).not.toContain(PAY);
    expect(problems.join('\n')).not.toContain('short');
    expect(problemsOf(await file('syntax.yaml', `services:\n  payments: [${PAY}\n`))[0]).toMatch(
      /^not valid YAML or JSON/,
    );
    expect(problemsOf(await file('shape.yaml', `payments: ${PAY}\n`))).toHaveLength(1);
    expect(problemsOf(join(dir, 'missing.yaml'))).toEqual(['cannot read it (ENOENT)']);
  });

  it('refuses one token for two services', async () => {
    const path = await file('twice.yaml', `services:\n  payments: [${PAY}]\n  ops: [${PAY}]\n`);
    expect(problemsOf(path)).toEqual([
      'services.ops[0]: the same token is given to payments: a token must name one service',
    ]);
  });

  it('reads a directory of one file per service, as Kubernetes mounts projected Secrets', async () => {
    const mount = join(dir, 'mount');
    const data = join(mount, '..2026_12_03');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'payments'), `${PAY}\n`, { mode: 0o400 });
    await writeFile(join(data, 'ops'), `# rotated on Monday\n${OPS}\n${OPS}y\n`, { mode: 0o400 });
    await symlink('..2026_12_03', join(mount, '..data'));
    await symlink('..data/payments', join(mount, 'payments'));
    await symlink('..data/ops', join(mount, 'ops'));
    const read = readSecretsFile(mount);
    expect([...read.credentials.keys()].sort()).toEqual(['ops', 'payments']);
    expect(read.credentials.get('ops')).toEqual([tokenDigest(OPS), tokenDigest(`${OPS}y`)]);
    expect(read.warnings).toEqual([]);
  });

  it('warns about a file every user can read', async () => {
    const path = join(dir, 'open.yaml');
    await writeFile(path, `services:\n  payments: [${PAY}]\n`, { mode: 0o644 });
    expect(readSecretsFile(path).warnings).toEqual([
      `${path} is readable by every user of this host (mode 0644): make it 0600 or 0640 (Kubernetes: defaultMode: 0400)`,
    ]);
  });
});

describe('Proxy-Authorization', () => {
  const table = new Map([
    ['payments', [tokenDigest(PAY)]],
    ['ops', [tokenDigest(OPS)]],
  ]);
  const one = (value: string) => verifyProxyAuthorization({ status: 'one', value }, table);
  const basic = (user: string, token: string) =>
    `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

  it('accepts Basic service:token and Bearer token, scheme in any case', () => {
    expect(one(basic('payments', PAY))).toEqual({ ok: true, service: 'payments' });
    expect(one(`bearer ${OPS}`)).toEqual({ ok: true, service: 'ops' });
  });

  it('refuses the rest, naming the service only when it is one', () => {
    expect(one(basic('payments', OPS))).toMatchObject({ ok: false, failure: 'invalid', service: 'payments' });
    expect(one(basic(PAY, PAY))).toEqual({
      ok: false,
      failure: 'invalid',
      detail: 'Basic credentials for no known service',
    });
    expect(one('Basic not*base64')).toMatchObject({ ok: false, failure: 'invalid' });
    expect(one(`Basic ${Buffer.from(PAY).toString('base64')}`)).toMatchObject({
      ok: false,
      failure: 'invalid',
    });
    expect(one('Bearer ')).toMatchObject({ ok: false, failure: 'invalid' });
    expect(one(`Token ${PAY}`)).toMatchObject({ ok: false, failure: 'invalid' });
    expect(verifyProxyAuthorization({ status: 'absent' }, table)).toMatchObject({
      ok: false,
      failure: 'missing',
    });
    expect(verifyProxyAuthorization({ status: 'several' }, table)).toMatchObject({
      ok: false,
      failure: 'invalid',
    });
  });
});

describe('the failure window', () => {
  it('blocks a source past the limit until its window ends', () => {
    let now = 0;
    const limiter = new FailureLimiter({ maxFailures: 3, windowMs: 10_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(limiter.blockedFor('10.0.0.1')).toBeUndefined();
      limiter.fail('10.0.0.1');
    }
    expect(limiter.blockedFor('10.0.0.1')).toBe(10);
    expect(limiter.blockedFor('10.0.0.2')).toBeUndefined();
    now = 9_001;
    expect(limiter.blockedFor('10.0.0.1')).toBe(1);
    now = 10_000;
    expect(limiter.blockedFor('10.0.0.1')).toBeUndefined();
  });
});
