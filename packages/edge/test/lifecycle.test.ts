/**
 * Running the edge: policy reloads (in-flight flows kept, an invalid file keeps the old policy, file
 * changes picked up), drain, and the admin endpoints with their metrics.
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RecordingServer, startTcpServer } from '../../../test/support/index.js';
import { startEdge } from '../src/index.js';
import {
  captureEvents,
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  staticResolver,
  TEST_PORTS,
  type TestEdge,
  tempDir,
  untilClosed,
  waitFor,
} from './helpers/edge-kit.js';

const rule = (name: string, host: string, extra = '') => `
  - name: ${name}
    hosts: [${host}]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow${extra}`;
const ALLOW_DB = `version: 1\nallow:${rule('db', 'db.test')}\n`;
const ALLOW_OTHER = `version: 1\nallow:${rule('other', 'other.test')}\n`;
const NAMES = { 'db.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] };

let t: TestEdge | undefined;
let server: RecordingServer | undefined;
let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
afterEach(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await server?.close();
  await dir?.cleanup();
  t = undefined;
  server = undefined;
  dir = undefined;
});

describe('reload', () => {
  it('keeps flows in flight on the policy they were decided by; new flows get the new policy', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const file = await dir.write('egress.yaml', ALLOW_DB);
    t = await startTestEdge({ policy: file, listeners: [{ kind: 'explicit', port: 0 }] }, NAMES);
    const before = t.edge.policy.hash;
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${server.port}`);
    expect((await echo(tunnel.socket, Buffer.from('one'))).toString()).toBe('one');

    await writeFile(file, ALLOW_OTHER);
    expect(await t.edge.reload()).toBe(true);
    expect(t.edge.policy.hash).not.toBe(before);
    const reloaded = t.capture.lines.find((l) => l['event.name'] === 'egress.policy.reloaded')!;
    expect(reloaded).toMatchObject({
      'egress.policy.previous_hash': before,
      'egress.policy.hash': t.edge.policy.hash,
      'egress.policy.diff': { added: ['allow:other'], removed: ['allow:db'], changed: [] },
      'egress.policy.file': file,
    });

    // The tunnel opened before the reload still carries bytes.
    expect((await echo(tunnel.socket, Buffer.from('two'))).toString()).toBe('two');
    // A new one to the same host is now refused.
    const after = await connectTunnel(t.port('explicit'), `db.test:${server.port}`);
    expect(after.status).toBe(403);
    tunnel.socket.destroy();
  });

  it('keeps the old policy when the file becomes invalid, and says why', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const file = await dir.write('egress.yaml', ALLOW_DB);
    t = await startTestEdge({ policy: file, listeners: [{ kind: 'explicit', port: 0 }] }, NAMES);
    const hash = t.edge.policy.hash;
    await writeFile(file, 'version: 1\nallow:\n  - name: broken\n    hots: [db.test]\n');
    expect(await t.edge.reload()).toBe(false);
    expect(t.edge.policy.hash).toBe(hash);
    const rejected = t.capture.lines.find((l) => l['event.name'] === 'egress.policy.rejected')!;
    expect(rejected['egress.policy.hash']).toBe(hash);
    expect(rejected['egress.policy.problems']).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^4:5 allow\[0\]\.hots unknown key "hots".*did you mean "hosts"/),
      ]),
    );
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    expect((await echo(tunnel.socket, Buffer.from('still'))).toString()).toBe('still');
    tunnel.socket.destroy();
    const metrics = await t.edge.registry.getSingleMetricAsString('egress_edge_policy_reloads_total');
    expect(metrics).toContain('result="rejected"} 1');
  });

  it('reloads when the file changes (written in place, or renamed over), debounced', async () => {
    dir = await tempDir();
    const file = await dir.write('egress.yaml', ALLOW_DB);
    t = await startTestEdge(
      { policy: file, listeners: [{ kind: 'explicit', port: 0 }], watch: true, watchDebounce: '50ms' },
      NAMES,
    );
    const first = t.edge.policy.hash;
    await writeFile(file, ALLOW_OTHER);
    await waitFor(() => t!.edge.policy.hash !== first || undefined, 5000, 'the in-place change');
    const second = t.edge.policy.hash;
    const tmp = await dir.write('egress.yaml.tmp', `${ALLOW_DB}# edited\n`);
    await (await import('node:fs/promises')).rename(tmp, file);
    await waitFor(() => (t!.edge.policy.hash !== second ? true : undefined), 5000, 'the rename');
    expect(t.capture.lines.filter((l) => l['event.name'] === 'egress.policy.reloaded')).toHaveLength(2);
  });

  it('swaps a policy given in code', async () => {
    t = await startTestEdge(
      { policy: policyOf(ALLOW_DB), listeners: [{ kind: 'explicit', port: 0 }] },
      NAMES,
    );
    expect(await t.edge.reload(policyOf(ALLOW_OTHER))).toBe(true);
    expect(t.edge.policy.rules.map((r) => r.name)).toEqual(['other']);
  });
});

describe('drain', () => {
  it('stops accepting, lets flows in flight finish, then resolves', async () => {
    server = await startTcpServer();
    t = await startTestEdge(
      { policy: policyOf(ALLOW_DB), listeners: [{ kind: 'explicit', port: 0 }] },
      NAMES,
    );
    const port = t.port('explicit');
    const tunnel = await connectTunnel(port, `db.test:${server.port}`);
    const drained = t.edge.drain(5000);
    await waitFor(() => t!.edge.draining || undefined);
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('connect', () => resolve('connected'));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect((await echo(tunnel.socket, Buffer.from('in flight'))).toString()).toBe('in flight');
    tunnel.socket.end();
    const started = Date.now();
    await drained;
    expect(Date.now() - started).toBeLessThan(2000);
    const { completion } = await t.capture.completed({ 'egress.rule': 'db' });
    expect(completion['egress.close_reason']).toBe('client_closed');
  });

  it('ends what is left after the drain timeout (drain_timeout)', async () => {
    server = await startTcpServer();
    t = await startTestEdge(
      { policy: policyOf(ALLOW_DB), listeners: [{ kind: 'explicit', port: 0 }] },
      NAMES,
    );
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${server.port}`);
    await echo(tunnel.socket, Buffer.from('x'));
    const started = Date.now();
    await t.edge.drain(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await untilClosed(tunnel.socket);
    const { completion } = await t.capture.completed({ 'egress.rule': 'db' });
    expect(completion['egress.close_reason']).toBe('drain_timeout');
  });
});

describe('admin endpoints', () => {
  it('serves /healthz, /readyz (503 while draining) and /metrics from a dedicated registry', async () => {
    server = await startTcpServer();
    const capture = captureEvents();
    const edge = await startEdge({
      policy: policyOf(ALLOW_DB),
      listeners: [{ kind: 'explicit', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      events: capture.emitter,
      resolver: staticResolver(NAMES),
    });
    t = {
      edge,
      capture,
      resolver: staticResolver({}),
      port: () => edge.listeners[0]!.port,
      close: () => edge.close(),
    };
    const admin = `http://127.0.0.1:${edge.adminAddress!.port}`;
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    expect((await fetch(`${admin}/nope`)).status).toBe(404);

    const tunnel = await connectTunnel(edge.listeners[0]!.port, `db.test:${server.port}`);
    await echo(tunnel.socket, Buffer.from('12345'));
    tunnel.socket.end();
    await untilClosed(tunnel.socket);
    await capture.completed({ 'egress.rule': 'db' });
    const denied = await connectTunnel(edge.listeners[0]!.port, `nope.test:${server.port}`);
    expect(denied.status).toBe(403);

    const res = await fetch(`${admin}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain(
      'egress_edge_decisions_total{listener="explicit",result="allowed",reason="allowed"} 1',
    );
    expect(text).toContain(
      'egress_edge_decisions_total{listener="explicit",result="denied",reason="host_not_allowed"} 1',
    );
    expect(text).toContain('egress_edge_bytes_total{listener="explicit",direction="sent"} 5');
    expect(text).toContain('egress_edge_bytes_total{listener="explicit",direction="received"} 5');
    expect(text).toContain('egress_edge_connections_accepted_total{listener="explicit"} 2');
    expect(text).toContain(`egress_edge_policy_info{hash="${edge.policy.hash}"} 1`);
    expect(text).toMatch(/egress_edge_flow_duration_seconds_count\{listener="explicit",outcome="ok"\} 1/);
    expect(text).toContain('egress_edge_process_cpu_seconds_total');
    // Nothing leaks into prom-client's global registry.
    const { register } = await import('prom-client');
    expect(await register.metrics()).not.toContain('egress_edge_');

    const draining = edge.drain(2000);
    expect((await fetch(`${admin}/readyz`)).status).toBe(503);
    await draining;
  });
});
