/**
 * A transparent listener with workers, in network namespaces (test/support/netns.ts): connections from
 * the client namespace are REDIRECTed to the edge's listener, accepted by worker processes (the primary
 * accepts nothing), and each worker reads the original destination (SO_ORIGINAL_DST) from its own
 * accepted socket. Proven by what the servers saw: the allowed address got every request, the other
 * address (not in the policy) saw no connection at all, and the decisions name the original destination.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTopology, type NodeService, repoFileUrl, type Topology } from '../../../test/support/netns.js';

const EDGE_PORT = 15001;
const SERVICE_PORT = 7000;

/** The primary: `startEdgeWorkers` with two workers on a transparent listener; events on stdout. */
const EDGE_SCRIPT = `
import { startEdgeWorkers } from ${JSON.stringify(repoFileUrl('packages/edge/src/index.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const [policy, port] = process.argv.slice(2);
const edge = await startEdgeWorkers({
  policy,
  workers: 2,
  listeners: [{ kind: 'transparent', host: '::', port: Number(port) }],
  watch: false,
});
signalReady({ port: Number(port), pids: edge.workerPids });
serveRequests(() => null, () => edge.close());
`;

/** An HTTP server on each address's SERVICE_PORT, counting connections. Request `stats`. */
const SERVERS_SCRIPT = `
import http from 'node:http';
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const [addresses, port] = [JSON.parse(process.argv[2]), Number(process.argv[3])];
const seen = {};
const servers = [];
for (const address of addresses) {
  seen[address] = 0;
  const server = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end('hello from ' + address);
  });
  server.on('connection', () => seen[address]++);
  await new Promise((resolve) => server.listen(port, address, resolve));
  servers.push(server);
}
signalReady({ addresses });
serveRequests(
  () => ({ ...seen }),
  () => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))),
);
`;

let topology: Topology;
let work: string;
let edge: NodeService<{ port: number; pids: number[] }>;
let servers: NodeService<{ addresses: string[] }>;
let A: string;
let B: string;

beforeAll(async () => {
  topology = await createTopology();
  work = await mkdtemp(join(tmpdir(), 'egress-guard-workers-transparent-'));
  A = topology.internet.address;
  B = (await topology.addInternetAddress()).address;
  servers = await topology.startNodeIn(
    topology.internet,
    topology.writeScript('servers.mts', SERVERS_SCRIPT),
    [JSON.stringify([A, B]), String(SERVICE_PORT)],
  );
  const policyFile = join(work, 'egress.yaml');
  await writeFile(
    policyFile,
    `version: 1
allow:
  - name: service-a
    addresses: [${A}/32]
    schemes: [http]
    ports: [${SERVICE_PORT}]
`,
  );
  edge = await topology.startNodeIn(
    topology.edge,
    topology.writeScript('edge.mts', EDGE_SCRIPT),
    [policyFile, String(EDGE_PORT)],
    { timeoutMs: 60_000 },
  );
  await topology.redirect(EDGE_PORT, { dports: [SERVICE_PORT], family: 4 });
}, 120_000);

afterAll(async () => {
  await topology?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

function decisions(): Array<Record<string, unknown>> {
  return edge
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{"level"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e['event.name'] === 'egress.decision');
}

async function curl(url: string): Promise<{ status: number; body: string }> {
  const r = await topology.exec(
    topology.client,
    'curl',
    ['-sS', '--noproxy', '*', '--max-time', '8', '-w', '\n%{http_code}', url],
    { timeoutMs: 15_000 },
  );
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}

describe('transparent listener with workers', { timeout: 120_000 }, () => {
  it('workers read each redirected connection’s original destination: allowed to A, refused to B (B saw nothing)', async () => {
    expect(edge.ready.pids).toHaveLength(2);
    const allowed = await Promise.all(
      Array.from({ length: 12 }, () => curl(`http://${A}:${SERVICE_PORT}/x`)),
    );
    for (const r of allowed) expect(r).toEqual({ status: 200, body: `hello from ${A}` });
    const refused = await curl(`http://${B}:${SERVICE_PORT}/x`);
    expect(refused.status).toBe(403);

    const seen = await servers.request<Record<string, number>>({ op: 'stats' });
    expect(seen[A]).toBe(12);
    expect(seen[B]).toBe(0);

    // Workers hand their lines to the primary in batches (every few ms), which writes them out: the
    // last decision may land just after curl has its answer. Wait for all 13, never accept fewer.
    await vi.waitFor(() => expect(decisions()).toHaveLength(13), { timeout: 10_000, interval: 50 });
    const made = decisions();
    expect(made).toHaveLength(13);
    const toA = made.filter((d) => d['egress.decision'] === 'allowed');
    expect(toA).toHaveLength(12);
    for (const d of toA) {
      expect(d).toMatchObject({
        'egress.hook': 'edge.transparent',
        'network.peer.address': A,
        'egress.rule': 'service-a',
      });
    }
    const toB = made.filter((d) => d['egress.decision'] === 'denied');
    expect(toB).toHaveLength(1);
    expect(toB[0]).toMatchObject({ 'egress.hook': 'edge.transparent', 'server.address': B });
  });
});
