/**
 * Limits: total and per-source connections (a flood beyond the limit is closed at accept), the idle
 * limit, and an unreachable upstream. Loopback only: other sources are 127.0.0.2 and 127.0.0.3.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closedPort, type RecordingServer, startTcpServer } from '../../../test/support/index.js';
import {
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  untilClosed,
  waitFor,
} from './helpers/edge-kit.js';

const POLICY = `
version: 1
allow:
  - name: db
    hosts: [db.test]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: slow
    hosts: [slow.test]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
    timeouts: { idle: 300ms }
`;
const NAMES = { 'db.test': ['127.0.0.1'], 'slow.test': ['127.0.0.1'] };

let t: TestEdge | undefined;
let server: RecordingServer | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  await server?.close();
  t = undefined;
  server = undefined;
});

function open(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('connection limits', () => {
  it('closes a flood beyond the per-source limit at accept (connection_limit), and accepts again once slots free up', async () => {
    server = await startTcpServer();
    t = await startTestEdge(
      {
        policy: policyOf(POLICY),
        listeners: [{ kind: 'explicit', port: 0 }],
        limits: { maxConnectionsPerSource: 3, maxConnections: 100, helloTimeout: '10s' },
      },
      NAMES,
    );
    const port = t.port('explicit');
    const held = await Promise.all([open(port), open(port), open(port)]);
    await waitFor(() => t!.edge.stats().open === 3 || undefined, 2000, 'three open connections');
    const flood = await Promise.all(Array.from({ length: 20 }, () => open(port)));
    const replies = await Promise.all(flood.map((s) => untilClosed(s)));
    for (const r of replies)
      expect(r.toString('latin1')).toMatch(/^HTTP\/1.1 503 .*x-egress-reason: connection_limit/s);
    expect(t.edge.stats()).toMatchObject({ open: 3, limited: 20 });
    // One decision and one close event per refused connection.
    await t.capture.waitFor(
      (l) =>
        l.filter((e) => e['egress.reason'] === 'connection_limit').length === 20 &&
        l.filter((e) => e['egress.close_reason'] === 'connection_limit').length === 20,
    );
    expect(server.connections).toBe(0);

    for (const s of held) s.destroy();
    await waitFor(() => t!.edge.stats().open === 0 || undefined, 2000, 'slots to free up');
    const tunnel = await connectTunnel(port, `db.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    expect((await echo(tunnel.socket, Buffer.from('after'))).toString()).toBe('after');
  });

  it('counts sources apart, and applies the total limit across them', async () => {
    t = await startTestEdge(
      {
        policy: policyOf(POLICY),
        listeners: [{ kind: 'sni', port: 0 }],
        limits: { maxConnectionsPerSource: 2, maxConnections: 3, helloTimeout: '10s' },
      },
      NAMES,
    );
    const port = t.port('sni');
    await open(port, '127.0.0.1');
    await open(port, '127.0.0.1');
    const third = await open(port, '127.0.0.1');
    expect((await untilClosed(third)).length).toBe(0);
    await open(port, '127.0.0.2');
    const overTotal = await open(port, '127.0.0.3');
    await untilClosed(overTotal);
    await waitFor(() => t!.edge.stats().limited === 2 || undefined, 2000, 'two refusals');
    expect(t.edge.stats().open).toBe(3);
    const text = await t.edge.registry.getSingleMetricAsString('egress_edge_connections_limited_total');
    expect(text).toContain('egress_edge_connections_limited_total{listener="sni",scope="source"} 1');
    expect(text).toContain('egress_edge_connections_limited_total{listener="sni",scope="total"} 1');
  });
});

describe('time limits', () => {
  it("closes a flow idle for longer than the rule's idle timeout (idle_timeout)", async () => {
    server = await startTcpServer();
    t = await startTestEdge({ policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }] }, NAMES);
    const tunnel = await connectTunnel(t.port('explicit'), `slow.test:${server.port}`);
    expect((await echo(tunnel.socket, Buffer.from('x'))).toString()).toBe('x');
    const started = Date.now();
    await untilClosed(tunnel.socket, 3000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const { completion } = await t.capture.completed({ 'egress.rule': 'slow' });
    expect(completion).toMatchObject({ 'egress.outcome': 'timeout', 'egress.close_reason': 'idle_timeout' });
  });

  it('reports an upstream that refuses the connection (upstream_unreachable)', async () => {
    const port = await closedPort();
    t = await startTestEdge({ policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }] }, NAMES);
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${port}`);
    tunnel.socket.write('hello');
    await untilClosed(tunnel.socket);
    const { completion } = await t.capture.completed({ 'egress.rule': 'db' });
    expect(completion).toMatchObject({
      'egress.outcome': 'error',
      'egress.close_reason': 'upstream_unreachable',
      'error.type': 'ECONNREFUSED',
    });
  });
});
