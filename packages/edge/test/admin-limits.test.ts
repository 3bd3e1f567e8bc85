/**
 * The admin port stays cheap under scraping and abuse: a rendered exposition is shared by every scrape
 * within its cache window (work bound: renders, not time), and one connection carries a bounded number
 * of requests, however many it pipelines, before the edge closes it.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ADMIN_LIMITS } from '../src/admin-server.js';
import { type EdgeServer, startEdge } from '../src/index.js';
import { captureEvents, policyOf, waitFor } from './helpers/edge-kit.js';

let edge: EdgeServer | undefined;
afterEach(async () => {
  await edge?.close();
  edge = undefined;
});

async function startWithAdmin(): Promise<{ edge: EdgeServer; port: number }> {
  edge = await startEdge({
    policy: policyOf('version: 1\nallow: []\n'),
    listeners: [{ kind: 'explicit', port: 0 }],
    admin: { host: '127.0.0.1', port: 0 },
    events: captureEvents().emitter,
    watch: false,
  });
  return { edge, port: edge.adminAddress!.port };
}

/** Sends `count` pipelined requests in one write and reads until the edge closes the connection. */
async function pipelined(port: number, count: number): Promise<{ text: string; closedByServer: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let closedByServer = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write('GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n'.repeat(count));
  await new Promise<void>((resolve) => {
    socket.once('end', () => {
      closedByServer = true;
    });
    socket.once('close', () => resolve());
    // Bounded: the edge must close the connection itself, long before this.
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, 20_000).unref();
  });
  return { text: Buffer.concat(chunks).toString('latin1'), closedByServer };
}

describe('admin port bounds', () => {
  it('1,000 pipelined /metrics requests on one connection: one render, at most the per-connection limit answered, then closed', async () => {
    const { edge, port } = await startWithAdmin();
    const render = vi.spyOn(edge.registry, 'metrics');
    const { text, closedByServer } = await pipelined(port, 1000);
    const ok = text.match(/HTTP\/1\.1 200 OK/g)?.length ?? 0;
    const all = text.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0;
    expect(closedByServer).toBe(true);
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThanOrEqual(ADMIN_LIMITS.maxRequestsPerConnection);
    // Nothing past the limit is answered at all (no 503 per request): the rest is never read.
    expect(all).toBe(ok);
    // The work bound: every answered scrape shares one render (two if the cache window turned over).
    expect(render.mock.calls.length).toBeGreaterThanOrEqual(1);
    expect(render.mock.calls.length).toBeLessThanOrEqual(2);
  });

  it('scrapes in parallel share the render in progress; the next window renders afresh', async () => {
    const { edge, port } = await startWithAdmin();
    const render = vi.spyOn(edge.registry, 'metrics');
    const url = `http://127.0.0.1:${port}/metrics`;
    const bodies = await Promise.all(Array.from({ length: 10 }, () => fetch(url).then((r) => r.text())));
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain('egress_edge_connections_accepted_total');
    const before = render.mock.calls.length;
    expect(before).toBeLessThanOrEqual(2);
    // Fresh figures after the window: a scrape once it has passed renders again.
    await new Promise((r) => setTimeout(r, ADMIN_LIMITS.metricsCacheMs + 50));
    await fetch(url).then((r) => r.text());
    await waitFor(() => render.mock.calls.length > before, 2000, 'a new render');
  });

  it('refuses connections beyond the admin connection limit at accept', async () => {
    const { port } = await startWithAdmin();
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < ADMIN_LIMITS.maxConnections; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        held.push(s);
        await new Promise<void>((resolve) => s.once('connect', resolve));
      }
      // Held connections are all accepted before the next one arrives.
      await new Promise((r) => setTimeout(r, 100));
      const extra = net.connect(port, '127.0.0.1');
      extra.on('error', () => {});
      held.push(extra);
      const closed = await new Promise<boolean>((resolve) => {
        extra.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 5_000).unref();
      });
      expect(closed).toBe(true);
      expect(held[0]!.destroyed).toBe(false);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
