import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEdgeArgs } from '../src/commands/edge-args.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('egress-guard edge: the DNS guard flags', () => {
  it('come from --dns, --dns-min-ttl, --dns-refusal, --dns-rate-limit and the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-dns-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'p.yaml'), 'version: 1\n');
    writeFileSync(
      join(dir, 'edge.yaml'),
      'policy: p.yaml\nexplicit: 127.0.0.1:3128\ndns:\n  listen: [127.0.0.1:5300]\n  minTtl: 1m\n',
    );
    const fromFile = parseEdgeArgs(['--config', join(dir, 'edge.yaml'), '--no-admin']);
    expect(fromFile.dns).toMatchObject({ listen: ['127.0.0.1:5300'], minTtl: '1m' });
    const fromFlags = parseEdgeArgs([
      '--config',
      join(dir, 'edge.yaml'),
      '--no-admin',
      '--dns',
      '127.0.0.1:53',
      '--dns',
      '[::1]:53',
      '--dns-min-ttl',
      '2m',
      '--dns-refusal',
      'nxdomain',
      '--dns-rate-limit',
      '50',
    ]);
    expect(fromFlags.dns).toMatchObject({
      listen: ['127.0.0.1:53', '[::1]:53'],
      minTtl: '2m',
      refusal: 'nxdomain',
      rateLimit: '50',
    });
    expect(() =>
      parseEdgeArgs(['--policy', join(dir, 'p.yaml'), '--explicit', ':0', '--dns-refusal', 'x']),
    ).toThrow(/--dns-refusal/);
  });
  it('runs one process when the DNS guard is on, and refuses more workers with it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-dns-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'p.yaml'), 'version: 1\n');
    const base = ['--policy', join(dir, 'p.yaml'), '--explicit', ':0', '--no-admin'];
    expect(parseEdgeArgs([...base, '--dns', '127.0.0.1:0']).workers).toBe(1);
    expect(() => parseEdgeArgs([...base, '--dns', '127.0.0.1:0', '--workers', '2'])).toThrow(
      /the DNS guard runs in a single-process edge/,
    );
  });
});
