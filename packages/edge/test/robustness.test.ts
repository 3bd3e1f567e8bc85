/**
 * Bad input never takes the edge down: random bytes, truncated and mutated hellos and requests, random
 * segmentation and abrupt resets on every listener kind. Afterwards the edge still serves, every flow
 * has exactly one decision and one completion, and nothing reached the upstream.
 */
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  startTlsServer,
  type TestPki,
} from '../../../test/support/index.js';
import {
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  tlsOver,
  waitFor,
} from './helpers/edge-kit.js';
import { frame, modernHello } from './sniff/helpers/hello-builder.js';

let pki: TestPki;
let server: RecordingServer;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  server = await startTlsServer({ pki, names: ['api.test'] });
  t = await startTestEdge(
    {
      policy: policyOf(`
version: 1
allow:
  - name: api
    hosts: [api.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`),
      listeners: [
        { kind: 'explicit', port: 0 },
        { kind: 'sni', port: 0, upstreamPort: 1 },
        { kind: 'transparent', port: 0, originalDestination: () => ({ address: '127.0.0.1', port: 1 }) },
      ],
      limits: { helloTimeout: '300ms' },
    },
    { 'api.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  await t?.close();
  await server?.close();
});

/** One hostile client: what it sends, in which pieces, and whether it resets the connection afterwards. */
const client = fc.record({
  listener: fc.constantFrom('explicit' as const, 'sni' as const, 'transparent' as const),
  prefix: fc.constantFrom(
    Buffer.alloc(0),
    Buffer.from('CONNECT api.test:1 HTTP/1.1\r\n\r\n'),
    Buffer.from('GET http://api.test:1/ HTTP/1.1\r\nHost: api.test:1\r\n'),
    frame(modernHello('api.test')).subarray(0, 60),
    Buffer.from('SSH-2.0-'),
    Buffer.from([0x16, 0x03, 0x01]),
  ),
  body: fc.uint8Array({ maxLength: 3000 }),
  cuts: fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 6 }),
  reset: fc.boolean(),
});

function send(port: number, bytes: Buffer, cuts: number[], reset: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = () => resolve();
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => {});
    s.once('connect', async () => {
      let off = 0;
      for (const cut of cuts) {
        if (off >= bytes.length || s.destroyed) break;
        s.write(bytes.subarray(off, off + cut));
        off += cut;
        await new Promise((r) => setImmediate(r));
      }
      if (!s.destroyed && off < bytes.length) s.write(bytes.subarray(off));
      if (reset) s.resetAndDestroy();
      else s.end();
    });
    setTimeout(() => {
      s.destroy();
      resolve();
    }, 3000).unref();
  });
}

describe('hostile input', () => {
  it('survives 150 hostile clients, logs every flow once, and still serves', async () => {
    const samples = fc.sample(client, { numRuns: 150, seed: 20_240_601 });
    for (let i = 0; i < samples.length; i += 15) {
      await Promise.all(
        samples.slice(i, i + 15).map((c) => {
          const bytes = Buffer.concat([c.prefix, Buffer.from(c.body)]);
          return send(t.port(c.listener), bytes, c.cuts, c.reset);
        }),
      );
    }
    await waitFor(() => t.edge.stats().open === 0 || undefined, 5000, 'every hostile connection to end');
    await waitFor(
      () => (t.capture.decisions().length === t.capture.completions().length ? true : undefined),
      3000,
      'a completion for every decision',
    );
    const ids = t.capture.decisions().map((d) => d['egress.id']);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(150);
    expect(server.connections).toBe(0);
    expect(t.capture.invalid).toEqual([]);

    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const secure = await tlsOver(tunnel.socket, { servername: 'api.test', ca: pki.caCertPem });
    expect((await echo(secure, Buffer.from('alive'))).toString()).toBe('alive');
    secure.destroy();
  });
});
