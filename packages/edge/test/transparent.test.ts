/**
 * Transparent mode end to end, in network namespaces (test/support/netns.ts):
 *
 *   client ─────────── edge ────────────────────────────── internet
 *   curl               nat PREROUTING: TCP 80/443 from     HTTPS + HTTP servers on addresses
 *                      the client → REDIRECT to the        A, B (the attacker's) and C;
 *                      listener of the edge under test     the edge's DNS server
 *                      (a Node process in this namespace)
 *
 * The edge reads SNI/Host, resolves the name through its own resolver (the DNS server in the internet
 * namespace) and lets the connection through only if the original destination (SO_ORIGINAL_DST) is
 * among the answers. Every block is proven by what the internet servers saw (zero connections), read
 * from the server process, and by the edge's decision event (`egress.decision`, JSON lines on stdout).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTopology, type NodeService, repoFileUrl, type Topology } from '../../../test/support/netns.js';
import { createTestPki, type TestPki } from '../../../test/support/pki.js';

/** Port of the transparent listener inside the edge namespace (a private namespace: no collisions). */
const EDGE_PORT = 15001;

/**
 * The edge under test, run inside the edge namespace. THIS IS THE ONLY PLACE THAT USES THE EDGE'S API
 * (`startEdge` with the options of packages/edge/src/config.ts). It starts a transparent listener on
 * `[::]:EDGE_PORT` (IPv4 arrives as `::ffff:`), enforces the policy file argv[2], resolves names only
 * through the DNS server argv[4] (`ip:53`, in the internet namespace), and writes its audit events
 * (`egress.decision`) to stdout as JSON lines, the default of the policy package's event emitter, which
 * the test reads. It prints `READY` once listening and closes when its stdin ends.
 */
const EDGE_SCRIPT = `
import { startEdge } from ${JSON.stringify(repoFileUrl('packages/edge/src/index.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const [policy, port, resolver] = process.argv.slice(2);
const edge = await startEdge({
  policy,
  listeners: [{ kind: 'transparent', host: '::', port: Number(port) }],
  dns: { servers: [resolver] },
  watch: false,
});
signalReady({ port: Number(port) });
serveRequests(() => null, () => edge.close());
`;

/**
 * The internet: for each address, an HTTPS server on :443 and an HTTP server on :80 that record what
 * reached them, and the DNS server (test/support/dns-server.ts, bound to 127.0.0.1) behind a relay on
 * the first address's :53. Requests: `stats`, `reset`.
 */
const INTERNET_SCRIPT = `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { startDnsServer } from ${JSON.stringify(repoFileUrl('test/support/dns-server.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};

const config = JSON.parse(process.argv[2]);
const tls = { cert: readFileSync(config.certPath), key: readFileSync(config.keyPath) };
const closers = [];

function recorder(server, label) {
  const stats = { connections: 0, requests: [], servernames: [] };
  const sockets = new Map();
  server.on('connection', (socket) => {
    stats.connections++;
    sockets.set(socket, 0);
    socket.on('error', () => {});
  });
  server.on('secureConnection', (socket) => stats.servernames.push(socket.servername || false));
  server.on('tlsClientError', () => {});
  server.on('request', (req, res) => {
    stats.requests.push({ method: req.method, url: req.url, host: req.headers.host });
    res.setHeader('connection', 'close');
    res.end(JSON.stringify({ server: label }));
  });
  closers.push(() => {
    for (const s of sockets.keys()) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return {
    snapshot: () => ({
      ...stats,
      bytesReceived: [...sockets].reduce((sum, [s, base]) => sum + s.bytesRead - base, 0),
    }),
    reset() {
      stats.connections = 0;
      stats.requests.length = 0;
      stats.servernames.length = 0;
      for (const s of [...sockets.keys()]) {
        if (s.destroyed) sockets.delete(s);
        else sockets.set(s, s.bytesRead);
      }
    },
  };
}

const listen = (server, port, host) =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });

const servers = {};
for (const address of config.addresses) {
  const tlsServer = https.createServer(tls);
  const plain = http.createServer();
  servers[address] = { https: recorder(tlsServer, 'https ' + address), http: recorder(plain, 'http ' + address) };
  await listen(tlsServer, 443, address);
  await listen(plain, 80, address);
}

// JSON cannot carry functions: { rotate: [[records...], ...] } answers the n-th query with the n-th
// list (the last one from then on), as a DNS server rotating its answers does.
const table = {};
for (const [name, answer] of Object.entries(config.dns)) {
  table[name] = Array.isArray(answer) ? answer : (n) => answer.rotate[Math.min(n, answer.rotate.length) - 1];
}
const dns = await startDnsServer(table);
closers.push(() => dns.close());
// The test DNS server binds 127.0.0.1 only; the edge reaches it through this relay on :53.
const udp = dgram.createSocket(config.dnsAddress.includes(':') ? 'udp6' : 'udp4');
udp.on('message', (msg, rinfo) => {
  const back = dgram.createSocket('udp4');
  const timer = setTimeout(() => back.close(), 3000);
  back.on('message', (reply) => {
    clearTimeout(timer);
    udp.send(reply, rinfo.port, rinfo.address);
    back.close();
  });
  back.send(msg, dns.port, '127.0.0.1');
});
await new Promise((resolve) => udp.bind(53, config.dnsAddress, resolve));
closers.push(() => new Promise((resolve) => udp.close(resolve)));
const tcp = net.createServer((socket) => {
  const upstream = net.connect(dns.port, '127.0.0.1');
  socket.on('error', () => upstream.destroy());
  upstream.on('error', () => socket.destroy());
  socket.pipe(upstream).pipe(socket);
});
await listen(tcp, 53, config.dnsAddress);
closers.push(() => new Promise((resolve) => tcp.close(resolve)));

signalReady({ addresses: config.addresses, dns: config.dnsAddress + ':53' });
serveRequests(
  (message) => {
    if (message.op === 'reset') {
      for (const s of Object.values(servers)) {
        s.https.reset();
        s.http.reset();
      }
      dns.reset();
      return null;
    }
    if (message.op === 'stats') {
      const out = {};
      for (const [address, s] of Object.entries(servers)) out[address] = { https: s.https.snapshot(), http: s.http.snapshot() };
      return { servers: out, dns: dns.queries.map((q) => ({ name: q.name, type: q.type })) };
    }
    throw new Error('unknown op ' + message.op);
  },
  () => Promise.all(closers.map((close) => close())),
);
`;

interface ServerStats {
  connections: number;
  bytesReceived: number;
  requests: Array<{ method: string; url: string; host: string }>;
  servernames: Array<string | false>;
}
interface InternetStats {
  servers: Record<string, { https: ServerStats; http: ServerStats }>;
  dns: Array<{ name: string; type: string }>;
}
/** The fields of the policy package's DecisionEvent the assertions read. */
interface DecisionEvent {
  'event.name': 'egress.decision';
  'egress.decision': 'allowed' | 'denied' | 'reported';
  'egress.reason': string;
  'tls.client.server_name'?: string;
  'server.address'?: string;
  'network.peer.address'?: string;
  [key: string]: unknown;
}

const POLICY = `version: 1
allow:
  - name: api
    hosts: [api.example.test]
    schemes: [https, http]
    ports: [443, 80]
    # The namespaces use RFC 1918 and unique-local addresses, which are special-purpose.
    privateAddresses: allow
  - name: round-robin
    hosts: [rr.example.test, pool.example.test]
    privateAddresses: allow
`;

let topology: Topology;
let pki: TestPki;
let work: string;
let edge: NodeService<{ port: number }>;
let internet: NodeService<{ addresses: string[]; dns: string }>;
/** Internet addresses: A serves the allowed names, B is the attacker's (`evil`), C is A's round-robin peer. */
let A: string;
let A6: string;
let B: string;
let C: string;
/** Decision events already seen before the current test. */
let decisionsBefore = 0;

function decisions(): DecisionEvent[] {
  const out: DecisionEvent[] = [];
  for (const line of edge.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const event = JSON.parse(line) as Partial<DecisionEvent>;
      if (event['event.name'] === 'egress.decision') out.push(event as DecisionEvent);
    } catch {
      // Not an event line.
    }
  }
  return out;
}

/** Waits (bounded) until the edge has written `count` decision events in this test, and returns them. */
async function newDecisions(count: number, timeoutMs = 5_000): Promise<DecisionEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = decisions().slice(decisionsBefore);
    if (fresh.length >= count || Date.now() > deadline) return fresh;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A child that died makes every later case fail for the wrong reason: say so, with its stderr. */
function assertAlive(service: NodeService, what: string): void {
  const { exitCode, signalCode } = service.child;
  if (exitCode !== null || signalCode !== null) {
    throw new Error(`the ${what} process exited (${signalCode ?? exitCode}): ${service.stderr()}`);
  }
}

const stats = (): Promise<InternetStats> => internet.request<InternetStats>({ op: 'stats' });
const seenBy = (s: InternetStats, address: string): { https: ServerStats; http: ServerStats } => {
  const server = s.servers[address];
  if (!server) throw new Error(`no server on ${address}`);
  return server;
};

/**
 * curl in the client namespace. `--resolve` pins the name to the address the client connects to: the
 * client never asks any DNS, so what it dials is exactly what the test chose.
 */
async function curl(
  url: string,
  resolve?: string,
): Promise<{ exit: number | null; status: number; body: string; stderr: string }> {
  const args = [
    '-sS',
    '--noproxy',
    '*',
    '--max-time',
    '8',
    '--cacert',
    pki.caCertPath,
    '-w',
    '\n%{http_code}',
  ];
  if (resolve) args.push('--resolve', resolve);
  args.push(url);
  const r = await topology.exec(topology.client, 'curl', args, { timeoutMs: 15_000 });
  assertAlive(edge, 'edge');
  assertAlive(internet, 'internet servers');
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  return { exit: r.code, status, body: lines.join('\n'), stderr: r.stderr };
}

beforeAll(async () => {
  topology = await createTopology();
  pki = await createTestPki();
  work = await mkdtemp(join(tmpdir(), 'egress-guard-transparent-'));
  A = topology.internet.address;
  A6 = topology.internet.address6;
  B = (await topology.addInternetAddress()).address;
  C = (await topology.addInternetAddress()).address;

  // Every server holds a certificate valid for every name, the attacker's too: what stops a spoofed
  // connection must be the edge, not a certificate error.
  const leaf = await pki.issue([
    'api.example.test',
    'rr.example.test',
    'pool.example.test',
    'blocked.example.test',
  ]);
  const ttl = 60;
  const dns = {
    'api.example.test': [
      { type: 'A', data: A, ttl },
      { type: 'AAAA', data: A6, ttl },
    ],
    'blocked.example.test': [{ type: 'A', data: A, ttl }],
    'pool.example.test': [
      { type: 'A', data: A, ttl },
      { type: 'A', data: C, ttl },
    ],
    // First query: A only; every later one: C only. The edge must keep A (TTL 60 s) after seeing C.
    'rr.example.test': { rotate: [[{ type: 'A', data: A, ttl }], [{ type: 'A', data: C, ttl }]] },
  };
  internet = await topology.startNodeIn(
    topology.internet,
    topology.writeScript('internet.mts', INTERNET_SCRIPT),
    [
      JSON.stringify({
        addresses: [A, A6, B, C],
        dnsAddress: A,
        dns,
        certPath: leaf.certPath,
        keyPath: leaf.keyPath,
      }),
    ],
  );

  const policyFile = join(work, 'egress.yaml');
  await writeFile(policyFile, POLICY);
  edge = await topology.startNodeIn(topology.edge, topology.writeScript('edge.mts', EDGE_SCRIPT), [
    policyFile,
    String(EDGE_PORT),
    `${A}:53`,
  ]);
  await topology.redirect(EDGE_PORT, { dports: [80, 443] });
});

afterAll(async () => {
  await topology?.destroy();
  await pki?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

beforeEach(async () => {
  await internet.request({ op: 'reset' });
  decisionsBefore = decisions().length;
});

describe('transparent mode: allowed traffic flows end to end', () => {
  it('an allowed name whose DNS answer is the original destination reaches the server', async () => {
    const r = await curl('https://api.example.test/hello', `api.example.test:443:${A}`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ server: `https ${A}` });

    const seen = seenBy(await stats(), A).https;
    expect(seen.connections).toBe(1);
    expect(seen.servernames).toEqual(['api.example.test']);
    expect(seen.requests).toEqual([{ method: 'GET', url: '/hello', host: 'api.example.test' }]);
    expect(seen.bytesReceived).toBeGreaterThan(0);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'allowed', 'egress.reason': 'allowed' });
  });

  it('over IPv6: the AAAA answer matches the IPv6 original destination', async () => {
    const r = await curl('https://api.example.test/v6', `api.example.test:443:[${A6}]`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ server: `https ${A6}` });
    expect(seenBy(await stats(), A6).https.requests).toEqual([
      { method: 'GET', url: '/v6', host: 'api.example.test' },
    ]);
  });

  it('plaintext HTTP on port 80 is decided by its Host header and forwarded', async () => {
    const r = await curl('http://api.example.test/plain', `api.example.test:80:${A}`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ server: `http ${A}` });
    const seen = seenBy(await stats(), A);
    expect(seen.http.requests).toEqual([{ method: 'GET', url: '/plain', host: 'api.example.test' }]);
    expect(seen.https.connections).toBe(0);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'allowed' });
  });

  it('a name with two A records: connections to either address are accepted', async () => {
    const toA = await curl('https://pool.example.test/', `pool.example.test:443:${A}`);
    const toC = await curl('https://pool.example.test/', `pool.example.test:443:${C}`);
    expect([toA.status, toC.status]).toEqual([200, 200]);
    const s = await stats();
    expect(seenBy(s, A).https.connections).toBe(1);
    expect(seenBy(s, C).https.connections).toBe(1);
  });

  it('round-robin DNS: an answer seen earlier still counts for its TTL after the answer changed', async () => {
    // Query 1 answers A; every later query answers C. A filter that kept only the latest answer would
    // deny the third connection (false positive); answers must be kept per name for their TTL.
    const first = await curl('https://rr.example.test/1', `rr.example.test:443:${A}`);
    const second = await curl('https://rr.example.test/2', `rr.example.test:443:${C}`);
    const third = await curl('https://rr.example.test/3', `rr.example.test:443:${A}`);
    const s = await stats();
    const queries = s.dns.filter((q) => q.name === 'rr.example.test' && q.type === 'A').length;
    // A resolver that caches answers itself (c-ares 1.33 in Node 20.18 does, per channel, for the TTL)
    // never sends the second query, so never learns C: the diagnosis is in the message.
    expect(
      [first.status, second.status, third.status],
      `${first.stderr}${second.stderr}${third.stderr}; A queries the DNS server received: ${queries}; ` +
        `decisions: ${JSON.stringify((await newDecisions(3)).map((d) => d['egress.reason']))}`,
    ).toEqual([200, 200, 200]);
    expect(seenBy(s, A).https.requests.map((q) => q.url)).toEqual(['/1', '/3']);
    expect(seenBy(s, C).https.requests.map((q) => q.url)).toEqual(['/2']);
    // The edge did ask again when C was not among the answers it had.
    expect(queries).toBeGreaterThanOrEqual(2);
  });
});

describe('transparent mode: denied traffic never reaches the internet', () => {
  it('SNI spoofing: an allowed name sent to another address (B) is denied dns_mismatch; B saw nothing', async () => {
    const r = await curl('https://api.example.test/', `api.example.test:443:${B}`);
    expect(r.status).not.toBe(200);
    const s = await stats();
    expect(seenBy(s, B).https.connections).toBe(0);
    expect(seenBy(s, B).https.bytesReceived).toBe(0);
    expect(seenBy(s, A).https.connections).toBe(0);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'dns_mismatch' });
  });

  it('Host spoofing in plaintext HTTP: an allowed Host sent to B is denied dns_mismatch; B saw nothing', async () => {
    const r = await curl('http://api.example.test/', `api.example.test:80:${B}`);
    expect(r.status).not.toBe(200);
    const s = await stats();
    expect(seenBy(s, B).http.connections).toBe(0);
    expect(seenBy(s, B).http.requests).toEqual([]);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'dns_mismatch' });
  });

  it('a name no rule allows is denied; the server saw nothing and the name was never looked up', async () => {
    const r = await curl('https://blocked.example.test/', `blocked.example.test:443:${A}`);
    expect(r.status).not.toBe(200);
    const s = await stats();
    expect(seenBy(s, A).https.connections).toBe(0);
    // DNS is an exfiltration channel: a denied name must not leave the edge as a query.
    expect(s.dns.filter((q) => q.name === 'blocked.example.test')).toEqual([]);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'host_not_allowed' });
  });

  it('a ClientHello without SNI is denied sni_missing; the server saw nothing', async () => {
    // curl sends no server_name for an IP-literal URL.
    const r = await curl(`https://${A}/`);
    expect(r.status).not.toBe(200);
    expect(seenBy(await stats(), A).https.connections).toBe(0);
    const [decision] = await newDecisions(1);
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': 'sni_missing' });
  });

  it('a connection straight to the edge listener (not redirected) is refused: nothing is dialled', async () => {
    // SO_ORIGINAL_DST then reports the listener itself; forwarding would loop, so the edge must deny.
    const r = await curl(
      `https://api.example.test:${EDGE_PORT}/`,
      `api.example.test:${EDGE_PORT}:${topology.edge.address}`,
    );
    expect(r.status).not.toBe(200);
    const s = await stats();
    for (const address of [A, B, C]) expect(seenBy(s, address).https.connections, address).toBe(0);
    const fresh = await newDecisions(1);
    expect(fresh.filter((d) => d['egress.decision'] === 'allowed')).toEqual([]);
  });
});
