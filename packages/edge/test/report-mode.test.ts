/**
 * Report mode: nothing is blocked, every would-deny is logged as `reported` with its reason. Limits and
 * unroutable bytes are still enforced.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
  untilClosed,
} from './helpers/edge-kit.js';

const POLICY = `
version: 1
mode: report
allow:
  - name: api
    hosts: [api.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`;

let pki: TestPki;
let server: RecordingServer;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  server = await startTlsServer({ pki, names: ['api.test', 'unlisted.test'] });
  t = await startTestEdge(
    { policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }] },
    { 'api.test': ['127.0.0.1'], 'unlisted.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await server?.close();
});
beforeEach(() => {
  server.reset();
  t.capture.lines.length = 0;
});

describe('report mode', () => {
  it('lets a host no rule lists through, and the decision event says reported with the reason', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `unlisted.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    const secure = await tlsOver(tunnel.socket, { servername: 'unlisted.test', ca: pki.caCertPem });
    const back = await echo(secure, Buffer.from('hello'));
    expect(back.toString()).toBe('hello');
    secure.destroy();
    const { decision, completion } = await t.capture.completed({ 'server.address': 'unlisted.test' });
    expect(decision).toMatchObject({
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
      'egress.mode': 'report',
    });
    expect(String(decision['egress.message'])).toMatch(/^would be egress denied/);
    expect(completion['egress.outcome']).toBe('ok');
    expect(server.connections).toBe(1);
    expect(server.servernames).toEqual(['unlisted.test']);
  });

  it('lets a CONNECT/SNI mismatch through and reports sni_mismatch', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    const secure = await tlsOver(tunnel.socket, { servername: 'unlisted.test', ca: pki.caCertPem });
    secure.destroy();
    const { decision } = await t.capture.completed({ 'egress.reason': 'sni_mismatch' });
    expect(decision['egress.decision']).toBe('reported');
    expect(server.connections).toBe(1);
  });

  it('still refuses a hello it cannot route (hello_too_large is a limit, not a policy)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `api.test:${server.port}`);
    tunnel.socket.write(
      Buffer.concat([
        Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x80, 0x00]),
        Buffer.alloc(20_000),
      ]),
    );
    await untilClosed(tunnel.socket);
    const { decision } = await t.capture.completed({ 'egress.reason': 'hello_too_large' });
    expect(decision['egress.decision']).toBe('denied');
    expect(server.connections).toBe(0);
  });
});
