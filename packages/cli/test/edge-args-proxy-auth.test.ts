/**
 * The `egress-guard edge` flags of service credentials and name resolution: `--proxy-auth`,
 * `--hosts-file`, `--no-hosts-file`, and the same keys in the config file (paths relative to it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeConfigError, resolveEdgeOptions } from '@egress-guard/edge';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEdgeArgs } from '../src/commands/edge-args.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-args-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BASE = ['--policy', 'egress.yaml', '--explicit', '127.0.0.1:3128'];

describe('--proxy-auth and --hosts-file', () => {
  it('set proxyAuth and dns.hostsFile', () => {
    const o = parseEdgeArgs([
      ...BASE,
      '--proxy-auth',
      '/etc/egress-guard/proxy-auth',
      '--hosts-file',
      '/tmp/hosts',
    ]);
    expect(o).toMatchObject({ proxyAuth: '/etc/egress-guard/proxy-auth', dns: { hostsFile: '/tmp/hosts' } });
    const off = resolveEdgeOptions(parseEdgeArgs([...BASE, '--no-hosts-file']));
    expect(off.dns.hostsFile).toBe(false);
    expect(resolveEdgeOptions(parseEdgeArgs(BASE)).dns.hostsFile).toBe('/etc/hosts');
    expect(resolveEdgeOptions(parseEdgeArgs(BASE)).proxyAuth).toBeUndefined();
  });

  it('reads them from the config file, relative to it; flags win', () => {
    const config = join(dir, 'edge.yaml');
    writeFileSync(
      config,
      'policy: egress.yaml\nexplicit: 127.0.0.1:3128\nproxyAuth: secrets/proxy-auth.yaml\ndns:\n  hostsFile: hosts\n',
    );
    const o = parseEdgeArgs(['--config', config]);
    expect(o).toMatchObject({
      proxyAuth: join(dir, 'secrets/proxy-auth.yaml'),
      dns: { hostsFile: join(dir, 'hosts') },
    });
    expect(parseEdgeArgs(['--config', config, '--proxy-auth', '/abs']).proxyAuth).toBe('/abs');
  });

  it('names the flag of a bad value', () => {
    try {
      parseEdgeArgs([...BASE, '--proxy-auth=']);
      throw new Error('expected an EdgeConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(EdgeConfigError);
      expect((error as EdgeConfigError).problems).toEqual([
        '--proxy-auth: expected the path of the proxy credentials file',
      ]);
    }
  });
});
