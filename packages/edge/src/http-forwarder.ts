/**
 * Plaintext HTTP through the edge: every request on a connection is decided on its own (method and
 * path rules apply, and a keep-alive connection cannot carry a second request past the check), then
 * forwarded on a fresh upstream connection to the checked address. Node's HTTP parser frames the
 * messages; each head is also read by the strict sniffer so the edge and the upstream cannot disagree
 * on the target. WebSocket upgrades (`ws`) are decided the same way and then spliced.
 */
import http from 'node:http';
import type net from 'node:net';
import { blankDecision, type Decision, type Policy, parseHost, refineDecision } from '@egress-guard/policy';
import { canonicalAddress, sameName } from './claims.js';
import type { EdgeLimits } from './config.js';
import type { Connection } from './connection.js';

import { decisionsFor } from './decision-memo.js';
import { Checks, type DestinationQuery, resolveDestination } from './destination.js';
import { DialError, dial } from './dialer.js';
import type { FlowRecord } from './flow-record.js';
import type { HttpContext, PlainHttpServer } from './http-context.js';
import { closeGently, httpError } from './replies.js';
import type { EdgeRuntime } from './runtime.js';
import { type HttpHeadParse, parseHttpHead } from './sniff/index.js';
import { splice } from './splice.js';

export type { HttpContext } from './http-context.js';

/** Called for a CONNECT request on an explicit-proxy connection that already carried plaintext requests. */
export type ConnectHandler = (conn: Connection, authority: string, head: Buffer) => void;

type OkHead = Extract<HttpHeadParse, { status: 'ok' }>;

interface Entry {
  conn: Connection;
  ctx: HttpContext;
}

/** Where one request goes, or why it cannot go anywhere. */
interface RequestTarget {
  /** The host to decide and dial (as sent); undefined when none was claimed. */
  host: string | undefined;
  port: number;
  /** Origin-form target with the query, as forwarded. */
  pathWithQuery: string;
  problem?: {
    reason: 'protocol_not_allowed' | 'sni_missing' | 'sni_mismatch';
    how: string;
    enforce: boolean;
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Forwards plaintext HTTP for all listeners of one edge server. */
export class HttpForwarder implements PlainHttpServer {
  private readonly server: http.Server;
  private readonly entries = new WeakMap<net.Socket, Entry>();
  private connectHandler: ConnectHandler | undefined;

  /**
   * @param runtime The edge's shared services (read on every request: the policy may have been reloaded).
   */
  constructor(
    private readonly runtime: () => EdgeRuntime,
    limits: EdgeLimits,
  ) {
    this.server = http.createServer({
      maxHeaderSize: limits.helloMaxBytes,
      headersTimeout: limits.helloTimeout,
      requestTimeout: 0,
      keepAliveTimeout: Math.min(limits.idleTimeout, 30_000),
      connectionsCheckingInterval: Math.min(1000, limits.helloTimeout),
    });
    // Never listens: connections are handed over by the listeners. 'listening' starts Node's tracking of
    // connections, which enforces headersTimeout and lets drain close idle keep-alive connections.
    this.server.emit('listening');
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.onRequest(req, res).catch(() => res.destroy());
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.onUpgrade(req, socket, head).catch(() => socket.destroy());
    });
    this.server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.onConnect(req, socket, head);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) =>
      this.onClientError(err, socket),
    );
  }

  /** Sets who handles a CONNECT that follows plaintext requests on an explicit-proxy connection. */
  setConnectHandler(handler: ConnectHandler): void {
    this.connectHandler = handler;
  }

  /**
   * Takes over a client connection whose first bytes (`buffered`, already read) are an HTTP request head.
   */
  serve(conn: Connection, buffered: Buffer, ctx: HttpContext): void {
    const socket = conn.client;
    this.entries.set(socket, { conn, ctx });
    conn.idle = false;
    if (buffered.length > 0) socket.unshift(buffered);
    this.server.emit('connection', socket);
    socket.resume();
  }

  /** Closes keep-alive connections that are between requests (drain). */
  closeIdle(): void {
    this.server.closeIdleConnections();
  }

  /** Stops the connection-tracking timer. */
  close(): void {
    this.server.close(() => {});
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const entry = this.entries.get(req.socket as net.Socket);
    if (!entry) {
      res.destroy();
      return;
    }
    const rt = this.runtime();
    const { conn, ctx } = entry;
    conn.idle = false;
    const flow = rt.newFlow(conn);
    const policy = rt.policy;
    const service = conn.serviceIn(policy);
    const deny = (d: Decision, status = 403) => {
      flow.decide(d);
      flow.complete('denied', d.reason);
      this.reply(rt, conn, res, status, d.reason, d.message);
    };

    const head = reparse(req);
    const fallbackPort = 'port' in ctx ? ctx.port : 80;
    if (head.status !== 'ok') {
      const detail = head.status === 'error' ? head.detail : 'incomplete head';
      const base = blankDecision(policy, service, fallbackPort);
      return deny(
        refineDecision(
          base,
          'protocol_not_allowed',
          `the request head is not acceptable HTTP/1.x: ${detail}`,
          true,
        ),
        400,
      );
    }
    const target = requestTarget(ctx, head);
    const plan = await this.plan(rt, policy, flow, (p) => conn.serviceIn(p), ctx, head, target, 'http');
    if (plan.status === 'denied') return deny(plan.decision, plan.httpStatus);
    if (plan.status === 'unresolved') {
      flow.decide(plan.decision);
      flow.complete('error', 'upstream_unreachable', 'ENOTFOUND');
      return this.reply(rt, conn, res, 502, 'upstream_unreachable', `${target.host} does not resolve`);
    }
    const decision = plan.decision;
    flow.decide(decision);

    let upstream: net.Socket;
    try {
      upstream = await this.dialFor(rt, conn, decision, plan.dial, target.port, req.socket as net.Socket);
    } catch (error) {
      const code = error instanceof DialError ? error.code : 'ERROR';
      flow.complete(
        code === 'timeout' ? 'timeout' : code === 'ABORTED' ? 'ok' : 'error',
        code === 'ABORTED' ? 'client_closed' : 'upstream_unreachable',
        code,
      );
      if (code !== 'ABORTED') {
        this.reply(
          rt,
          conn,
          res,
          code === 'timeout' ? 504 : 502,
          'upstream_unreachable',
          (error as Error).message,
        );
      }
      return;
    }

    const headers = forwardHeaders(req.rawHeaders, target.host, target.port);
    const upReq = http.request({
      createConnection: () => upstream,
      method: head.method,
      path: target.pathWithQuery,
      headers,
      setHost: false,
    });
    let outcome: 'ok' | 'error' | 'timeout' = 'ok';
    let closeReason = 'response_complete';
    let errorType: string | undefined;
    const fail = (o: 'error' | 'timeout', reason: string, error?: string) => {
      if (outcome !== 'ok') return;
      outcome = o;
      closeReason = reason;
      errorType = error;
    };
    const idleMs = Math.min(decision.timeouts.idle, rt.limits.idleTimeout);
    upstream.setTimeout(idleMs, () => {
      fail('timeout', 'idle_timeout');
      upReq.destroy(new Error('idle timeout'));
    });
    const responseTimer = setTimeout(() => {
      fail('timeout', 'response_timeout');
      upReq.destroy(new Error('response timeout'));
    }, decision.timeouts.response);
    responseTimer.unref();

    upReq.on('response', (upRes: http.IncomingMessage) => {
      clearTimeout(responseTimer);
      flow.facts.statusCode = upRes.statusCode;
      const out = responseHeaders(upRes.rawHeaders);
      if (rt.draining) out.push('connection', 'close');
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.pipe(res);
      upRes.on('error', (e: NodeJS.ErrnoException) => {
        fail('error', 'upstream_error', e.code ?? e.message);
        res.destroy();
      });
    });
    upReq.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(responseTimer);
      fail(
        outcome === 'ok' ? 'error' : outcome,
        outcome === 'ok' ? 'upstream_error' : closeReason,
        e.code ?? e.message,
      );
      if (!res.headersSent) {
        const status = outcome === 'timeout' ? 504 : 502;
        this.reply(
          rt,
          conn,
          res,
          status,
          'upstream_unreachable',
          `the upstream failed: ${e.code ?? e.message}`,
        );
      } else res.destroy();
    });
    req.on('error', () => upReq.destroy());
    res.once('close', () => {
      clearTimeout(responseTimer);
      if (!res.writableFinished) fail('error', conn.abortReason ?? 'client_closed');
      flow.sent = upstream.bytesWritten;
      flow.received = upstream.bytesRead;
      upstream.destroy();
      conn.idle = true;
      flow.complete(outcome, conn.abortReason ?? closeReason, errorType);
    });
    req.pipe(upReq);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const entry = this.entries.get(socket);
    if (!entry) {
      socket.destroy();
      return;
    }
    const rt = this.runtime();
    const { conn, ctx } = entry;
    const flow = rt.newFlow(conn);
    const policy = rt.policy;
    const service = conn.serviceIn(policy);
    const deny = (d: Decision, status = 403) => {
      flow.decide(d);
      closeGently(socket, httpError(status, d.reason, d.message));
      flow.complete('denied', d.reason);
    };
    const parsed = reparse(req);
    if (parsed.status !== 'ok') {
      const base = blankDecision(policy, service, 'port' in ctx ? ctx.port : 80);
      return deny(
        refineDecision(
          base,
          'protocol_not_allowed',
          'the upgrade request head is not acceptable HTTP/1.x',
          true,
        ),
        400,
      );
    }
    const target = requestTarget(ctx, parsed);
    const plan = await this.plan(rt, policy, flow, (p) => conn.serviceIn(p), ctx, parsed, target, 'ws');
    if (plan.status === 'denied') return deny(plan.decision, plan.httpStatus);
    if (plan.status === 'unresolved') {
      flow.decide(plan.decision);
      closeGently(socket, httpError(502, 'upstream_unreachable', `${target.host} does not resolve`));
      flow.complete('error', 'upstream_unreachable', 'ENOTFOUND');
      return;
    }
    flow.decide(plan.decision);
    let upstream: net.Socket;
    try {
      upstream = await this.dialFor(rt, conn, plan.decision, plan.dial, target.port, socket);
    } catch (error) {
      const code = error instanceof DialError ? error.code : 'ERROR';
      closeGently(
        socket,
        httpError(code === 'timeout' ? 504 : 502, 'upstream_unreachable', (error as Error).message),
      );
      flow.complete(code === 'timeout' ? 'timeout' : 'error', 'upstream_unreachable', code);
      return;
    }
    // The handshake goes upstream as the client wrote it, in origin form, without proxy headers.
    let text = `${parsed.method} ${target.pathWithQuery} HTTP/${req.httpVersion}\r\n`;
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      if (/^proxy-/i.test(name)) continue;
      text += `${name}: ${req.rawHeaders[i + 1]}\r\n`;
    }
    upstream.write(Buffer.from(`${text}\r\n`, 'latin1'));
    if (head.length > 0) upstream.write(head);
    splice(conn, flow, upstream, Math.min(plan.decision.timeouts.idle, rt.limits.idleTimeout));
  }

  private onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const entry = this.entries.get(socket);
    if (entry?.ctx.kind !== 'explicit' || !this.connectHandler) {
      closeGently(socket, httpError(405, 'protocol_not_allowed', 'CONNECT is not allowed here'));
      return;
    }
    this.connectHandler(entry.conn, req.url ?? '', head);
  }

  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const entry = this.entries.get(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || !entry) {
      socket.destroy();
      return;
    }
    const rt = this.runtime();
    const reason =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 'hello_too_large'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'hello_timeout'
          : 'protocol_not_allowed';
    const flow = rt.newFlow(entry.conn);
    const service = entry.conn.serviceIn(rt.policy);
    const base = blankDecision(rt.policy, service, 'port' in entry.ctx ? entry.ctx.port : 80);
    const d = refineDecision(base, reason, `the request could not be read: ${err.code ?? err.message}`, true);
    flow.decide(d);
    const status = reason === 'hello_too_large' ? 431 : reason === 'hello_timeout' ? 408 : 400;
    closeGently(socket, httpError(status, reason, d.message));
    flow.complete('denied', reason);
  }

  /** Claims, decision, and addresses for one request; `scheme` is `http` or `ws`. */
  private async plan(
    rt: EdgeRuntime,
    policy: Policy,
    flow: FlowRecord,
    /** The service of the connection under a policy (its credentials', else its source's). */
    serviceIn: (policy: Policy) => string | undefined,
    ctx: HttpContext,
    head: OkHead,
    target: RequestTarget,
    scheme: 'http' | 'ws',
  ): Promise<
    | { status: 'denied'; decision: Decision; httpStatus: number }
    | { status: 'unresolved'; decision: Decision }
    | { status: 'ok'; decision: Decision; dial: string[] }
  > {
    const service = serviceIn(policy);
    const now = Date.now();
    const path = target.pathWithQuery.split('?')[0] ?? '/';
    const method = head.method;
    const parsedHost = target.host === undefined ? undefined : parseHost(target.host);
    const name = parsedHost?.kind === 'name' ? parsedHost.name : undefined;
    const literal = parsedHost?.kind === 'ip' ? canonicalAddress(parsedHost.ip.canonical) : undefined;
    const original = ctx.kind === 'original' ? ctx.address : undefined;
    const shownHost = name ?? literal ?? original ?? '';
    flow.facts.method = method;
    flow.facts.path = path;
    flow.facts.url = `${scheme}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${target.port}${path}`;

    const dest = { scheme, port: target.port, method, path, service } as const;
    const decision =
      name !== undefined || literal !== undefined
        ? decisionsFor(policy).decide({ ...dest, host: name ?? literal }, now)
        : original !== undefined
          ? decisionsFor(policy).decide({ ...dest, address: original }, now)
          : blankDecision(policy, service, target.port, now);
    const checks = new Checks();
    const denied = (httpStatus = 403) => ({
      status: 'denied' as const,
      decision: checks.denied!,
      httpStatus,
    });
    if (target.problem) {
      const p = target.problem;
      const status = p.reason === 'protocol_not_allowed' ? 400 : 403;
      if (checks.fail(refineDecision(decision, p.reason, p.how, p.enforce))) return denied(status);
    }
    if (parsedHost?.kind === 'invalid') {
      if (checks.fail(refineDecision(decision, 'invalid_destination', parsedHost.detail, true)))
        return denied(400);
    }
    if (checks.fail(decision)) return denied();
    const q: DestinationQuery = { ...dest, name, literal, original };
    const result = await resolveDestination(rt, policy, q, checks);
    if (rt.policy !== policy) {
      // A reload landed while the name was being resolved: decide again under the policy now in force.
      const next = rt.policy;
      return this.plan(rt, next, flow, serviceIn, ctx, head, target, scheme);
    }
    if (checks.denied) return denied();
    if (result.status === 'nothing') {
      checks.fail(refineDecision(decision, 'sni_missing', 'the request names no host to route by', true));
      return denied();
    }
    if (result.status === 'unresolved')
      return { status: 'unresolved', decision: checks.reported ?? decision };
    return { status: 'ok', decision: checks.reported ?? result.decision, dial: result.dial };
  }

  private async dialFor(
    rt: EdgeRuntime,
    conn: Connection,
    decision: Decision,
    addresses: string[],
    port: number,
    client: net.Socket,
  ): Promise<net.Socket> {
    const abort = new AbortController();
    const onClose = () => abort.abort();
    client.once('close', onClose);
    const started = performance.now();
    try {
      const upstream = await dial({
        addresses,
        port,
        timeoutMs: Math.min(decision.timeouts.connect, rt.limits.connectTimeout),
        signal: abort.signal,
      });
      conn.addUpstream(upstream);
      rt.metrics.forListener(conn.listener).connect.observe((performance.now() - started) / 1000);
      return upstream;
    } finally {
      client.off('close', onClose);
    }
  }

  private reply(
    rt: EdgeRuntime,
    conn: Connection,
    res: http.ServerResponse,
    status: number,
    reason: string,
    message: string,
  ): void {
    conn.idle = true;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${message}\n`;
    const headers: Record<string, string | number> = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-egress-reason': reason,
    };
    // A refused request leaves the connection usable, unless the edge is draining or the request was unreadable.
    if (rt.draining || status === 400) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(body);
  }
}

/** The request head as the strict sniffer reads it (Node's parser has already framed it). */
function reparse(req: http.IncomingMessage): HttpHeadParse {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  return parseHttpHead(Buffer.from(`${text}\r\n`, 'latin1'), 1 << 20);
}

function sameHost(a: string, b: string): boolean {
  const pa = parseHost(a);
  const pb = parseHost(b);
  if (pa.kind === 'ip' && pb.kind === 'ip')
    return canonicalAddress(pa.ip.canonical) === canonicalAddress(pb.ip.canonical);
  return pa.kind === 'name' && pb.kind === 'name' && sameName(pa.name, pb.name);
}

/** Where the request goes in each context, and what is wrong with its claims. */
function requestTarget(ctx: HttpContext, head: OkHead): RequestTarget {
  const url = head.absoluteUrl;
  const claimed = url?.host ?? head.hostHeader?.host;
  const pathWithQuery = url?.path ?? head.target;
  switch (ctx.kind) {
    case 'explicit': {
      if (!url) {
        return {
          host: head.hostHeader?.host,
          port: head.hostHeader?.port ?? 80,
          pathWithQuery,
          problem: {
            reason: 'protocol_not_allowed',
            how: 'a request to the proxy must name its target in absolute form (http://host/path), or use CONNECT',
            enforce: true,
          },
        };
      }
      const target: RequestTarget = { host: url.host, port: url.port ?? 80, pathWithQuery };
      if (url.scheme !== 'http') {
        target.problem = {
          reason: 'protocol_not_allowed',
          how: `only http:// requests are forwarded in plaintext (${url.scheme}:// goes through CONNECT)`,
          enforce: true,
        };
      } else if (head.hostHeader && !sameHost(head.hostHeader.host, url.host)) {
        target.problem = {
          reason: 'sni_mismatch',
          how: `the Host header names ${head.hostHeader.host} but the request URL names ${url.host}`,
          enforce: false,
        };
      }
      return target;
    }
    case 'connect': {
      const target: RequestTarget = { host: ctx.host, port: ctx.port, pathWithQuery };
      if (claimed === undefined) {
        target.problem = { reason: 'sni_missing', how: 'the request carries no Host header', enforce: false };
      } else if (!sameHost(claimed, ctx.host)) {
        target.problem = {
          reason: 'sni_mismatch',
          how: `CONNECT names ${ctx.host} but the request names ${claimed}`,
          enforce: false,
        };
      }
      return target;
    }
    case 'original': {
      const target: RequestTarget = { host: claimed, port: ctx.port, pathWithQuery };
      if (claimed === undefined) {
        target.problem = { reason: 'sni_missing', how: 'the request carries no Host header', enforce: false };
      }
      return target;
    }
    default: {
      const target: RequestTarget = { host: claimed, port: ctx.port, pathWithQuery };
      if (claimed === undefined) {
        target.problem = {
          reason: 'sni_missing',
          how: 'the request carries no Host header to route by',
          enforce: true,
        };
      }
      return target;
    }
  }
}

/** Request headers to send upstream: hop-by-hop and proxy headers removed, `connection: close` added. */
function forwardHeaders(raw: string[], host: string | undefined, port: number): string[] {
  const out: string[] = [];
  const named = connectionTokens(raw);
  let sawHost = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    if (lower === 'host') sawHost = true;
    out.push(name, raw[i + 1]!);
  }
  if (!sawHost && host !== undefined) {
    const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    out.push('Host', port === 80 ? shown : `${shown}:${port}`);
  }
  out.push('Connection', 'close');
  return out;
}

/** Response headers to send to the client: hop-by-hop headers removed. */
function responseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  const named = connectionTokens(raw);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** Header names listed in `Connection` (they are hop-by-hop too). */
function connectionTokens(raw: string[]): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) names.add(token.trim().toLowerCase());
  }
  return names;
}
