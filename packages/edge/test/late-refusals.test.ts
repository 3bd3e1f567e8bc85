/**
 * Refusals made after the first decision, once the upstream's first answer is read: a ServerHello below
 * the rule's TLS floor, an SSH-1 server banner. Each must leave the flow's one decision event saying
 * `denied` with the reason, so that a query for denied flows finds every refusal. (ECH or another name in
 * the second ClientHello after a HelloRetryRequest: hello-retry.test.ts.)
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  type SshLikeServer,
  startSshLikeServer,
  startTlsServer,
  type TestPki,
} from '../../../test/support/index.js';
import {
  connectTunnel,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  tlsOver,
  untilClosed,
} from './helpers/edge-kit.js';

let pki: TestPki;
let tls12: RecordingServer;
let oldSsh: SshLikeServer;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  tls12 = await startTlsServer({ pki, names: ['strict.test'], maxVersion: 'TLSv1.2' });
  oldSsh = await startSshLikeServer({ banner: 'SSH-1.5-OldServer' });
  t = await startTestEdge(
    {
      policy: policyOf(`
version: 1
allow:
  - name: strict
    hosts: [strict.test]
    schemes: [tls]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
    tls: { minVersion: TLSv1.3 }
  - name: git
    hosts: [old-git.test]
    schemes: [ssh]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`),
      listeners: [{ kind: 'explicit', port: 0 }],
    },
    { 'strict.test': ['127.0.0.1'], 'old-git.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await tls12?.close();
  await oldSsh?.close();
});
beforeEach(() => {
  t.capture.lines.length = 0;
});

/** The flow's events: exactly one decision, which is the denial, and a completion that agrees. */
async function expectOneDenial(rule: string, reason: string): Promise<void> {
  const { decision, completion } = await t.capture.completed({ 'egress.rule': rule });
  const events = t.capture.flow(decision['egress.id'] as string);
  expect(events.filter((e) => e['event.name'] === 'egress.decision')).toHaveLength(1);
  expect(decision).toMatchObject({ 'egress.decision': 'denied', 'egress.reason': reason });
  expect(String(decision['egress.message'])).toContain(`[${reason}]`);
  expect(completion).toMatchObject({ 'egress.outcome': 'denied', 'egress.close_reason': reason });
  // A SIEM query for denied decisions finds it.
  expect(t.capture.decisions().filter((d) => d['egress.decision'] === 'denied')).toHaveLength(1);
}

describe('refusals after the first decision are denied decisions', () => {
  it('a ServerHello below the rule floor (tls_version)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `strict.test:${tls12.port}`);
    await expect(tlsOver(tunnel.socket, { servername: 'strict.test', ca: pki.caCertPem })).rejects.toThrow();
    await expectOneDenial('strict', 'tls_version');
    // The server completed no handshake through the edge.
    expect(tls12.tlsVersions).toEqual([]);
  });

  it('an SSH-1 server banner (protocol_not_allowed)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `old-git.test:${oldSsh.port}`);
    tunnel.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    const got = await untilClosed(tunnel.socket);
    expect(got.toString('latin1')).not.toContain('SSH-1.5');
    await expectOneDenial('git', 'protocol_not_allowed');
  });
});
