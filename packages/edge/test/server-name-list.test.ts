/**
 * A ClientHello whose server_name extension lists more than one host name (RFC 6066 3 allows one name
 * of each type): which one the upstream serves is its choice, so the edge refuses the flow on every
 * listener, names every host name in the decision, and dials nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestPki, type RecordingServer, startTlsServer } from '../../../test/support/index.js';
import { parseClientHello } from '../src/sniff/index.js';
import {
  connectTunnel,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  untilClosed,
} from './helpers/edge-kit.js';
import {
  buildClientHello,
  frame,
  keyShareExt,
  sigAlgsExt,
  sniExt,
  supportedGroupsExt,
  supportedVersionsExt,
} from './sniff/helpers/hello-builder.js';

let server: RecordingServer;
let t: TestEdge;

beforeAll(async () => {
  server = await startTlsServer({ pki: await createTestPki(), names: ['api.test'] });
  t = await startTestEdge(
    {
      policy: policyOf(`
version: 1
allow:
  - name: api
    hosts: [api.test, evil.test]
    schemes: [https, tls]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`),
      listeners: [
        { kind: 'explicit', port: 0 },
        { kind: 'sni', port: 0, upstreamPort: server.port },
      ],
    },
    { 'api.test': ['127.0.0.1'], 'evil.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await server?.close();
});
beforeEach(() => {
  server.reset();
  t.capture.lines.length = 0;
});

const twoNames = () =>
  frame(
    buildClientHello({
      extensions: [
        sniExt('api.test', 'evil.test'),
        supportedGroupsExt(0x1d, 0x17),
        sigAlgsExt(),
        supportedVersionsExt(0x0304, 0x0303),
        keyShareExt(0x1d, 32),
      ],
    }),
  );

describe('a server_name extension with two host names', () => {
  it('is parsed with every name it carries', () => {
    const parsed = parseClientHello(twoNames());
    expect(parsed.status).toBe('ok');
    if (parsed.status !== 'ok') return;
    expect(parsed.hello.serverNames).toEqual(['api.test', 'evil.test']);
  });

  it('is refused through CONNECT, naming both hosts, with nothing dialled', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    tunnel.socket.write(twoNames());
    await untilClosed(tunnel.socket);
    const { decision, completion } = await t.capture.completed({ 'egress.reason': 'invalid_destination' });
    expect(decision['egress.decision']).toBe('denied');
    expect(String(decision['egress.message'])).toContain('"api.test", "evil.test"');
    expect(completion['egress.outcome']).toBe('denied');
    expect(server.connections).toBe(0);
  });

  it('is refused on an SNI-routed listener, with nothing dialled', async () => {
    const socket = (await import('node:net')).connect(t.port('sni'), '127.0.0.1');
    socket.on('error', () => {});
    socket.write(twoNames());
    await untilClosed(socket);
    const { decision } = await t.capture.completed({ 'egress.reason': 'invalid_destination' });
    expect(decision['egress.decision']).toBe('denied');
    expect(String(decision['egress.message'])).toContain('"api.test", "evil.test"');
    expect(server.connections).toBe(0);
  });
});
