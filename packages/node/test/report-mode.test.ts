/**
 * Report mode: nothing is blocked, every would-deny is logged; `reportUntil` turns it into enforce at
 * that moment, without a restart (the guard's clock is injected).
 */
import dns from 'node:dns';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  startDnsServer,
  startHttpsServer,
  startTcpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
  useDnsServer,
} from './fixtures/harness.js';

const UNTIL = '2027-01-31';
const BEFORE = Date.parse('2027-01-30T23:59:59Z');
const AFTER = Date.parse('2027-01-31T00:00:00Z');

let pki: TestPki;
let dnsServer: TestDnsServer;
let api: RecordingServer;
let unlisted: RecordingServer;
let tcp: RecordingServer;
let raw: RecordingServer;
let sink: EventSink;
let clock = BEFORE;

const NAMES = ['api.example.test', 'unlisted.example.test', 'private.example.test'];
const url = (host: string, server: RecordingServer) => `https://${host}:${server.port}/v1/x`;

/** Decision events of requests, without the dial-time records of their addresses (`<hook>.dial`). */
const requestDecisions = () => sink.decisions().filter((e) => !String(e['egress.hook']).endsWith('.dial'));

function installWith(doc: Record<string, unknown> = {}, service?: string) {
  sink = eventSink();
  return install({
    policy: policyOf({
      mode: 'report',
      reportUntil: UNTIL,
      allow: [
        loopbackRule('api', ['api.example.test']),
        { name: 'private', hosts: ['private.example.test'], ports: EPHEMERAL },
      ],
      ...doc,
    }),
    service,
    lookup: lookupVia(dnsServer),
    ca: pki.caCertPem,
    destination: sink,
    now: () => clock,
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dnsServer = await startDnsServer(
    Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A' as const, data: '127.0.0.1' }]])),
  );
  api = await startHttpsServer({ pki, names: NAMES });
  unlisted = await startHttpsServer({ pki, names: NAMES });
  tcp = await startTcpServer();
  raw = await startTlsServer({ pki, names: NAMES });
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, unlisted, tcp, raw]) s.reset();
  dnsServer.reset();
  clock = BEFORE;
});

afterAll(async () => {
  await Promise.all([api, unlisted, tcp, raw].map((s) => s.close()));
  await dnsServer.close();
  await pki.cleanup();
});

describe('report mode before reportUntil', () => {
  it('an unlisted host is reached, and the would-deny is logged', async () => {
    installWith();
    const res = await fetch(url('unlisted.example.test', unlisted));
    expect(res.status).toBe(200);
    await res.text();
    expect(unlisted.connections).toBe(1);
    const [decision] = sink.decisions();
    expect(decision).toMatchObject({
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
      'egress.mode': 'report',
      level: 40,
    });
    expect(decision!['egress.message']).toMatch(/^would be egress denied: .*\(report mode\)$/);
    expect(sink.completions()).toHaveLength(1);
  });

  it('a reported destination that dials a special-purpose address records the address (what enforcing would check)', async () => {
    installWith();
    const res = await fetch(url('unlisted.example.test', unlisted));
    await res.text();
    const [request, dial, ...rest] = sink.decisions();
    expect(rest).toEqual([]);
    expect(request!['network.peer.address']).toBeUndefined();
    // A rule that allowed unlisted.example.test would still refuse 127.0.0.1 (private_address): the dial
    // of the connection (undici's, shared by the requests it carries) is recorded with its address.
    expect(dial).toMatchObject({
      'egress.hook': 'undici.connect.dial',
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
      'server.address': 'unlisted.example.test',
      'network.peer.address': '127.0.0.1',
    });
  });

  it('a dial-time would-deny (private address) is logged and the connection goes ahead', async () => {
    installWith();
    const res = await fetch(url('private.example.test', api));
    expect(res.status).toBe(200);
    await res.text();
    const dial = sink.decisions().find((e) => e['egress.reason'] === 'private_address');
    expect(dial).toMatchObject({ 'egress.decision': 'reported', 'network.peer.address': '127.0.0.1' });
  });

  it('raw net and tls connections are reported, not refused', async () => {
    installWith();
    const socket = net.connect({ host: 'unlisted.example.test', port: tcp.port });
    await once(socket, 'connect');
    socket.destroy();
    const secure = tls.connect({ host: 'unlisted.example.test', port: raw.port, ca: pki.caCertPem });
    await once(secure, 'secureConnect');
    secure.destroy();
    expect(tcp.connections).toBe(1);
    expect(raw.connections).toBe(1);
    expect(
      sink
        .decisions()
        .filter((e) => e['egress.decision'] === 'reported')
        .map((e) => e['egress.hook']),
    ).toEqual(['net', 'net.dial', 'tls', 'tls.dial']);
  });

  it('turning certificate verification off is reported, not refused', async () => {
    installWith({ allow: [loopbackRule('raw', ['api.example.test'], { schemes: ['tls'] })] });
    const secure = tls.connect({ host: 'api.example.test', port: raw.port, rejectUnauthorized: false });
    await once(secure, 'secureConnect');
    secure.destroy();
    expect(sink.decisions().find((e) => e['egress.reason'] === 'tls_verify_disabled')).toMatchObject({
      'egress.decision': 'reported',
    });
  });

  it('a DNS look-up of an unlisted name is sent, and reported', async () => {
    installWith();
    const restore = useDnsServer(dnsServer);
    try {
      expect(await dns.promises.resolve4('unlisted.example.test')).toEqual(['127.0.0.1']);
      expect(dnsServer.queries).toHaveLength(1);
      expect(sink.decisions()[0]).toMatchObject({ 'egress.hook': 'dns', 'egress.decision': 'reported' });
    } finally {
      restore();
    }
  });
});

describe('reportUntil', () => {
  it('switches to enforce at that moment, without a restart', async () => {
    installWith();
    const res = await fetch(url('unlisted.example.test', unlisted));
    await res.text();
    expect(unlisted.connections).toBe(1);

    clock = AFTER;
    const error = await rejection(fetch(url('unlisted.example.test', unlisted)));
    expect(error.cause).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed' });
    expect(unlisted.connections).toBe(1);
    expect(requestDecisions().map((e) => [e['egress.decision'], e['egress.mode']])).toEqual([
      ['reported', 'report'],
      ['denied', 'enforce'],
    ]);
    // Allowed traffic is unaffected by the switch.
    const ok = await fetch(url('api.example.test', api));
    expect(ok.status).toBe(200);
    await ok.text();
  });

  it('after reportUntil, dial-time checks enforce too', async () => {
    installWith();
    clock = AFTER;
    const error = await rejection(fetch(url('private.example.test', api)));
    expect(error.cause).toMatchObject({ reason: 'private_address' });
    expect(api.connections).toBe(0);
  });

  it("a service's own report mode and reportUntil", async () => {
    installWith(
      {
        mode: 'enforce',
        reportUntil: undefined,
        services: {
          payments: {
            mode: 'report',
            reportUntil: UNTIL,
            allow: [loopbackRule('psp', ['api.example.test'])],
          },
        },
      },
      'payments',
    );
    const res = await fetch(url('unlisted.example.test', unlisted));
    await res.text();
    expect(sink.decisions()[0]).toMatchObject({ 'egress.decision': 'reported', 'service.name': 'payments' });
    clock = AFTER;
    await rejection(fetch(url('unlisted.example.test', unlisted)));
    expect(requestDecisions()[1]).toMatchObject({ 'egress.decision': 'denied', 'egress.mode': 'enforce' });
    expect(unlisted.connections).toBe(1);
  });
});
