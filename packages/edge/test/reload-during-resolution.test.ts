/**
 * A policy reload that lands while a flow's name is being resolved: the flow is decided again under the
 * policy now in force before anything is dialled. The resolver is a real (loopback) DNS server whose
 * answer is held back until the reload is done; the proof is that the upstream saw no connection.
 */
import dns from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  startDnsServer,
  startHttpServer,
  startTlsServer,
  type TestDnsServer,
} from '../../../test/support/index.js';
import type { DnsAnswer, EdgeResolver } from '../src/index.js';
import {
  connectTunnel,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  untilClosed,
  waitFor,
} from './helpers/edge-kit.js';
import { frame, modernHello } from './sniff/helpers/hello-builder.js';

const allowing = (hosts: string) =>
  policyOf(`
version: 1
allow:
  - name: api
    hosts: [${hosts}]
    schemes: [https, tls, http]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`);

let tlsServer: RecordingServer;
let web: RecordingServer;
let dnsServer: TestDnsServer;
let t: TestEdge;
/** Look-ups waiting for the test to let their answer through. */
const held: Array<() => void> = [];

/** A resolver asking the loopback DNS server, each answer held until the test releases it: a slow DNS. */
function slowResolver(port: number): EdgeResolver {
  const ask =
    (method: 'resolve4' | 'resolve6') =>
    async (name: string): Promise<DnsAnswer[]> => {
      await new Promise<void>((release) => held.push(release));
      const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
      resolver.setServers([`127.0.0.1:${port}`]);
      try {
        return await resolver[method](name, { ttl: true });
      } catch {
        return [];
      }
    };
  return { resolve4: ask('resolve4'), resolve6: ask('resolve6') };
}

beforeAll(async () => {
  tlsServer = await startTlsServer({ pki: await createTestPki(), names: ['api.test'] });
  web = await startHttpServer();
  dnsServer = await startDnsServer({ 'api.test': [{ type: 'A', data: '127.0.0.1' }] });
  t = await startTestEdge({
    policy: allowing('api.test'),
    listeners: [{ kind: 'explicit', port: 0 }],
    resolver: slowResolver(dnsServer.port),
  });
});
afterAll(async () => {
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await Promise.all([tlsServer?.close(), web?.close(), dnsServer?.close()]);
});

/** Waits for the flow's look-ups to be under way, reloads to a policy without api.test, lets DNS answer. */
async function reloadWhileResolving(): Promise<string> {
  await waitFor(() => held.length >= 2, 5000, 'the flow to be resolving api.test');
  const next = allowing('other.test');
  expect(await t.edge.reload(next)).toBe(true);
  for (const release of held.splice(0)) release();
  return next.hash;
}

describe('a reload during DNS resolution', () => {
  it('refuses a TLS flow the new policy denies, and dials nothing', async () => {
    t.capture.lines.length = 0;
    await t.edge.reload(allowing('api.test'));
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${tlsServer.port}`);
    tunnel.socket.write(frame(modernHello('api.test')));
    const hash = await reloadWhileResolving();
    await untilClosed(tunnel.socket);
    const { decision, completion } = await t.capture.completed({ 'server.address': 'api.test' });
    expect(decision).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
      'egress.policy.hash': hash,
    });
    expect(completion['egress.outcome']).toBe('denied');
    expect(tlsServer.connections).toBe(0);
    expect(dnsServer.queries.some((q) => q.name === 'api.test')).toBe(true);
  });

  it('refuses a plaintext request the new policy denies, and dials nothing', async () => {
    t.capture.lines.length = 0;
    await t.edge.reload(allowing('api.test'));
    const net = await import('node:net');
    const socket = net.connect(t.port('explicit'), '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      `GET http://api.test:${web.port}/x HTTP/1.1\r\nHost: api.test:${web.port}\r\nConnection: close\r\n\r\n`,
    );
    const hash = await reloadWhileResolving();
    const reply = (await untilClosed(socket)).toString('latin1');
    expect(reply).toMatch(/^HTTP\/1.1 403/);
    const { decision } = await t.capture.completed({ 'server.address': 'api.test' });
    expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.policy.hash': hash });
    expect(web.connections).toBe(0);
  });
});
