/**
 * The explicit proxy with plaintext: absolute-form HTTP requests decided one by one (method and path
 * rules, keep-alive), SSH banners through CONNECT, and raw TCP where a rule allows `tcp`.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type RecordingServer,
  type SshLikeServer,
  startHttpServer,
  startSshLikeServer,
  startTcpServer,
} from '../../../test/support/index.js';
import {
  connectTunnel,
  echo,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  untilClosed,
} from './helpers/edge-kit.js';

const POLICY = `
version: 1
allow:
  - name: web
    hosts: [web.test]
    schemes: [http]
    ports: [${TEST_PORTS}]
    methods: [GET]
    paths: ["/ok/**"]
    privateAddresses: allow
  - name: git
    hosts: [git.test, old-git.test]
    schemes: [ssh]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: chat
    hosts: [chat.test]
    schemes: [ws]
    ports: [${TEST_PORTS}]
    paths: ["/socket"]
    privateAddresses: allow
  - name: db
    hosts: [db.test]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`;

let web: RecordingServer;
let ssh: SshLikeServer;
let oldSsh: SshLikeServer;
let tcp: RecordingServer;
let chat: RecordingServer;
let t: TestEdge;

beforeAll(async () => {
  web = await startHttpServer();
  ssh = await startSshLikeServer();
  oldSsh = await startSshLikeServer({ banner: 'SSH-1.5-OldServer' });
  tcp = await startTcpServer();
  // A WebSocket-like server: answers 101 to the upgrade head, then echoes.
  chat = await startTcpServer({
    onConnection(socket) {
      let head = '';
      const onData = (c: Buffer) => {
        head += c.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        const rest = head.slice(end + 4);
        if (rest) socket.write(Buffer.from(rest, 'latin1'));
        socket.pipe(socket);
      };
      socket.on('data', onData);
    },
  });
  t = await startTestEdge(
    {
      policy: policyOf(POLICY),
      listeners: [
        { kind: 'explicit', port: 0 },
        { kind: 'sni', port: 0, upstreamPort: web.port },
      ],
    },
    {
      'web.test': ['127.0.0.1'],
      'git.test': ['127.0.0.1'],
      'old-git.test': ['127.0.0.1'],
      'db.test': ['127.0.0.1'],
      'chat.test': ['127.0.0.1'],
    },
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await Promise.all([web?.close(), ssh?.close(), oldSsh?.close(), tcp?.close(), chat?.close()]);
});
beforeEach(() => {
  for (const s of [web, ssh, oldSsh, tcp, chat]) s.reset();
  t.capture.lines.length = 0;
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One absolute-form request through the proxy on `agent` (keep-alive when given). */
function proxied(
  method: string,
  url: string,
  agent?: http.Agent,
  extra: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: t.port('explicit'),
        method,
        path: url,
        headers: { host: u.host, ...extra },
        agent,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.once('error', reject);
    req.end();
  });
}

describe('absolute-form plaintext HTTP', () => {
  it('forwards allowed requests and denies others by method and path, each request decided on a kept-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = `http://web.test:${web.port}`;
      const ok = await proxied('GET', `${base}/ok/one?token=secret`, agent);
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toEqual({ ok: true, path: '/ok/one?token=secret' });
      const badPath = await proxied('GET', `${base}/admin`, agent);
      expect(badPath.status).toBe(403);
      expect(badPath.headers['x-egress-reason']).toBe('path_not_allowed');
      const badMethod = await proxied('POST', `${base}/ok/two`, agent);
      expect(badMethod.status).toBe(403);
      expect(badMethod.headers['x-egress-reason']).toBe('method_not_allowed');
      const again = await proxied('GET', `${base}/ok/three`, agent);
      expect(again.status).toBe(200);
    } finally {
      agent.destroy();
    }
    // The server saw exactly the allowed requests, in origin form.
    expect(web.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /ok/one?token=secret',
      'GET /ok/three',
    ]);
    expect(web.connections).toBe(2);
    // One TCP connection to the edge carried four flows: four decisions, four completions.
    await t.capture.waitFor((l) => l.filter((e) => e['event.name'] === 'egress.completion').length === 4);
    const decisions = t.capture.decisions();
    expect(decisions.map((d) => d['egress.reason'])).toEqual([
      'allowed',
      'path_not_allowed',
      'method_not_allowed',
      'allowed',
    ]);
    expect(new Set(decisions.map((d) => d['client.address']))).toEqual(new Set(['127.0.0.1']));
    // The query string never reaches the log.
    expect(JSON.stringify(t.capture.lines)).not.toContain('secret');
    expect(decisions[0]).toMatchObject({
      'url.full': `http://web.test:${web.port}/ok/one`,
      'http.request.method': 'GET',
    });
    const first = t.capture.completions().find((c) => c['egress.id'] === decisions[0]!['egress.id'])!;
    expect(first).toMatchObject({ 'http.response.status_code': 200, 'egress.outcome': 'ok' });
    expect(first['egress.bytes.received']).toBeGreaterThan(0);
  });

  it('refuses a Host header that differs from the request URL (sni_mismatch)', async () => {
    const r = await proxied('GET', `http://web.test:${web.port}/ok/x`, undefined, { host: 'evil.test' });
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-reason']).toBe('sni_mismatch');
    expect(web.connections).toBe(0);
  });

  it('refuses origin-form requests and https:// URLs sent to the proxy in plaintext', async () => {
    const origin = await new Promise<string>((resolve) => {
      const s = net.connect(t.port('explicit'), '127.0.0.1', () =>
        s.write('GET /ok/x HTTP/1.1\r\nHost: web.test\r\n\r\n'),
      );
      untilClosed(s).then(
        (b) => resolve(b.toString('latin1')),
        () => resolve(''),
      );
    });
    expect(origin).toMatch(/^HTTP\/1.1 400 .*x-egress-reason: protocol_not_allowed/s);
    const https = await proxied('GET', `https://web.test:${web.port}/ok/x`);
    expect(https.status).toBe(400);
    expect(web.connections).toBe(0);
  });

  it('refuses a malformed head with 400 and never dials', async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(t.port('explicit'), '127.0.0.1', () =>
        s.write(`GET http://web.test:${web.port}/ok/x HTTP/1.1\nHost: web.test\n\n`),
      );
      untilClosed(s).then(
        (b) => resolve(b.toString('latin1')),
        () => resolve(''),
      );
    });
    expect(reply).toMatch(/^HTTP\/1.1 400/);
    await t.capture.completed({ 'egress.reason': 'protocol_not_allowed' });
    expect(web.connections).toBe(0);
  });
});

describe('SSH through CONNECT', () => {
  it('relays an SSH-2 client to an SSH-2 server', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `git.test:${ssh.port}`);
    expect(tunnel.status).toBe(200);
    const banner = await echo(tunnel.socket, Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), 5000);
    expect(banner.toString('latin1')).toContain('SSH-2.0-TestServer_1.0');
    tunnel.socket.destroy();
    const { decision } = await t.capture.completed({ 'egress.rule': 'git' });
    expect(decision).toMatchObject({ 'url.scheme': 'ssh', 'egress.decision': 'allowed' });
    expect(ssh.clientBanners).toEqual(['SSH-2.0-OpenSSH_9.6']);
  });

  it('refuses an SSH-1 client before dialling (protocol_not_allowed)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `git.test:${ssh.port}`);
    tunnel.socket.write('SSH-1.5-OldClient\r\n');
    await untilClosed(tunnel.socket);
    await t.capture.completed({ 'egress.reason': 'protocol_not_allowed' });
    expect(ssh.connections).toBe(0);
  });

  it('closes both sides when the server speaks SSH-1', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `old-git.test:${oldSsh.port}`);
    tunnel.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    const got = await untilClosed(tunnel.socket);
    expect(got.toString('latin1')).not.toContain('SSH-1.5');
    const { completion } = await t.capture.completed({
      'egress.rule': 'git',
      'server.address': 'old-git.test',
    });
    expect(completion).toMatchObject({
      'egress.outcome': 'denied',
      'egress.close_reason': 'protocol_not_allowed',
    });
  });
});

describe('raw TCP', () => {
  it('relays unknown bytes byte-exact where a rule allows tcp, with exact counts in the close event', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `db.test:${tcp.port}`);
    const payload = Buffer.concat([
      Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]),
      Buffer.alloc(100_000, 0xab),
    ]);
    const back = await echo(tunnel.socket, payload);
    expect(back.equals(payload)).toBe(true);
    tunnel.socket.end();
    await untilClosed(tunnel.socket);
    const { completion } = await t.capture.completed({ 'egress.rule': 'db' });
    expect(completion).toMatchObject({
      'egress.bytes.sent': payload.length,
      'egress.bytes.received': payload.length,
      'egress.outcome': 'ok',
      'egress.close_reason': 'client_closed',
    });
    expect(tcp.bytesReceived).toBe(payload.length);
  });
});

describe('WebSocket upgrades and CONNECT on a kept-alive proxy connection', () => {
  /** Writes `request` on a raw connection to the proxy and returns the socket once `until` was read. */
  function raw(request: string, until: RegExp): Promise<{ socket: net.Socket; text: string }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(t.port('explicit'), '127.0.0.1', () => socket.write(request));
      let text = '';
      const timer = setTimeout(() => reject(new Error(`no ${until} in ${JSON.stringify(text)}`)), 5000);
      const onData = (c: Buffer) => {
        text += c.toString('latin1');
        if (until.test(text)) {
          clearTimeout(timer);
          socket.off('data', onData);
          resolve({ socket, text });
        }
      };
      socket.on('data', onData);
      socket.on('error', reject);
    });
  }

  it('decides an upgrade as ws with its path, then splices it', async () => {
    const head = (path: string) =>
      `GET http://chat.test:${chat.port}${path} HTTP/1.1\r\nHost: chat.test:${chat.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    const { socket } = await raw(head('/socket'), /\r\n\r\n/);
    expect((await echo(socket, Buffer.from('frame bytes'))).toString()).toBe('frame bytes');
    socket.destroy();
    const { decision } = await t.capture.completed({ 'egress.rule': 'chat' });
    expect(decision).toMatchObject({
      'url.scheme': 'ws',
      'url.path': '/socket',
      'egress.decision': 'allowed',
    });
    const denied = await raw(head('/other'), /\r\n\r\n/);
    expect(denied.text).toMatch(/^HTTP\/1.1 403 .*x-egress-reason: path_not_allowed/s);
    denied.socket.destroy();
    expect(chat.connections).toBe(1);
  });

  it('opens a tunnel with CONNECT after a plaintext request on the same connection', async () => {
    const first = await raw(
      `GET http://web.test:${web.port}/ok/first HTTP/1.1\r\nHost: web.test:${web.port}\r\n\r\n`,
      /"path":"\/ok\/first"/,
    );
    first.socket.write(`CONNECT db.test:${tcp.port} HTTP/1.1\r\nHost: db.test:${tcp.port}\r\n\r\n`);
    const established = await new Promise<string>((resolve) => {
      let text = '';
      first.socket.on('data', function onData(c: Buffer) {
        text += c.toString('latin1');
        if (text.includes('\r\n\r\n')) {
          first.socket.off('data', onData);
          resolve(text);
        }
      });
    });
    expect(established).toMatch(/^HTTP\/1.1 200/);
    expect((await echo(first.socket, Buffer.from('\x00tunnel'))).toString()).toBe('\x00tunnel');
    first.socket.destroy();
    await t.capture.completed({ 'egress.rule': 'db' });
  });
});

describe('plaintext HTTP inside a tunnel and on the SNI listener', () => {
  /** Sends `text` on a fresh socket (after an optional CONNECT) and returns everything until close. */
  async function exchange(port: number, text: string, connect?: string): Promise<string> {
    let socket: net.Socket;
    if (connect) {
      const tunnel = await connectTunnel(port, connect);
      expect(tunnel.status).toBe(200);
      socket = tunnel.socket;
      socket.write(text);
    } else {
      socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    }
    return (await untilClosed(socket)).toString('latin1');
  }

  it('inside CONNECT: forwards when Host names the CONNECT host, refuses another (sni_mismatch)', async () => {
    const port = t.port('explicit');
    const ok = await exchange(
      port,
      `GET /ok/tunnel HTTP/1.1\r\nHost: web.test:${web.port}\r\nConnection: close\r\n\r\n`,
      `web.test:${web.port}`,
    );
    expect(ok).toMatch(/^HTTP\/1.1 200/);
    const bad = await exchange(
      port,
      'GET /ok/tunnel HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n',
      `web.test:${web.port}`,
    );
    expect(bad).toMatch(/^HTTP\/1.1 403 .*x-egress-reason: sni_mismatch/s);
    expect(web.requests.map((r) => r.url)).toEqual(['/ok/tunnel']);
  });

  it('on the SNI listener: routes by Host, refuses a request without one', async () => {
    const port = t.port('sni');
    const ok = await exchange(
      port,
      'GET /ok/by-host HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n',
    );
    expect(ok).toMatch(/^HTTP\/1.1 200/);
    const none = await exchange(port, 'GET /ok/no-host HTTP/1.0\r\n\r\n');
    expect(none).toMatch(/^HTTP\/1.1 403 .*x-egress-reason: sni_missing/s);
    expect(web.requests.map((r) => r.url)).toEqual(['/ok/by-host']);
    const { decision } = await t.capture.completed({ 'egress.hook': 'edge.sni', 'egress.reason': 'allowed' });
    expect(decision).toMatchObject({
      'url.scheme': 'http',
      'server.address': 'web.test',
      'server.port': web.port,
    });
  });
});
