/**
 * The `ws` WebSocket client, unchanged, under install(): it opens its handshake with the (patched)
 * https/http `request` and its own `createConnection` (tls.connect/net.connect), so the handshake is
 * decided as `wss`/`ws` with its path, and the TLS socket carries that decision (every dialled address
 * checked, TLS floor). A rule `schemes: [wss]` allows WebSockets and nothing else on that host.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  type EventSink,
  errorEvent,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from '../threats/kit.js';

const NAMES = ['ws.example.test', 'evil.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let secure: RecordingServer;
let evil: RecordingServer;
let plain: RecordingServer;
let wss: WebSocketServer;
let plainWss: WebSocketServer;
let evilWss: WebSocketServer;
let sink: EventSink;
const opened: WebSocket[] = [];

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [loopbackRule('sockets', ['ws.example.test'], { schemes: ['wss'], paths: ['/v1/**'] })],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

function open(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): WebSocket {
  const socket = new WebSocket(url, { ca: pki.caCertPem, ...options });
  opened.push(socket);
  return socket;
}

/** An echoing WebSocket endpoint on a kit server; `/v1/to-evil` answers the handshake with a redirect. */
function attachWebSockets(server: RecordingServer): WebSocketServer {
  const endpoint = new WebSocketServer({ noServer: true });
  endpoint.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
  server.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url === '/v1/to-evil') {
      socket.end(
        `HTTP/1.1 302 Found\r\nLocation: wss://evil.example.test:${evil.port}/v1/socket\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    endpoint.handleUpgrade(req, socket, head, (ws) => endpoint.emit('connection', ws, req));
  });
  return endpoint;
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  secure = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
  evil = await startHttpsServer({ pki, names: [...NAMES, 'localhost'] });
  plain = await startHttpServer();
  wss = attachWebSockets(secure);
  plainWss = attachWebSockets(plain);
  evilWss = attachWebSockets(evil);
});

afterEach(async () => {
  for (const socket of opened.splice(0)) socket.terminate();
  await uninstall();
  for (const s of [secure, evil, plain]) s.reset();
  dns.reset();
});

afterAll(async () => {
  wss.close();
  plainWss.close();
  evilWss.close();
  await Promise.all([secure, evil, plain].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('ws client: allowed', () => {
  it('a wss:// socket to a listed host opens and echoes; decided as wss with its path', async () => {
    installGuard();
    const socket = open(`wss://ws.example.test:${secure.port}/v1/socket`);
    const reply = await new Promise<string>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('open', () => socket.send('hello'));
      socket.once('message', (data) => resolve(String(data)));
    });
    expect(reply).toBe('echo:hello');
    expect(secure.connections).toBe(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'sockets',
      'url.scheme': 'wss',
      'url.path': '/v1/socket',
      'server.address': 'ws.example.test',
    });
  });
});

describe('ws client: denied, and the server sees nothing', () => {
  it('a host no rule lists: the error event carries EgressError host_not_allowed; zero connections', async () => {
    installGuard();
    const error = await errorEvent(open(`wss://evil.example.test:${evil.port}/v1/socket`), 'open');
    expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(evil.connections).toBe(0);
  });

  it('a path the rule does not list: path_not_allowed', async () => {
    installGuard();
    const error = await errorEvent(open(`wss://ws.example.test:${secure.port}/admin`), 'open');
    expectEgress(error, { reason: 'path_not_allowed', rule: 'sockets' });
    expect(secure.connections).toBe(0);
  });

  it('plaintext ws:// to the same host: scheme_not_allowed (the rule lists wss only)', async () => {
    installGuard();
    const error = await errorEvent(open(`ws://ws.example.test:${plain.port}/v1/socket`), 'open');
    expectEgress(error, { reason: 'scheme_not_allowed' });
    expect(plain.connections).toBe(0);
  });

  it('a plain https GET to the WebSocket host: scheme_not_allowed (wss is not https)', async () => {
    installGuard();
    const error = await failureOf(fetch(`https://ws.example.test:${secure.port}/v1/socket`));
    expectEgress(error, { reason: 'scheme_not_allowed' });
    expect(secure.connections).toBe(0);
  });

  it('followRedirects to a host no rule lists: the second handshake is denied before connecting', async () => {
    installGuard();
    const error = await errorEvent(
      open(`wss://ws.example.test:${secure.port}/v1/to-evil`, { followRedirects: true }),
      'open',
    );
    expectEgress(error, { reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(secure.connections).toBe(1);
    expect(evil.connections).toBe(0);
  });
});
