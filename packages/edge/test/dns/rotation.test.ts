/**
 * Transparent mode with the DNS guard as the client's resolver, in network namespaces: a name whose
 * addresses rotate. The client resolves the name through the guard (address A), the name then moves to
 * B, and the client, holding A from its own cache, connects to A again: the transparent listener's
 * claims check finds the guard's binding (kept at least `--dns-min-ttl`) and lets it through, where the
 * edge's own resolver alone (which now says B) would call it a forgery. The control: a name the client
 * never resolved through the guard is still checked against the edge's resolver and refused.
 *
 *   client ──────────── edge ───────────────────────────────────── internet
 *   resolv.conf → edge  DNS guard on :53, transparent listener      HTTPS on A and B
 *   curl                (nat PREROUTING tcp 443 → 15001),
 *                       upstream DNS on its loopback (rotating)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTopology,
  type NodeService,
  repoFileUrl,
  type Topology,
} from '../../../../test/support/netns.js';
import { createTestPki, type TestPki } from '../../../../test/support/pki.js';
import { useResolverIn } from './dns-kit.js';

const EDGE_PORT = 15001;

const EDGE_SCRIPT = `
import { parsePolicy } from ${JSON.stringify(repoFileUrl('packages/policy/src/index.ts'))};
import { startEdge } from ${JSON.stringify(repoFileUrl('packages/edge/src/index.ts'))};
import { startDnsServer } from ${JSON.stringify(repoFileUrl('test/support/dns-server.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const [listen, A, B] = process.argv.slice(2);
// api.rotate.test: the first A question gets A, every later one B (TTL 1 s). other.rotate.test: always B.
const upstream = await startDnsServer({
  'api.rotate.test': (n) => [{ type: 'A', data: n === 1 ? A : B, ttl: 1 }],
  'other.rotate.test': [{ type: 'A', data: B, ttl: 1 }],
});
const policy = parsePolicy(\`version: 1
allow:
  - name: rotating
    hosts: [api.rotate.test, other.rotate.test]
    # The namespaces use RFC 1918 addresses, which are special-purpose.
    privateAddresses: allow
\`);
const edge = await startEdge({
  policy,
  listeners: [{ kind: 'transparent', host: '::', port: ${EDGE_PORT} }],
  dns: { listen: [listen], servers: ['127.0.0.1:' + upstream.port], minRetention: '100ms', minTtl: '5m' },
  watch: false,
  defaultMetrics: false,
});
signalReady({ dns: edge.dnsListeners });
serveRequests(
  (m) => (m.op === 'queries' ? upstream.queries : null),
  async () => { await edge.close(); await upstream.close(); },
);
`;

const INTERNET_SCRIPT = `
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const config = JSON.parse(process.argv[2]);
const tls = { cert: readFileSync(config.certPath), key: readFileSync(config.keyPath) };
const seen = {};
const servers = [];
for (const address of config.addresses) {
  seen[address] = 0;
  const server = https.createServer(tls, (req, res) => res.end(address));
  server.on('connection', () => seen[address]++);
  await new Promise((resolve) => server.listen(443, address, resolve));
  servers.push(server);
}
signalReady({});
serveRequests(
  () => ({ ...seen }),
  () => Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(r); }))),
);
`;

let topology: Topology;
let pki: TestPki;
let edge: NodeService<{ dns: Array<{ host: string; port: number }> }>;
let internet: NodeService;
let A: string;
let B: string;
let restoreResolver: (() => void) | undefined;

beforeAll(async () => {
  topology = await createTopology();
  pki = await createTestPki();
  A = topology.internet.address;
  B = (await topology.addInternetAddress()).address;
  const leaf = await pki.issue(['api.rotate.test', 'other.rotate.test']);
  internet = await topology.startNodeIn(
    topology.internet,
    topology.writeScript('inet.mts', INTERNET_SCRIPT),
    [JSON.stringify({ addresses: [A, B], certPath: leaf.certPath, keyPath: leaf.keyPath })],
  );
  edge = await topology.startNodeIn(topology.edge, topology.writeScript('edge.mts', EDGE_SCRIPT), [
    `${topology.edge.address}:53`,
    A,
    B,
  ]);
  await topology.redirect(EDGE_PORT, { dports: [443], family: 4 });
  restoreResolver = useResolverIn(topology.client.name, topology.edge.address);
});

afterAll(async () => {
  restoreResolver?.();
  await topology?.destroy();
  await pki?.cleanup();
});

async function curl(url: string, resolve?: string): Promise<{ status: string; body: string }> {
  const args = ['-sS', '-4', '--max-time', '8', '--cacert', pki.caCertPath, '-w', '\n%{http_code}'];
  if (resolve) args.push('--resolve', resolve);
  const r = await topology.exec(topology.client, 'curl', [...args, url], { timeoutMs: 15_000 });
  const lines = r.stdout.split('\n');
  const status = lines.pop() ?? '';
  return { status, body: lines.join('\n') };
}

const seen = () => internet.request<Record<string, number>>({});

describe('a name that rotates, with the DNS guard as the resolver', () => {
  it('keeps the address the client was given valid for new connections after the name moved', async () => {
    // 1. The client resolves through the guard (A) and connects: allowed, through the binding.
    const first = await curl('https://api.rotate.test/');
    expect(first).toEqual({ status: '200', body: A });

    // 2. The name moves to B: the guard now answers B.
    const moved = await topology.exec(topology.client, 'dig', ['+short', '+tries=1', 'api.rotate.test', 'A']);
    expect(moved.stdout.trim()).toBe(B);
    await new Promise((r) => setTimeout(r, 1500)); // past the record's TTL and the resolver's retention

    // 3. The client still holds A (its own cache) and connects to it again: the binding holds.
    const again = await curl('https://api.rotate.test/', `api.rotate.test:443:${A}`);
    expect(again).toEqual({ status: '200', body: A });
    expect((await seen())[A]).toBe(2);

    // Control: a name never answered by the guard, claimed on A while it resolves to B, is refused.
    const forged = await curl('https://other.rotate.test/', `other.rotate.test:443:${A}`);
    expect(forged.status).not.toBe('200');
    expect((await seen())[A]).toBe(2);
    const decisions = edge
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"egress.decision"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(
      decisions
        .filter((d) => d['tls.client.server_name'] === 'api.rotate.test')
        .map((d) => d['egress.decision']),
    ).toEqual(['allowed', 'allowed']);
    expect(decisions.find((d) => d['tls.client.server_name'] === 'other.rotate.test')).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'dns_mismatch',
    });
  });
});
