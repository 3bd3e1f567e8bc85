/**
 * originalDestination() against the kernel: a client namespace connects through an edge namespace whose
 * nat PREROUTING REDIRECTs ports 443 and 8443 to a listener there, and the listener (a child process in
 * the edge namespace) reports what getsockopt(SO_ORIGINAL_DST) returned for each connection.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, type NodeService, repoFileUrl, type Topology } from '../../../test/support/netns.js';
import { originalDestination, supportsOriginalDestination } from '../src/original-destination.js';

/** What the listener writes back to each client: the result, or the error it threw. */
type Outcome =
  | { ok: { address: string; port: number; family: 4 | 6 }; local: string }
  | { error: string; code?: string; local: string };

/**
 * Listener in a namespace: answers each connection with one JSON line saying what originalDestination
 * returned, so the client learns the outcome of its own connection.
 */
const LISTENER = `
import net from 'node:net';
import { originalDestination } from ${JSON.stringify(repoFileUrl('packages/edge/src/original-destination.ts'))};
import { serveRequests, signalReady } from ${JSON.stringify(repoFileUrl('test/support/netns.ts'))};
const server = net.createServer((socket) => {
  socket.on('error', () => {});
  let outcome;
  try {
    outcome = { ok: originalDestination(socket), local: socket.localAddress };
  } catch (err) {
    outcome = { error: err.message, code: err.code, local: socket.localAddress };
  }
  socket.end(JSON.stringify(outcome) + '\\n');
});
server.listen(0, process.argv[2], () => {
  signalReady({ port: server.address().port, node: process.version });
  serveRequests(() => null, () => new Promise((resolve) => server.close(resolve)));
});
`;

/** Client: connects to each host:port argument in turn and prints one JSON line per target. */
const CLIENT = `
import net from 'node:net';
for (const target of process.argv.slice(2)) {
  const i = target.lastIndexOf(':');
  const host = target.slice(0, i).replace(/^\\[|\\]$/g, '');
  const port = Number(target.slice(i + 1));
  const reply = await new Promise((resolve) => {
    const socket = net.connect(port, host);
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve({ clientError: 'timeout' }); }, 5000);
    socket.on('data', (c) => { data += c; });
    socket.on('end', () => { clearTimeout(timer); try { resolve(JSON.parse(data)); } catch { resolve({ clientError: 'bad reply: ' + data }); } });
    socket.on('error', (e) => { clearTimeout(timer); resolve({ clientError: e.message }); });
  });
  console.log(JSON.stringify({ target, reply }));
}
`;

const hostPort = (host: string, port: number): string =>
  net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;

let topology: Topology;
let clientScript: string;
let dualStack: NodeService<{ port: number }>;
let v4Only: NodeService<{ port: number }>;
let inInternet: NodeService<{ port: number }>;

/** Connects from the client namespace to each target; returns the listener's outcome per target. */
async function connectFromClient(targets: string[]): Promise<Map<string, Outcome>> {
  const r = await topology.runNodeIn(topology.client, clientScript, targets, { tsx: false });
  expect(r.code, r.stderr).toBe(0);
  const out = new Map<string, Outcome>();
  for (const line of r.stdout.trim().split('\n')) {
    const { target, reply } = JSON.parse(line) as {
      target: string;
      reply: Outcome & { clientError?: string };
    };
    if (reply.clientError) throw new Error(`client could not reach ${target}: ${reply.clientError}`);
    out.set(target, reply);
  }
  return out;
}

beforeAll(async () => {
  topology = await createTopology();
  const listener = topology.writeScript('listener.mts', LISTENER);
  clientScript = topology.writeScript('client.mjs', CLIENT);
  [dualStack, v4Only, inInternet] = await Promise.all([
    topology.startNodeIn<{ port: number }>(topology.edge, listener, ['::']),
    topology.startNodeIn<{ port: number }>(topology.edge, listener, ['0.0.0.0']),
    // No NAT rule in the internet namespace: the kernel has no conntrack record to answer from.
    topology.startNodeIn<{ port: number }>(topology.internet, listener, ['::']),
  ]);
  // Only these ports: a connection straight to the edge's own address must stay un-redirected.
  await topology.redirect(dualStack.ready.port, { dports: [443, 8443] });
  await topology.redirect(v4Only.ready.port, { dports: [9443], family: 4 });
});

afterAll(async () => {
  await topology?.destroy();
});

describe('originalDestination: redirected connections', () => {
  it('reads the pre-NAT IPv4 address and port of connections REDIRECTed from 443 and 8443', async () => {
    const { internet } = topology;
    const a = hostPort(internet.address, 443);
    const b = hostPort(internet.address, 8443);
    const got = await connectFromClient([a, b]);
    expect(got.get(a)).toMatchObject({ ok: { address: internet.address, port: 443, family: 4 } });
    expect(got.get(b)).toMatchObject({ ok: { address: internet.address, port: 8443, family: 4 } });
    // The listener really is dual-stack: the IPv4 client arrived as ::ffff:, and was read as IPv4.
    expect(got.get(a)?.local).toBe(`::ffff:${topology.edge.address}`);
  });

  it('reads the pre-NAT IPv6 address and port (ip6tables REDIRECT, IP6T_SO_ORIGINAL_DST)', async () => {
    const { internet } = topology;
    const a = hostPort(internet.address6, 443);
    const b = hostPort(internet.address6, 8443);
    const got = await connectFromClient([a, b]);
    expect(got.get(a)).toMatchObject({ ok: { address: internet.address6, port: 443, family: 6 } });
    expect(got.get(b)).toMatchObject({ ok: { address: internet.address6, port: 8443, family: 6 } });
    expect(got.get(a)?.local).toBe(topology.edge.address6);
  });

  it('reads the original destination on an IPv4-only listener', async () => {
    const target = hostPort(topology.internet.address, 9443);
    const got = await connectFromClient([target]);
    expect(got.get(target)).toMatchObject({
      ok: { address: topology.internet.address, port: 9443, family: 4 },
      local: topology.edge.address,
    });
  });

  it('keeps concurrent connections apart (each socket gets its own destination)', async () => {
    const extra = await topology.addInternetAddress();
    const targets = [
      hostPort(topology.internet.address, 443),
      hostPort(extra.address, 443),
      hostPort(extra.address, 8443),
      hostPort(extra.address6, 443),
    ];
    const runs = await Promise.all([connectFromClient(targets), connectFromClient([...targets].reverse())]);
    for (const got of runs) {
      expect(got.get(targets[0]!)).toMatchObject({ ok: { address: topology.internet.address, port: 443 } });
      expect(got.get(targets[1]!)).toMatchObject({ ok: { address: extra.address, port: 443 } });
      expect(got.get(targets[2]!)).toMatchObject({ ok: { address: extra.address, port: 8443 } });
      expect(got.get(targets[3]!)).toMatchObject({ ok: { address: extra.address6, port: 443, family: 6 } });
    }
  });
});

describe('originalDestination: fails closed', () => {
  it('throws ERR_NOT_REDIRECTED for a client that dials the listener itself (IPv4 and IPv6)', async () => {
    const v4 = hostPort(topology.edge.address, dualStack.ready.port);
    const v6 = hostPort(topology.edge.address6, dualStack.ready.port);
    const got = await connectFromClient([v4, v6]);
    for (const target of [v4, v6]) {
      const outcome = got.get(target);
      expect(outcome, target).not.toHaveProperty('ok');
      expect(outcome, target).toMatchObject({ code: 'ERR_NOT_REDIRECTED' });
      expect((outcome as { error: string }).error).toMatch(/not redirected/);
    }
  });

  it('throws ENOENT, with the errno text, where the kernel has no NAT record', async () => {
    const v4 = hostPort(topology.internet.address, inInternet.ready.port);
    const v6 = hostPort(topology.internet.address6, inInternet.ready.port);
    const got = await connectFromClient([v4, v6]);
    for (const target of [v4, v6]) {
      const outcome = got.get(target);
      expect(outcome, target).not.toHaveProperty('ok');
      expect(outcome, target).toMatchObject({ code: 'ENOENT' });
      expect((outcome as { error: string }).error).toMatch(/no such file or directory.*no NAT record/);
    }
  });

  it('throws for a socket without a file descriptor', () => {
    expect(supportsOriginalDestination()).toBe(true);
    expect(() => originalDestination(new net.Socket())).toThrow(/no file descriptor/);
  });

  it('throws in this process too (vitest, host namespace) for a loopback connection nobody redirected', async () => {
    // Runs the FFI path inside the test worker itself. Whether the host namespace tracks connections is
    // the host's business, so either refusal is right; what matters is that no destination comes back.
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    const socket = await accepted;
    try {
      let thrown: NodeJS.ErrnoException | undefined;
      try {
        originalDestination(socket);
      } catch (err) {
        thrown = err as NodeJS.ErrnoException;
      }
      expect(thrown?.code).toMatch(/^(ENOENT|ERR_NOT_REDIRECTED)$/);
    } finally {
      socket.destroy();
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
