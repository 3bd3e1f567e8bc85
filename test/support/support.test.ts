import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import dns from 'node:dns';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import * as dnsPacket from 'dns-packet';
import { Agent, ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  closedPort,
  countAccepts,
  createTestPki,
  lookupVia,
  okHandler,
  type RecordingServer,
  redirect,
  routes,
  runNode,
  startDnsServer,
  startForwardProxy,
  startHttpServer,
  startHttpsServer,
  startLegacyTlsServer,
  startSshLikeServer,
  startTcpServer,
  startTlsServer,
  type TestDnsServer,
  type TestPki,
  useDnsServer,
} from './index.js';

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function readAll(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
  });
}

function connectError(socket: net.Socket): Promise<NodeJS.ErrnoException> {
  return new Promise((resolve, reject) => {
    socket.once('error', resolve);
    socket.once('secureConnect', () => reject(new Error('handshake unexpectedly succeeded')));
  });
}

function httpGet(options: http.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
  });
}

let pki: TestPki;
const servers: Array<{ close(): Promise<void> }> = [];

/** Registers for teardown so a failing assertion never leaks a listener into the next test. */
function track<T extends { close(): Promise<void> }>(server: T): T {
  servers.push(server);
  return server;
}

beforeAll(async () => {
  pki = await createTestPki();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await pki.cleanup();
});

describe('pki', () => {
  it('makes a P-256 CA and leaves with IP and DNS SANs, serverAuth, signed by the CA', async () => {
    const ca = new X509Certificate(pki.caCertPem);
    expect(ca.ca).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');

    const { certPem, keyPem } = await pki.issue(['localhost', '127.0.0.1', '::1', 'api.example.test']);
    const leaf = new X509Certificate(certPem);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toBe(
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:api.example.test',
    );
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem))).toBe(true);
    expect(leaf.checkHost('api.example.test')).toBe('api.example.test');
    expect(leaf.checkIP('::1')).toBe('::1');
    expect(leaf.checkHost('other.test')).toBeUndefined();
  });

  it('caches the CA per process and issues expired certificates on request', async () => {
    const other = await createTestPki();
    try {
      expect(other.caCertPem).toBe(pki.caCertPem);
      expect(other.dir).not.toBe(pki.dir);
      const expired = new X509Certificate((await other.issue(['localhost'], { days: -1 })).certPem);
      expect(new Date(expired.validTo).getTime()).toBeLessThan(Date.now());
    } finally {
      await other.cleanup();
    }
  });

  it('throws an install hint when openssl is missing instead of skipping', async () => {
    vi.stubEnv('OPENSSL', '/nonexistent/openssl');
    vi.resetModules();
    try {
      const fresh = await import('./pki.js');
      await expect(fresh.createTestPki()).rejects.toThrow(/openssl.*Install it/s);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe('https server', () => {
  it('is reached by curl with --cacert and records the request, TLS version and SNI', async () => {
    const server = track(await startHttpsServer({ pki }));
    expect(server.url).toBe(`https://localhost:${server.port}`);
    expect(server.origin).toBe(`https://127.0.0.1:${server.port}`);

    const res = await run('curl', [
      '-sS',
      '--noproxy',
      '*',
      '--cacert',
      pki.caCertPath,
      `${server.url}/hello?x=1`,
    ]);
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toEqual({ ok: true, path: '/hello?x=1' });
    expect(server.connections).toBe(1);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.method).toBe('GET');
    expect(server.requests[0]?.url).toBe('/hello?x=1');
    expect(server.requests[0]?.headers['user-agent']).toMatch(/^curl\//);
    expect(server.tlsVersions).toEqual(['TLSv1.3']);
    expect(server.servernames).toEqual(['localhost']);
    expect(server.bytesReceived).toBeGreaterThan(100);
  });

  it('is refused by curl without the CA (the kit does not trust by accident)', async () => {
    const server = track(await startHttpsServer({ pki }));
    const res = await run('curl', ['-sS', '--noproxy', '*', `${server.url}/`]);
    expect(res.code).toBe(60);
    expect(server.requests).toHaveLength(0);
  });

  it("is reached by Node's fetch with an undici Agent carrying the CA, and records the body", async () => {
    const server = track(await startHttpsServer({ pki }));
    const dispatcher = new Agent({ connect: { ca: pki.caCertPem } });
    try {
      // npm undici's Agent and the bundled fetch's types come from different undici copies.
      const init = { method: 'POST', body: 'payload', dispatcher } as unknown as RequestInit;
      const res = await fetch(`${server.url}/post`, init);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ ok: true, path: '/post' });
      expect(server.requests[0]).toMatchObject({ method: 'POST', url: '/post', body: 'payload' });

      const viaUndici = await undiciFetch(`${server.origin}/by-ip`, { dispatcher });
      expect(viaUndici.status).toBe(200);
      await viaUndici.text();
      expect(server.requests.map((r) => r.url)).toEqual(['/post', '/by-ip']);
      // Keep-alive sockets are still open here: bytes must be counted live, not only on close.
      expect(server.bytesReceived).toBeGreaterThan(200);
      expect(server.connections).toBeGreaterThanOrEqual(1);

      // close() must not wait for the client's pooled keep-alive connections.
      const started = Date.now();
      await server.close();
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await dispatcher.close();
    }
  });

  it('fails a fetch without the CA', async () => {
    const server = track(await startHttpsServer({ pki }));
    await expect(fetch(`${server.url}/`)).rejects.toThrow();
    expect(server.requests).toHaveLength(0);
  });

  it('serves on ::1 when asked', async () => {
    const server = track(await startHttpsServer({ pki, host: '::1' }));
    expect(server.url).toBe(`https://[::1]:${server.port}`);
    expect(server.origin).toBe(`https://[::1]:${server.port}`);
    // Verified by name, not by the IP SAN: Node 22.23.x, 24.17+ and 26.4+ fail every IPv6 literal in
    // tls.checkServerIdentity (nodejs/node#64144), which the pki test above checks independently.
    const socket = tls.connect({
      host: '::1',
      port: server.port,
      servername: 'localhost',
      ca: pki.caCertPem,
    });
    await once(socket, 'secureConnect');
    socket.write('GET /v6 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(await readAll(socket)).toMatch(/"path":"\/v6"/);
    expect(server.connections).toBe(1);
  });

  it('follows redirects built with redirect() and routes()', async () => {
    const server = track(
      await startHttpsServer({
        pki,
        handler: routes({ '/start': redirect('/middle'), '/middle': redirect('/end') }),
      }),
    );
    const dispatcher = new Agent({ connect: { ca: pki.caCertPem } });
    try {
      const res = await undiciFetch(`${server.url}/start`, { dispatcher });
      expect(res.status).toBe(404); // '/end' has no route: the fallback answered
      await res.text();
      expect(server.requests.map((r) => r.url)).toEqual(['/start', '/middle', '/end']);
    } finally {
      await dispatcher.close();
    }
  });

  it('speaks HTTP/2 when asked and still allows HTTP/1.1', async () => {
    const server = track(await startHttpsServer({ pki, http2: true }));
    const client = http2.connect(server.url, { ca: pki.caCertPem });
    try {
      const stream = client.request({ ':path': '/h2' });
      stream.setEncoding('utf8');
      let body = '';
      stream.on('data', (c: string) => {
        body += c;
      });
      await once(stream, 'end');
      expect(JSON.parse(body)).toEqual({ ok: true, path: '/h2' });
      expect(server.requests[0]?.httpVersion).toBe('2.0');
    } finally {
      client.close();
    }
    const res = await run('curl', [
      '-sS',
      '--http1.1',
      '--noproxy',
      '*',
      '--cacert',
      pki.caCertPath,
      `${server.url}/h1`,
    ]);
    expect(JSON.parse(res.stdout)).toEqual({ ok: true, path: '/h1' });
    expect(server.requests.map((r) => r.httpVersion)).toEqual(['2.0', '1.1']);
  });

  it('reset() zeroes counters and records', async () => {
    const server = track(await startHttpServer());
    await httpGet({ host: '127.0.0.1', port: server.port, path: '/a', agent: false });
    expect(server.connections).toBe(1);
    server.reset();
    expect(server.connections).toBe(0);
    expect(server.bytesReceived).toBe(0);
    expect(server.requests).toHaveLength(0);
  });
});

describe('http server and ports', () => {
  it('records plain HTTP requests and counts zero connections when nobody calls', async () => {
    const idle = track(await startHttpServer());
    const server = track(await startHttpServer({ handler: okHandler }));
    expect(server.url).toBe(`http://localhost:${server.port}`);
    const res = await httpGet({ host: '127.0.0.1', port: server.port, path: '/plain', agent: false });
    expect(JSON.parse(res.body)).toEqual({ ok: true, path: '/plain' });
    expect(server.connections).toBe(1);
    expect(idle.connections).toBe(0);
    expect(idle.bytesReceived).toBe(0);
  });

  it('closedPort() is refused', async () => {
    const port = await closedPort();
    const socket = net.connect(port, '127.0.0.1');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    expect(err.code).toBe('ECONNREFUSED');
  });

  it('countAccepts() counts raw accepts on any server', async () => {
    const server = track(await startTcpServer());
    const counter = countAccepts(server.server);
    const socket = net.connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.destroy();
    await vi.waitFor(() => expect(counter.count).toBe(1));
    counter.stop();
  });
});

describe('legacy TLS server', () => {
  let server: RecordingServer;
  beforeAll(async () => {
    server = await startLegacyTlsServer({ pki });
  });
  afterAll(async () => {
    await server.close();
  });
  afterEach(() => server.reset());

  it('negotiates TLSv1.1 with a client that allows it', async () => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: pki.caCertPem,
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    await once(socket, 'secureConnect');
    expect(socket.getProtocol()).toBe('TLSv1.1');
    socket.write('GET /legacy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const text = await readAll(socket);
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(server.tlsVersions).toEqual(['TLSv1.1']);
    expect(server.requests.map((r) => r.url)).toEqual(['/legacy']);
  });

  it('refuses a default Node client, after accepting its TCP connection', async () => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: pki.caCertPem,
    });
    const err = await connectError(socket);
    expect(err.code).toMatch(/^ERR_SSL_/);
    await vi.waitFor(() => expect(server.tlsErrors).toHaveLength(1));
    expect(server.tlsErrors[0]).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
    expect(server.tlsVersions).toEqual([]);
    expect(server.connections).toBe(1);
  });
});

describe('raw servers', () => {
  it('TCP server echoes and counts bytes', async () => {
    const server = track(await startTcpServer());
    const socket = net.connect(server.port, '127.0.0.1');
    socket.end('ping');
    expect(await readAll(socket)).toBe('ping');
    expect(server.connections).toBe(1);
    expect(server.bytesReceived).toBe(4);
  });

  it('TLS server echoes after a handshake with the CA', async () => {
    const server = track(await startTlsServer({ pki, maxVersion: 'TLSv1.2' }));
    const socket = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: pki.caCertPem,
    });
    await once(socket, 'secureConnect');
    socket.end('hello tls');
    expect(await readAll(socket)).toBe('hello tls');
    expect(server.tlsVersions).toEqual(['TLSv1.2']);
    expect(server.bytesReceived).toBeGreaterThan('hello tls'.length);
  });

  it('SSH-like server sends its banner and records the client banner', async () => {
    const server = track(await startSshLikeServer());
    const socket = net.connect(server.port, '127.0.0.1');
    const [first] = (await once(socket, 'data')) as [Buffer];
    expect(first.toString()).toBe('SSH-2.0-TestServer_1.0\r\n');
    socket.write('SSH-2.0-OpenSSH_9.6 extra\r\n');
    await vi.waitFor(() => expect(server.clientBanners).toEqual(['SSH-2.0-OpenSSH_9.6 extra']));
    socket.destroy();
  });
});

describe('forward proxy', () => {
  it('tunnels CONNECT and records the target', async () => {
    const target = track(await startHttpsServer({ pki }));
    const proxy = track(await startForwardProxy());
    const req = http.request({
      host: '127.0.0.1',
      port: proxy.port,
      method: 'CONNECT',
      path: `localhost:${target.port}`,
      agent: false,
    });
    req.end();
    const [res, tunnel] = (await once(req, 'connect')) as [http.IncomingMessage, net.Socket];
    expect(res.statusCode).toBe(200);
    const socket = tls.connect({ socket: tunnel, servername: 'localhost', ca: pki.caCertPem });
    await once(socket, 'secureConnect');
    socket.write('GET /tunnelled HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(await readAll(socket)).toMatch(/"path":"\/tunnelled"/);
    expect(proxy.targets).toEqual([
      expect.objectContaining({ method: 'CONNECT', target: `localhost:${target.port}` }),
    ]);
    expect(proxy.connections).toBe(1);
    expect(target.connections).toBe(1);
  });

  it("works as undici's ProxyAgent for HTTPS", async () => {
    const target = track(await startHttpsServer({ pki }));
    const proxy = track(await startForwardProxy());
    const dispatcher = new ProxyAgent({ uri: proxy.url, requestTls: { ca: pki.caCertPem } });
    try {
      const res = await undiciFetch(`${target.url}/through`, { dispatcher });
      expect(await res.json()).toEqual({ ok: true, path: '/through' });
      expect(proxy.targets[0]?.target).toBe(`localhost:${target.port}`);
    } finally {
      await dispatcher.close();
    }
  });

  it('forwards absolute-form HTTP requests', async () => {
    const target = track(await startHttpServer());
    const proxy = track(await startForwardProxy());
    const res = await httpGet({
      host: '127.0.0.1',
      port: proxy.port,
      path: `${target.origin}/abs?q=1`,
      headers: { host: `127.0.0.1:${target.port}` },
      agent: false,
    });
    expect(JSON.parse(res.body)).toEqual({ ok: true, path: '/abs?q=1' });
    expect(proxy.targets[0]).toMatchObject({ method: 'GET', target: `${target.origin}/abs?q=1` });
    expect(target.requests[0]?.url).toBe('/abs?q=1');
  });

  it('answers 403 without dialling when allow() says no', async () => {
    const target = track(await startHttpsServer({ pki }));
    const proxy = track(await startForwardProxy({ allow: () => false }));
    const req = http.request({
      host: '127.0.0.1',
      port: proxy.port,
      method: 'CONNECT',
      path: `localhost:${target.port}`,
    });
    req.end();
    const [res] = (await once(req, 'connect')) as [http.IncomingMessage, net.Socket];
    expect(res.statusCode).toBe(403);
    expect(proxy.targets).toHaveLength(1);
    expect(target.connections).toBe(0);
  });
});

describe('dns server', () => {
  let server: TestDnsServer;
  let resolver: dns.promises.Resolver;
  beforeAll(async () => {
    server = await startDnsServer({
      'api.test': [
        { type: 'A', data: '10.1.2.3' },
        { type: 'AAAA', data: 'fd00::1' },
      ],
      'alias.test': [{ type: 'CNAME', data: 'api.test' }],
      'svc.test': [{ type: 'A', data: '127.0.0.1' }],
      '*.wild.test': [{ type: 'A', data: '10.9.9.9' }],
      'rebind.test': (n) => [{ type: 'A', data: n === 1 ? '93.184.216.34' : '127.0.0.1', ttl: 0 }],
    });
    resolver = new dns.promises.Resolver();
    resolver.setServers([`127.0.0.1:${server.port}`]);
  });
  afterAll(async () => {
    await server.close();
  });
  afterEach(() => server.reset());

  it('answers A and AAAA and counts every query', async () => {
    expect(await resolver.resolve4('api.test')).toEqual(['10.1.2.3']);
    // TTL 0 by default, so no resolver cache can hide a repeat query.
    expect(await resolver.resolve6('api.test', { ttl: true })).toEqual([{ address: 'fd00::1', ttl: 0 }]);
    expect(server.queries).toEqual([
      { name: 'api.test', type: 'A', transport: 'udp' },
      { name: 'api.test', type: 'AAAA', transport: 'udp' },
    ]);
  });

  it('answers NXDOMAIN for unknown names and still counts them', async () => {
    await expect(resolver.resolve4('secret-data.exfil.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(server.queries.map((q) => q.name)).toEqual(['secret-data.exfil.test']);
  });

  it('follows CNAMEs and wildcards', async () => {
    expect(await resolver.resolve4('alias.test')).toEqual(['10.1.2.3']);
    expect(await resolver.resolve4('deep.label.wild.test')).toEqual(['10.9.9.9']);
  });

  it('serves TTL 0 and answers that change between queries (rebinding)', async () => {
    const first = await resolver.resolve4('rebind.test', { ttl: true });
    const second = await resolver.resolve4('rebind.test', { ttl: true });
    expect(first).toEqual([{ address: '93.184.216.34', ttl: 0 }]);
    expect(second).toEqual([{ address: '127.0.0.1', ttl: 0 }]);
    server.set('rebind.test', [{ type: 'A', data: '10.0.0.7' }]);
    expect(await resolver.resolve4('rebind.test')).toEqual(['10.0.0.7']);
    server.set('rebind.test', undefined);
    await expect(resolver.resolve4('rebind.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('answers over TCP on the same port, matching names case-insensitively', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    const query = dnsPacket.streamEncode({
      type: 'query',
      id: 7,
      questions: [{ type: 'A', name: 'API.Test' }],
    });
    const reply = new Promise<Buffer>((resolve) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) resolve(buf);
      });
    });
    socket.write(query);
    const decoded = dnsPacket.streamDecode(await reply);
    socket.destroy();
    expect(decoded.id).toBe(7);
    expect(decoded.answers?.[0]).toMatchObject({ type: 'A', data: '10.1.2.3' });
    // c-ares lower-cases names itself, so only a hand-made query shows the table ignoring case.
    expect(server.queries).toEqual([{ name: 'API.Test', type: 'A', transport: 'tcp' }]);
  });

  it('useDnsServer() points dns.resolve* at it and restores the previous servers', async () => {
    const before = dns.getServers();
    const restore = useDnsServer(server);
    try {
      expect(dns.getServers()).toEqual([`127.0.0.1:${server.port}`]);
      expect(await dns.promises.resolve4('api.test')).toEqual(['10.1.2.3']);
      const viaCallback = await new Promise<string[]>((resolve, reject) =>
        dns.resolve4('svc.test', (err, a) => (err ? reject(err) : resolve(a))),
      );
      expect(viaCallback).toEqual(['127.0.0.1']);
    } finally {
      restore();
    }
    expect(dns.getServers()).toEqual(before);
    expect(server.queries.map((q) => q.name)).toEqual(['api.test', 'svc.test']);
  });

  it('lookupVia() resolves like dns.lookup (single, all, family) and works for http.get', async () => {
    const lookup = lookupVia(server);
    const one = await new Promise<[string, number]>((resolve, reject) =>
      lookup('api.test', {}, (err, address, family) =>
        err ? reject(err) : resolve([address as string, family!]),
      ),
    );
    expect(one).toEqual(['10.1.2.3', 4]);
    const all = await new Promise<unknown>((resolve, reject) =>
      lookup('api.test', { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
    );
    expect(all).toEqual([
      { address: '10.1.2.3', family: 4 },
      { address: 'fd00::1', family: 6 },
    ]);
    const v6 = await new Promise<[string, number]>((resolve, reject) =>
      lookup('api.test', { family: 6 }, (err, address, family) =>
        err ? reject(err) : resolve([address as string, family!]),
      ),
    );
    expect(v6).toEqual(['fd00::1', 6]);

    const target = track(await startHttpServer());
    server.reset();
    const res = await httpGet({ host: 'svc.test', port: target.port, path: '/named', lookup, agent: false });
    expect(JSON.parse(res.body)).toEqual({ ok: true, path: '/named' });
    expect(target.requests[0]?.headers.host).toBe(`svc.test:${target.port}`);
    expect(server.queries.some((q) => q.name === 'svc.test' && q.type === 'A')).toBe(true);
  });

  it('lookupVia() fails unknown names with ENOTFOUND before any connection', async () => {
    const target = track(await startHttpServer());
    const err = await httpGet({
      host: 'nowhere.test',
      port: target.port,
      lookup: lookupVia(server),
      agent: false,
    }).catch((e: NodeJS.ErrnoException) => e);
    expect(err).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo' });
    expect(target.connections).toBe(0);
    expect(server.queries.map((q) => q.name)).toContain('nowhere.test');
  });

  it('lookupVia() passes IP literals through without a query', async () => {
    const lookup = lookupVia(server);
    const address = await new Promise<string>((resolve, reject) =>
      lookup('127.0.0.1', {}, (err, a) => (err ? reject(err) : resolve(a as string))),
    );
    expect(address).toBe('127.0.0.1');
    expect(server.queries).toHaveLength(0);
  });
});

describe('runNode', () => {
  it('runs the same Node and collects exit code, stdout and stderr', async () => {
    const res = await runNode(['-e', 'console.log(process.version); console.error("oops"); process.exit(3)']);
    expect(res).toMatchObject({ code: 3, stdout: `${process.version}\n`, stderr: 'oops\n', timedOut: false });
  });

  it('passes stdin, env (with removal) and cwd', async () => {
    process.env.EG_KIT_REMOVE_ME = 'x';
    try {
      const res = await runNode(
        [
          '-e',
          'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify([s,process.env.EG_KIT_A,process.env.EG_KIT_REMOVE_ME??null,process.cwd()])))',
        ],
        { input: 'in', env: { EG_KIT_A: 'a', EG_KIT_REMOVE_ME: undefined }, cwd: pki.dir },
      );
      expect(JSON.parse(res.stdout)).toEqual(['in', 'a', null, pki.dir]);
    } finally {
      delete process.env.EG_KIT_REMOVE_ME;
    }
  });

  it('kills the child on timeout', async () => {
    const res = await runNode(['-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 300 });
    expect(res).toMatchObject({ code: null, signal: 'SIGKILL', timedOut: true });
  });
});
