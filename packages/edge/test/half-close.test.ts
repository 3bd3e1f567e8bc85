/**
 * A client that half-closes (sends its FIN) while the upstream keeps its own half open: the splice
 * passes the FIN on and then waits, as TCP allows, but only for the idle limit. Both descriptors are
 * released when it elapses, and the completion says `idle_timeout`, not `client_closed`.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectTunnel,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  waitFor,
} from './helpers/edge-kit.js';

let upstream: net.Server;
let port = 0;
const seen = { ended: 0, bytes: 0 };
const accepted: net.Socket[] = [];
let t: TestEdge;

beforeAll(async () => {
  // Keeps its half open after the edge's FIN: it never ends or closes on its own.
  upstream = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (c: Buffer) => {
      seen.bytes += c.length;
    });
    socket.on('end', () => seen.ended++);
    accepted.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  port = (upstream.address() as net.AddressInfo).port;
  t = await startTestEdge(
    {
      policy: policyOf(`
version: 1
allow:
  - name: db
    hosts: [db.test]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
    timeouts: { idle: 400ms }
`),
      listeners: [{ kind: 'explicit', port: 0 }],
    },
    { 'db.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  for (const s of accepted) s.destroy();
  await new Promise<void>((r) => upstream.close(() => r()));
});

describe('half-close', () => {
  it('releases both sides at the idle limit and says idle_timeout', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${port}`);
    tunnel.socket.on('error', () => {});
    const closed = new Promise<void>((r) => tunnel.socket.once('close', () => r()));
    tunnel.socket.resume();
    tunnel.socket.write('\x00\x01raw protocol bytes');
    await waitFor(() => seen.bytes >= 20, 5000, 'the upstream to read the bytes');
    tunnel.socket.end();
    // The FIN reached the upstream, which keeps its half open.
    await waitFor(() => seen.ended === 1, 5000, 'the FIN passed on');
    const { completion } = await t.capture.completed({ 'egress.rule': 'db' });
    expect(completion).toMatchObject({ 'egress.outcome': 'timeout', 'egress.close_reason': 'idle_timeout' });
    // Both of the edge's descriptors released: the client's socket was closed by the edge, and the edge
    // holds no connection (its upstream sockets are destroyed with it).
    await closed;
    await waitFor(() => t.edge.stats().open === 0, 5000, 'the client connection to close');
  });
});
