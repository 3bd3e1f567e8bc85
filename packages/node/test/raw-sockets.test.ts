/**
 * Raw `net` and `tls` clients: decided at `net.Socket.prototype.connect` (scheme tcp) and `tls.connect`
 * (scheme tls). IP literals in every spelling are matched by addresses rules only; every address a name
 * resolves to is checked at the moment it is dialled (happy eyeballs, rebinding with TTL 0).
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startTcpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

let pki: TestPki;
let dns: TestDnsServer;
let tcp: RecordingServer;
let tlsServer: RecordingServer;
let sink: EventSink;

const A = (data: string) => ({ type: 'A' as const, data });

const rules = {
  db: loopbackRule('db', ['db.example.test'], { schemes: ['tcp'] }),
  secureDb: loopbackRule('secure-db', ['tls.example.test'], { schemes: ['tls'] }),
  loopbackTcp: { name: 'loopback-tcp', addresses: ['127.0.0.1/32'], schemes: ['tcp'], ports: EPHEMERAL },
};

function installWith(allow: Array<Record<string, unknown>>, options: { lookup?: boolean } = {}) {
  sink = eventSink();
  return install({
    policy: policyOf({ allow }),
    ...(options.lookup === false ? {} : { lookup: lookupVia(dns) }),
    ca: pki.caCertPem,
    destination: sink,
  });
}

/** Connects, writes `ping`, resolves with the echo; rejects with the socket's error. */
function echo(socket: net.Socket, event: 'connect' | 'secureConnect' = 'connect'): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once(event, () => socket.write('ping'));
    socket.once('data', (data) => {
      resolve(String(data));
      socket.destroy();
    });
  });
}

/** The error a socket fails with (it must fail, not connect). */
function failure(socket: net.Socket): Promise<Error & Record<string, any>> {
  return new Promise((resolve, reject) => {
    socket.once('error', resolve);
    socket.once('connect', () => reject(new Error('connected, but should have been refused')));
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    'db.example.test': [A('127.0.0.1')],
    'tls.example.test': [A('127.0.0.1')],
    'evil.example.test': [A('127.0.0.1')],
  });
  tcp = await startTcpServer();
  tlsServer = await startTlsServer({ pki, names: ['tls.example.test', 'evil.example.test', 'localhost'] });
});

afterEach(async () => {
  await uninstall();
  tcp.reset();
  tlsServer.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([tcp.close(), tlsServer.close(), dns.close()]);
  await pki.cleanup();
});

describe('net.connect', () => {
  it('allowed by a rule with schemes [tcp]: the bytes flow, one decision with hook net', async () => {
    installWith([rules.db]);
    expect(await echo(net.connect({ host: 'db.example.test', port: tcp.port }))).toBe('ping');
    expect(tcp.connections).toBe(1);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.hook': 'net',
      'url.scheme': 'tcp',
      'egress.rule': 'db',
    });
  });

  it('writes a completion event with the bytes when the socket closes', async () => {
    installWith([rules.db]);
    const socket = net.connect({ host: 'db.example.test', port: tcp.port });
    expect(await echo(socket)).toBe('ping');
    await once(socket, 'close');
    const [completion] = sink.completions();
    expect(completion).toMatchObject({
      'egress.hook': 'net',
      'egress.rule': 'db',
      'egress.outcome': 'ok',
      'egress.bytes.sent': 4,
      'egress.bytes.received': 4,
    });
    expect(completion!['egress.id']).toBe(sink.decisions()[0]!['egress.id']);
  });

  it('a connection that fails: its completion says how, and the guard adds no error listener', async () => {
    installWith([rules.db]);
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const socket = net.connect({ host: 'db.example.test', port });
    // Before: the completion's watch was an 'error' listener, so an error the caller left unhandled was
    // swallowed instead of thrown as Node throws it without the guard.
    const guardListeners = socket.listenerCount('error');
    const error = await failure(socket);
    expect(guardListeners).toBe(0);
    expect(error).toMatchObject({ code: 'ECONNREFUSED' });
    await settle();
    expect(sink.completions()).toEqual([
      expect.objectContaining({
        'egress.id': sink.decisions()[0]!['egress.id'],
        'egress.hook': 'net',
        'egress.outcome': 'error',
        'error.type': 'ECONNREFUSED',
      }),
    ]);
  });

  it('denied: a host no rule lists never gets a packet', async () => {
    installWith([rules.db]);
    const error = await failure(net.connect({ host: 'evil.example.test', port: tcp.port }));
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
    });
    await settle();
    expect(tcp.connections).toBe(0);
    expect(dns.queries).toEqual([]);
  });

  it('denied: a scheme the rule does not list (an https rule does not allow raw tcp)', async () => {
    installWith([loopbackRule('web', ['db.example.test'])]);
    const error = await failure(net.connect(tcp.port, 'db.example.test'));
    expect(error).toMatchObject({ reason: 'scheme_not_allowed', rule: 'web' });
    await settle();
    expect(tcp.connections).toBe(0);
  });

  it('denied: a listed name that resolves to loopback, without privateAddresses: allow', async () => {
    installWith([{ name: 'db', hosts: ['db.example.test'], schemes: ['tcp'], ports: EPHEMERAL }]);
    const error = await failure(net.connect({ host: 'db.example.test', port: tcp.port }));
    expect(error).toMatchObject({ reason: 'private_address', rule: 'db' });
    await settle();
    expect(tcp.connections).toBe(0);
  });

  it('new net.Socket().connect() directly, in each argument form', async () => {
    installWith([rules.db]);
    expect(await echo(new net.Socket().connect(tcp.port, 'db.example.test'))).toBe('ping');
    expect(await echo(new net.Socket().connect({ port: tcp.port, host: 'db.example.test' }))).toBe('ping');
    const error = await failure(new net.Socket().connect(tcp.port, 'evil.example.test'));
    expect(error).toMatchObject({ reason: 'host_not_allowed' });
    const noHost = await failure(new net.Socket().connect(tcp.port));
    expect(noHost).toMatchObject({ reason: 'host_not_allowed', host: 'localhost' });
    await settle();
    expect(tcp.connections).toBe(2);
  });

  it('a Unix socket path is not egress', async () => {
    installWith([]);
    const error = await failure(net.connect({ path: '/nonexistent/egress-guard.sock' }));
    expect(error).not.toBeInstanceOf(EgressError);
    expect((error as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});

describe('IP literals: matched by addresses rules only, in every spelling', () => {
  const spellings = [
    '127.0.0.1',
    '127.1',
    '0x7f.1',
    '2130706433',
    '017700000001',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
  ];

  for (const host of spellings) {
    it(`${host}: denied without an addresses rule, zero connections`, async () => {
      installWith([loopbackRule('by-name', ['db.example.test'], { schemes: ['tcp'] })]);
      const error = await failure(net.connect({ host, port: tcp.port }));
      expect(error).toMatchObject({
        code: 'EGRESS_ERR_DENIED',
        reason: 'address_not_allowed',
        host: '127.0.0.1',
      });
      await settle();
      expect(tcp.connections).toBe(0);
    });
  }

  it('0 and 0.0.0.0 (they reach the local host) are denied', async () => {
    installWith([rules.db]);
    for (const host of ['0', '0.0.0.0', '::']) {
      const error = await failure(net.connect({ host, port: tcp.port }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed' });
    }
    await settle();
    expect(tcp.connections).toBe(0);
  });

  it('allowed when an addresses rule covers them (spellings parsed as the connecting code parses them)', async () => {
    // The system resolver turns the short and numeric spellings into 127.0.0.1, as it does for net.connect.
    installWith([rules.loopbackTcp], { lookup: false });
    for (const host of ['127.0.0.1', '127.1', '0x7f.1', '2130706433']) {
      expect(await echo(net.connect({ host, port: tcp.port }))).toBe('ping');
    }
    expect(tcp.connections).toBe(4);
    expect(sink.decisions().every((e) => e['egress.rule'] === 'loopback-tcp')).toBe(true);
  });

  it('a name rule does not cover its addresses written as a literal', async () => {
    installWith([rules.db]);
    const error = await failure(net.connect({ host: '127.0.0.1', port: tcp.port }));
    expect(error).toMatchObject({ reason: 'address_not_allowed' });
  });
});

describe('every address a name resolves to is checked when it is dialled', () => {
  it('happy eyeballs (autoSelectFamily): one special-purpose answer not allowed fails the whole connect', async () => {
    dns.set('two.example.test', [A('127.0.0.1'), A('127.0.0.2')]);
    // 127.0.0.1 alone is allowed (an addresses rule); 127.0.0.2 is not. Checking only the first answer
    // would connect to 127.0.0.1, where the server listens.
    installWith([
      { name: 'two', hosts: ['two.example.test'], schemes: ['tcp'], ports: EPHEMERAL },
      rules.loopbackTcp,
    ]);
    const error = await failure(
      net.connect({ host: 'two.example.test', port: tcp.port, autoSelectFamily: true }),
    );
    expect(error).toMatchObject({ reason: 'private_address', rule: 'two' });
    expect(error.message).toContain('127.0.0.2');
    await settle();
    expect(tcp.connections).toBe(0);
  });

  it('happy eyeballs: every answer allowed → connects, and the socket was given every address', async () => {
    dns.set('two.example.test', [A('127.0.0.2'), A('127.0.0.1')]);
    installWith([loopbackRule('two', ['two.example.test'], { schemes: ['tcp'] })]);
    const socket = net.connect({
      host: 'two.example.test',
      port: tcp.port,
      autoSelectFamily: true,
      autoSelectFamilyAttemptTimeout: 100,
    });
    expect(await echo(socket)).toBe('ping');
    expect(tcp.connections).toBe(1);
  });

  it('rebinding with TTL 0: the answer checked is the answer dialled, on every connection', async () => {
    // First answer: 127.0.0.2, allowed by an addresses rule (the "public" address of the story); later
    // answers: 127.0.0.1, an internal address the name rule does not allow. Servers listen on both.
    const outside = net.createServer((s) => s.end());
    let outsideConnections = 0;
    outside.on('connection', () => outsideConnections++);
    await new Promise<void>((resolve) => outside.listen(tcp.port, '127.0.0.2', resolve));
    try {
      dns.set('rebind.example.test', (count) => (count === 1 ? [A('127.0.0.2')] : [A('127.0.0.1')]));
      installWith([
        { name: 'rebind', hosts: ['rebind.example.test'], schemes: ['tcp'], ports: EPHEMERAL },
        { name: 'outside', addresses: ['127.0.0.2/32'], schemes: ['tcp'], ports: EPHEMERAL },
      ]);
      const first = net.connect({ host: 'rebind.example.test', port: tcp.port });
      await once(first, 'connect');
      first.destroy();
      expect(outsideConnections).toBe(1);

      const second = await failure(net.connect({ host: 'rebind.example.test', port: tcp.port }));
      expect(second).toMatchObject({ reason: 'private_address', rule: 'rebind' });
      await settle();
      expect(tcp.connections).toBe(0);
      // One look-up per connection: the check and the dial used the same answer.
      expect(dns.queries.filter((q) => q.name === 'rebind.example.test' && q.type === 'A')).toHaveLength(2);
      const dial = sink.decisions().find((e) => e['egress.reason'] === 'private_address');
      expect(dial).toMatchObject({
        'network.peer.address': '127.0.0.1',
        'server.address': 'rebind.example.test',
      });
    } finally {
      await new Promise<void>((resolve) => outside.close(() => resolve()));
    }
  });

  it('a wildcard-DNS style name that resolves to loopback is denied (no privateAddresses: allow)', async () => {
    dns.set('127.0.0.1.nip.example.test', [A('127.0.0.1')]);
    installWith([{ name: 'nip', hosts: ['**.nip.example.test'], schemes: ['tcp'], ports: EPHEMERAL }]);
    const error = await failure(net.connect({ host: '127.0.0.1.nip.example.test', port: tcp.port }));
    expect(error).toMatchObject({ reason: 'private_address' });
    await settle();
    expect(tcp.connections).toBe(0);
  });
});

describe('tls.connect', () => {
  it('allowed by a rule with schemes [tls]', async () => {
    installWith([rules.secureDb]);
    const socket = tls.connect({ host: 'tls.example.test', port: tlsServer.port, ca: pki.caCertPem });
    expect(await echo(socket, 'secureConnect')).toBe('ping');
    expect(tlsServer.connections).toBe(1);
    expect(tlsServer.servernames).toEqual(['tls.example.test']);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.hook': 'tls',
      'url.scheme': 'tls',
      'egress.rule': 'secure-db',
    });
  });

  it('allowed in the (port, host, options) form', async () => {
    installWith([rules.secureDb]);
    const socket = tls.connect(tlsServer.port, 'tls.example.test', { ca: pki.caCertPem });
    expect(await echo(socket, 'secureConnect')).toBe('ping');
  });

  it('denied host: zero connections, the EgressError on the socket', async () => {
    installWith([rules.secureDb]);
    const socket = tls.connect({ host: 'evil.example.test', port: tlsServer.port, ca: pki.caCertPem });
    const error = await failure(socket);
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
    });
    await settle();
    expect(tlsServer.connections).toBe(0);
  });

  it('a tcp-only rule does not allow tls, and a tls rule does not allow raw tcp', async () => {
    installWith([rules.db, loopbackRule('secure-only', ['tls.example.test'], { schemes: ['tls'] })]);
    const viaTls = await failure(
      tls.connect({ host: 'db.example.test', port: tlsServer.port, ca: pki.caCertPem }),
    );
    expect(viaTls).toMatchObject({ reason: 'scheme_not_allowed', rule: 'db' });
    const viaTcp = await failure(net.connect({ host: 'tls.example.test', port: tcp.port }));
    expect(viaTcp).toMatchObject({ reason: 'scheme_not_allowed', rule: 'secure-only' });
    await settle();
    expect(tlsServer.connections + tcp.connections).toBe(0);
  });

  it("a socket refused as a recent request's transport is recorded, not refused silently", async () => {
    // A plaintext request allowed to db.example.test:port, then a TLS socket to the same host and port: it
    // is decided as that request's transport (https, wss or tls), which no rule allows. Before: refused
    // with no event, so nothing in the log said why it failed.
    installWith([loopbackRule('web', ['db.example.test'], { schemes: ['http'] })]);
    const req = http.request({ host: 'db.example.test', port: tcp.port, path: '/' });
    req.on('error', () => {});
    req.destroy();
    await settle();
    sink.clear();
    const error = await failure(tls.connect({ host: 'db.example.test', port: tcp.port, ca: pki.caCertPem }));
    expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'scheme_not_allowed' });
    await settle();
    expect(sink.decisions()).toEqual([
      expect.objectContaining({
        'egress.hook': 'tls',
        'egress.decision': 'denied',
        'egress.reason': 'scheme_not_allowed',
      }),
    ]);
    expect(sink.completions()).toEqual([
      expect.objectContaining({ 'egress.id': sink.decisions()[0]!['egress.id'], 'egress.outcome': 'denied' }),
    ]);
  });

  it('an IP literal host is decided as an address', async () => {
    installWith([rules.secureDb]);
    const error = await failure(tls.connect({ host: '127.0.0.1', port: tlsServer.port, ca: pki.caCertPem }));
    expect(error).toMatchObject({ reason: 'address_not_allowed', host: '127.0.0.1' });
    await settle();
    expect(tlsServer.connections).toBe(0);
  });
});
