import { describe, expect, it } from 'vitest';
import { EDGE_DEFAULTS, EdgeConfigError, resolveEdgeOptions } from '../../src/index.js';
import { policyOf } from '../helpers/edge-kit.js';

const policy = policyOf('version: 1\n');

describe('DNS guard options', () => {
  it('default to no listener, a 5 minute binding floor, REFUSED and 200 questions per second', () => {
    const o = resolveEdgeOptions({ policy, listeners: [{ kind: 'explicit', port: 0 }] });
    expect(o.dns).toMatchObject({ listen: [], minTtl: 300_000, refusal: 'refused', rateLimit: 200 });
    expect(EDGE_DEFAULTS.dns.minTtl).toBe(300_000);
  });

  it('take listen addresses as text or objects, and list every problem', () => {
    const o = resolveEdgeOptions({
      policy,
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { listen: ['0.0.0.0:5353', '[::1]:53', { port: 0 }], minTtl: '10m', refusal: 'nxdomain' },
    });
    expect(o.dns.listen).toEqual([
      { host: '0.0.0.0', port: 5353 },
      { host: '::1', port: 53 },
      { host: '127.0.0.1', port: 0 },
    ]);
    expect(o.dns.minTtl).toBe(600_000);
    expect(() =>
      resolveEdgeOptions({
        policy,
        listeners: [{ kind: 'explicit', port: 0 }],
        dns: { listen: ['nowhere'], minTtl: 'soon', refusal: 'drop' as 'refused', rateLimit: 0 },
      }),
    ).toThrow(EdgeConfigError);
    try {
      resolveEdgeOptions({
        policy,
        listeners: [{ kind: 'explicit', port: 0 }],
        dns: { listen: ['nowhere'], minTtl: 'soon', refusal: 'drop' as 'refused', rateLimit: 0 },
      });
    } catch (error) {
      const problems = (error as EdgeConfigError).problems.join('\n');
      expect(problems).toContain('dns.listen[0]');
      expect(problems).toContain('dns.minTtl');
      expect(problems).toContain('dns.refusal: expected refused or nxdomain, got "drop"');
      expect(problems).toContain('dns.rateLimit');
    }
  });
});

describe('the DNS guard at start', () => {
  it('refuses to forward to itself', async () => {
    const { startEdge } = await import('../../src/index.js');
    await expect(
      startEdge({
        policy,
        listeners: [{ kind: 'explicit', port: 0 }],
        dns: { listen: ['127.0.0.1:5399'], servers: ['127.0.0.1:5399'] },
        watch: false,
        defaultMetrics: false,
      }),
    ).rejects.toThrow(/would forward to itself/);
  });

  it('refuses a wildcard listener whose resolver is a local address on the same port', async () => {
    const { startEdge } = await import('../../src/index.js');
    await expect(
      startEdge({
        policy,
        listeners: [{ kind: 'explicit', port: 0 }],
        dns: { listen: ['0.0.0.0:5398'], servers: ['127.0.0.1:5398'] },
        watch: false,
        defaultMetrics: false,
      }),
    ).rejects.toThrow(/would forward to itself/);
  });

  it('starts wildcard listeners on IPv4 and IPv6, same port, whose resolver is another machine', async () => {
    const { startEdge } = await import('../../src/index.js');
    // 192.0.2.1 (TEST-NET-1) is never an address of this machine; nothing is sent to it here. `[::]`
    // listens on IPv6 only, so it does not take 0.0.0.0's port (EADDRINUSE, as docs/edge.md's example had).
    const edge = await startEdge({
      policy,
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { listen: ['0.0.0.0:5397', '[::]:5397'], servers: ['192.0.2.1:5397'] },
      watch: false,
      defaultMetrics: false,
    });
    await edge.close();
  });
});
