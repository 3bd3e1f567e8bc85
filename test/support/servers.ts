import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { TestPki } from './pki.js';
import { listenEphemeral } from './ports.js';

/** One HTTP request as the server received it. */
export interface RecordedRequest {
  /** Request method, e.g. `GET`. */
  method: string;
  /** Request target as sent: origin-form (`/path?q`) normally, absolute-form through a proxy. */
  url: string;
  /** Headers as Node parsed them (lower-case names; HTTP/2 pseudo-headers included). */
  headers: IncomingHttpHeaders;
  /** Whole request body, UTF-8 decoded. */
  body: string;
  /** `1.1` or `2.0`. */
  httpVersion: string;
}

/**
 * Handler for {@link startHttpServer} and {@link startHttpsServer}. Runs after the body has been read
 * (so the request is already in {@link RecordingServer.requests}); the body is passed as `body` since
 * the stream has been consumed. With `http2: true` the objects are Node's HTTP/2 compatibility
 * request/response, which offer the same `writeHead`/`end`/`setHeader` used by tests.
 */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>;

/** A loopback server that records what reached it. */
export interface RecordingServer {
  /**
   * Base URL by name, no trailing slash: `https://localhost:PORT` when bound to 127.0.0.1 (the test
   * certificate covers `localhost`), `http://[::1]:PORT` when bound to ::1 (this host may not map
   * `localhost` to ::1). Scheme is `http`, `https`, `tls`, `tcp`, or `ssh`.
   */
  url: string;
  /** Address the server is bound to, e.g. `127.0.0.1` or `::1`. */
  host: string;
  /** Ephemeral port the server listens on. */
  port: number;
  /** Same server by address literal, no trailing slash: `https://127.0.0.1:PORT`, `https://[::1]:PORT`. */
  origin: string;
  /**
   * TCP connections accepted, counted on the server's `'connection'` event, i.e. before any TLS or
   * HTTP byte is parsed. Zero is the proof that a denied destination never got a packet.
   */
  readonly connections: number;
  /** Bytes read from accepted sockets (raw TCP, so TLS handshakes count too). */
  readonly bytesReceived: number;
  /** HTTP requests received, in order of completion. Empty for non-HTTP servers. */
  requests: RecordedRequest[];
  /** Negotiated protocol (`TLSv1.3`, `TLSv1.1`, ...) per completed TLS handshake. */
  tlsVersions: string[];
  /** SNI sent by each client that completed a handshake; `false` when the client sent none. */
  servernames: Array<string | false>;
  /** Error code (or message) of each failed TLS handshake, e.g. `ERR_SSL_UNSUPPORTED_PROTOCOL`. */
  tlsErrors: string[];
  /** The underlying server, for tests that need its events. */
  server: net.Server;
  /** Zeroes the counters and empties the records; open sockets stay open. */
  reset(): void;
  /** Stops listening and destroys every socket the server accepted or opened. Idempotent. */
  close(): Promise<void>;
}

/** Options shared by the TLS-speaking servers. */
export interface TlsServerOptions {
  /** CA that issues the server certificate. */
  pki: TestPki;
  /** Names in the certificate's subjectAltName. Default `['localhost', '127.0.0.1', '::1']`. */
  names?: string[];
  /** Bind address. Default `'127.0.0.1'`. */
  host?: string;
  /** Lowest TLS version accepted. Default: Node's (`TLSv1.2`). */
  minVersion?: tls.SecureVersion;
  /** Highest TLS version accepted. Default: Node's (`TLSv1.3`). */
  maxVersion?: tls.SecureVersion;
  /** OpenSSL cipher list (TLS ≤ 1.2). Default: Node's. */
  ciphers?: string;
  /** ALPN protocols to offer. Default: none (HTTP servers set their own). */
  ALPNProtocols?: string[];
}

const DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1'];

const noop = (): void => {};

function hostForUrl(address: string): string {
  return net.isIPv6(address) ? `[${address}]` : address;
}

function endpoints(scheme: string, host: string, port: number): { url: string; origin: string } {
  const loopbackV4 = host === '127.0.0.1' || host === '0.0.0.0';
  const anyV6 = host === '::' || host === '::1';
  const addr = loopbackV4 ? '127.0.0.1' : anyV6 ? '::1' : host;
  // `localhost` only where it is certain to reach the socket: /etc/hosts may map it to 127.0.0.1 alone.
  const name = loopbackV4 || host === '::' ? 'localhost' : hostForUrl(addr);
  return { url: `${scheme}://${name}:${port}`, origin: `${scheme}://${hostForUrl(addr)}:${port}` };
}

/** Bookkeeping shared by every server kind. */
class Recorder {
  connections = 0;
  requests: RecordedRequest[] = [];
  tlsVersions: string[] = [];
  servernames: Array<string | false> = [];
  tlsErrors: string[] = [];
  /** Accepted raw sockets and the `bytesRead` they had at the last reset. */
  private readonly raw = new Map<net.Socket, number>();
  /** Every socket to destroy on close: raw, TLS-wrapped, and upstream (proxy). */
  readonly owned = new Set<net.Socket>();
  private closed: Promise<void> | undefined;

  constructor(readonly server: net.Server) {
    server.on('connection', (socket: net.Socket) => {
      this.connections++;
      this.raw.set(socket, 0);
      this.own(socket);
    });
  }

  own(socket: net.Socket): void {
    // A client resetting mid-test must not crash the worker with an unhandled 'error'.
    socket.on('error', noop);
    this.owned.add(socket);
    socket.once('close', () => this.owned.delete(socket));
  }

  get bytesReceived(): number {
    // Read live from the raw sockets: a TLS-wrapped raw socket never emits 'data' or 'close' itself, but
    // its bytesRead keeps counting while open and is kept after destroy.
    let total = 0;
    for (const [socket, base] of this.raw) total += socket.bytesRead - base;
    return total;
  }

  trackTls(server: tls.Server): void {
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.tlsVersions.push(socket.getProtocol() ?? 'unknown');
      const sni = (socket as tls.TLSSocket & { servername?: string | false }).servername;
      this.servernames.push(typeof sni === 'string' && sni !== '' ? sni : false);
      this.own(socket);
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.tlsErrors.push(err.code ?? err.message);
      socket.destroy();
    });
  }

  reset(): void {
    this.connections = 0;
    this.requests.length = 0;
    this.tlsVersions.length = 0;
    this.servernames.length = 0;
    this.tlsErrors.length = 0;
    for (const socket of [...this.raw.keys()]) {
      if (socket.destroyed) this.raw.delete(socket);
      else this.raw.set(socket, socket.bytesRead);
    }
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      // server.close() waits for open connections (keep-alive, tunnels), so destroy them ourselves.
      this.server.close(() => resolve());
      const maybeHttp = this.server as Partial<http.Server>;
      maybeHttp.closeAllConnections?.call(this.server);
      for (const socket of this.raw.keys()) socket.destroy();
      for (const socket of this.owned) socket.destroy();
    });
    return this.closed;
  }

  view(scheme: string, host: string, port: number): RecordingServer {
    const self = this;
    return {
      ...endpoints(scheme, host, port),
      host,
      port,
      server: this.server,
      get connections() {
        return self.connections;
      },
      get bytesReceived() {
        return self.bytesReceived;
      },
      requests: this.requests,
      tlsVersions: this.tlsVersions,
      servernames: this.servernames,
      tlsErrors: this.tlsErrors,
      reset: () => this.reset(),
      close: () => this.close(),
    };
  }
}

/** Default reply: `200` with JSON `{ ok: true, path }`. */
export const okHandler: HttpHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, path: req.url }));
};

/**
 * A handler that redirects every request to `location` (absolute, relative or protocol-relative; sent
 * as is, so tests can aim redirects at internal addresses or other schemes).
 *
 * @param status - Default `302`.
 */
export function redirect(location: string, status = 302): HttpHandler {
  return (_req, res) => {
    res.writeHead(status, { location, 'content-length': '0' });
    res.end();
  };
}

/**
 * Routes by path (query string ignored) to per-path handlers, for redirect chains such as
 * `{ '/start': redirect('/next'), '/next': okHandler }`.
 *
 * @param fallback - For paths not in `table`. Default: `404`.
 */
export function routes(table: Record<string, HttpHandler>, fallback?: HttpHandler): HttpHandler {
  return (req, res, body) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const handler = table[path] ?? fallback;
    if (handler) return handler(req, res, body);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: false, path: req.url }));
  };
}

function recordingHandler(rec: Recorder, handler: HttpHandler) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', noop);
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      rec.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        httpVersion: req.httpVersion,
      });
      Promise.resolve()
        .then(() => handler(req, res, body))
        .catch((err: unknown) => {
          // A failing handler should fail the test through the response, not hang it.
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(String(err));
          } else {
            res.destroy();
          }
        });
    });
  };
}

/**
 * Starts a plain HTTP/1.1 server on an ephemeral port.
 *
 * @param opts.host - Bind address. Default `'127.0.0.1'`.
 * @param opts.handler - Default {@link okHandler}.
 */
export async function startHttpServer(
  opts: { host?: string; handler?: HttpHandler } = {},
): Promise<RecordingServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = http.createServer();
  const rec = new Recorder(server);
  server.on('request', recordingHandler(rec, opts.handler ?? okHandler));
  const port = await listenEphemeral(server, host);
  return rec.view('http', host, port);
}

async function tlsContextOptions(opts: TlsServerOptions): Promise<tls.TlsOptions> {
  const { certPem, keyPem } = await opts.pki.issue(opts.names ?? DEFAULT_NAMES);
  const out: tls.TlsOptions = { cert: certPem, key: keyPem };
  if (opts.minVersion) out.minVersion = opts.minVersion;
  if (opts.maxVersion) out.maxVersion = opts.maxVersion;
  if (opts.ciphers) out.ciphers = opts.ciphers;
  if (opts.ALPNProtocols) out.ALPNProtocols = opts.ALPNProtocols;
  return out;
}

/**
 * Starts an HTTPS server with a certificate from `opts.pki`.
 *
 * @param opts.handler - Default {@link okHandler}.
 * @param opts.http2 - Serve HTTP/2 (with `allowHTTP1: true`, so HTTP/1.1 clients still work).
 *   Default `false`.
 */
export async function startHttpsServer(
  opts: TlsServerOptions & { handler?: HttpHandler; http2?: boolean },
): Promise<RecordingServer> {
  const host = opts.host ?? '127.0.0.1';
  const tlsOpts = await tlsContextOptions(opts);
  const server: tls.Server = opts.http2
    ? http2.createSecureServer({ ...tlsOpts, allowHTTP1: true })
    : https.createServer(tlsOpts);
  const rec = new Recorder(server);
  rec.trackTls(server);
  // The HTTP/2 compatibility objects carry the same fields the recorder reads.
  server.on('request', recordingHandler(rec, opts.handler ?? okHandler));
  const port = await listenEphemeral(server, host);
  return rec.view('https', host, port);
}

/**
 * Starts an HTTPS server that speaks only TLS 1.0–1.1, for downgrade tests. Node's bundled OpenSSL 3
 * refuses those versions at the default security level (SHA-1 handshake signatures), so the server
 * runs with `ciphers: 'DEFAULT@SECLEVEL=0'`; a client must do the same and set
 * `minVersion: 'TLSv1.1'` to connect. A default Node client (floor TLS 1.2) is refused, and the server
 * records the failure in `tlsErrors`.
 */
export async function startLegacyTlsServer(
  opts: Omit<TlsServerOptions, 'minVersion' | 'maxVersion' | 'ciphers'> & { handler?: HttpHandler },
): Promise<RecordingServer> {
  return startHttpsServer({
    ...opts,
    minVersion: 'TLSv1',
    maxVersion: 'TLSv1.1',
    ciphers: 'DEFAULT@SECLEVEL=0',
  });
}

/**
 * Starts a raw TLS server that echoes what it reads (scheme `tls` in `url`).
 *
 * @param opts.onSecureConnection - Replaces the echo; gets each socket after its handshake.
 */
export async function startTlsServer(
  opts: TlsServerOptions & { onSecureConnection?(socket: tls.TLSSocket): void },
): Promise<RecordingServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = tls.createServer(await tlsContextOptions(opts), (socket) => {
    if (opts.onSecureConnection) opts.onSecureConnection(socket);
    else socket.pipe(socket);
  });
  const rec = new Recorder(server);
  rec.trackTls(server);
  const port = await listenEphemeral(server, host);
  return rec.view('tls', host, port);
}

/**
 * Starts a raw TCP server that echoes what it reads (scheme `tcp` in `url`).
 *
 * @param opts.host - Bind address. Default `'127.0.0.1'`.
 * @param opts.onConnection - Replaces the echo.
 */
export async function startTcpServer(
  opts: { host?: string; onConnection?(socket: net.Socket): void } = {},
): Promise<RecordingServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = net.createServer((socket) => {
    if (opts.onConnection) opts.onConnection(socket);
    else socket.pipe(socket);
  });
  const rec = new Recorder(server);
  const port = await listenEphemeral(server, host);
  return rec.view('tcp', host, port);
}

/** An SSH look-alike from {@link startSshLikeServer}. */
export interface SshLikeServer extends RecordingServer {
  /** First line each client sent (its identification string), without the line ending. */
  clientBanners: string[];
}

/**
 * Starts a TCP server that sends `SSH-2.0-TestServer_1.0\r\n` on accept and records the first line each
 * client sends (scheme `ssh` in `url`). Enough for protocol sniffers; there is no key exchange.
 *
 * @param opts.banner - Identification line to send, without `\r\n`. Default `SSH-2.0-TestServer_1.0`.
 */
export async function startSshLikeServer(
  opts: { host?: string; banner?: string } = {},
): Promise<SshLikeServer> {
  const host = opts.host ?? '127.0.0.1';
  const banner = opts.banner ?? 'SSH-2.0-TestServer_1.0';
  const clientBanners: string[] = [];
  const server = net.createServer((socket) => {
    socket.write(`${banner}\r\n`);
    let buffered = '';
    let done = false;
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      buffered += chunk.toString('latin1');
      const nl = buffered.indexOf('\n');
      // RFC 4253 caps the line at 255 bytes; record what came rather than wait forever on garbage.
      if (nl === -1 && buffered.length < 255) return;
      done = true;
      clientBanners.push((nl === -1 ? buffered : buffered.slice(0, nl)).replace(/\r$/, ''));
    });
  });
  const rec = new Recorder(server);
  const port = await listenEphemeral(server, host);
  const view = rec.view('ssh', host, port);
  return Object.assign(view, {
    clientBanners,
    reset() {
      rec.reset();
      clientBanners.length = 0;
    },
  });
}

/** What a client asked {@link startForwardProxy} for. */
export interface ProxyTarget {
  /** `CONNECT` for tunnels, else the forwarded request's method. */
  method: string;
  /** `host:port` for CONNECT (as sent), the absolute URL otherwise. */
  target: string;
  /** Request headers (including any `proxy-authorization`). */
  headers: IncomingHttpHeaders;
}

/** A forward proxy from {@link startForwardProxy}; `requests`/`tls*` stay empty. */
export interface ForwardProxy extends RecordingServer {
  /** Every target asked for, in order, whether allowed or not. */
  targets: ProxyTarget[];
}

function splitHostPort(authority: string): { host: string; port: number } | undefined {
  try {
    const u = new URL(`http://${authority}`);
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const port = Number(u.port || 80);
    return host ? { host, port } : undefined;
  } catch {
    return undefined;
  }
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Starts a plain-HTTP forward proxy (scheme `http` in `url`, so `HTTPS_PROXY=proxy.url` works) that
 * tunnels `CONNECT host:port` and forwards absolute-form `http://` requests. It records every target
 * in `targets` and counts client connections in `connections`.
 *
 * @param opts.allow - Return `false` to answer `403` without dialling. Default: allow all.
 */
export async function startForwardProxy(
  opts: { host?: string; allow?: (target: ProxyTarget) => boolean } = {},
): Promise<ForwardProxy> {
  const host = opts.host ?? '127.0.0.1';
  const targets: ProxyTarget[] = [];
  const server = http.createServer();
  const rec = new Recorder(server);

  server.on('connect', (req: IncomingMessage, client: net.Socket, head: Buffer) => {
    const target: ProxyTarget = { method: 'CONNECT', target: req.url ?? '', headers: req.headers };
    targets.push(target);
    rec.own(client);
    const dest = splitHostPort(target.target);
    if (!dest) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (opts.allow && !opts.allow(target)) {
      client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect(dest.port, dest.host);
    rec.own(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('error', () => {
      if (!connected) client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      else client.destroy();
    });
    client.once('close', () => upstream.destroy());
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    const target: ProxyTarget = { method: req.method ?? '', target: url, headers: req.headers };
    if (!/^http:\/\//i.test(url)) {
      // Origin-form means the client treated us as the origin, which is a bug in the code under test.
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('forward proxy: absolute-form http:// URL or CONNECT expected');
      return;
    }
    targets.push(target);
    if (opts.allow && !opts.allow(target)) {
      res.writeHead(403, { 'content-length': '0' });
      res.end();
      return;
    }
    const dest = new URL(url);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    const upstream = http.request({
      host: dest.hostname.startsWith('[') ? dest.hostname.slice(1, -1) : dest.hostname,
      port: Number(dest.port || 80),
      method: req.method,
      path: `${dest.pathname}${dest.search}`,
      headers,
      // One connection per forwarded request keeps close() simple: nothing pooled outlives a test.
      agent: false,
    });
    upstream.on('socket', (socket) => rec.own(socket));
    upstream.on('response', (up) => {
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(up.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      }
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-length': '0' });
        res.end();
      } else {
        res.destroy();
      }
    });
    req.pipe(upstream);
  });

  const port = await listenEphemeral(server, host);
  const view = rec.view('http', host, port);
  return Object.assign(view, {
    targets,
    reset() {
      rec.reset();
      targets.length = 0;
    },
  });
}
