import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { urlToHttpOptions } from 'node:url';
import {
  type Decision,
  decideProxyHop,
  decideTlsVersion,
  decideTunnelTarget as decideTunnelTargetOf,
  errorForDecision,
  meetsTlsFloor,
  parseAuthority,
  type Scheme,
} from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { Deadlines } from '../pipeline/deadlines.js';
import { Exchange } from '../pipeline/exchange.js';
import { errorType } from '../pipeline/outcome.js';
import { checkDialledAddress, decideAndRecord, dialChecksOf, recordDecision } from '../pipeline/record.js';
import { type ConnectionContext, contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { refusedSocket } from '../socket/refused-socket.js';

type Module = typeof http | typeof https;
type RequestFn = (...args: unknown[]) => http.ClientRequest;
type Options = http.RequestOptions &
  https.RequestOptions & { _defaultAgent?: http.Agent; defaultPort?: number; [key: string]: unknown };
type AddRequest = (this: http.Agent, req: http.ClientRequest, options: unknown, ...rest: unknown[]) => void;
// `addRequest` is public in Node but missing from @types/node.
const agentPrototype = http.Agent.prototype as unknown as { addRequest: AddRequest };

/**
 * Patches `http.request`, `http.get`, `https.request` and `https.get` so that every request is decided
 * (scheme, host, port, method, path) before anything is created: a denied request, or one whose circuit is
 * open, gets a real `ClientRequest` that fails with the guard's error and never opens a socket. An allowed
 * request carries its decision to the socket layer in its `lookup` (every dialled address is checked, the
 * TLS floor and verification rule are enforced there), is timed against the rule's connect, response, idle
 * and total limits, drives the rule's breaker, and writes one completion event.
 *
 * `http.Agent.prototype.addRequest` is patched too, as a net for requests the patched functions never
 * saw: a `new http.ClientRequest()` built directly, or an `http.request` a library captured before
 * `install()` (`const { request } = require('node:https')`). Those are decided there, with method and
 * path, before the agent hands them a socket: a pooled keep-alive socket is never reused undecided.
 * Requests with neither (a caller's `createConnection` and no agent) are still held at the socket layer,
 * decided as raw `tcp`/`tls` connections.
 */
export function patchHttp(current: () => GuardCore | undefined): () => void {
  const originals = {
    httpRequest: http.request,
    httpGet: http.get,
    httpsRequest: https.request,
    httpsGet: https.get,
    addRequest: agentPrototype.addRequest,
  };

  const guardedHttpRequest = guardRequest(current, http, originals.httpRequest as RequestFn);
  const guardedHttpsRequest = guardRequest(current, https, originals.httpsRequest as RequestFn);
  const guardedHttpGet = function get(...args: unknown[]) {
    const req = guardedHttpRequest(...args);
    req.end();
    return req;
  };
  const guardedHttpsGet = function get(...args: unknown[]) {
    const req = guardedHttpsRequest(...args);
    req.end();
    return req;
  };
  const guardedAddRequest = guardAddRequest(current, originals.addRequest);

  http.request = guardedHttpRequest as typeof http.request;
  http.get = guardedHttpGet as typeof http.get;
  https.request = guardedHttpsRequest as typeof https.request;
  https.get = guardedHttpsGet as typeof https.get;
  agentPrototype.addRequest = guardedAddRequest;

  return () => {
    if (http.request === (guardedHttpRequest as unknown)) http.request = originals.httpRequest;
    if (http.get === (guardedHttpGet as unknown)) http.get = originals.httpGet;
    if (https.request === (guardedHttpsRequest as unknown)) https.request = originals.httpsRequest;
    if (https.get === (guardedHttpsGet as unknown)) https.get = originals.httpsGet;
    if (agentPrototype.addRequest === guardedAddRequest) agentPrototype.addRequest = originals.addRequest;
  };
}

/** What Node will do with a request's arguments, worked out the way `ClientRequest` works it out. */
interface Plan {
  options: Options;
  callback: ((res: http.IncomingMessage) => void) | undefined;
  secure: boolean;
  host: string;
  port: number;
  method: string;
  rawPath: string;
  websocket: boolean;
}

function guardRequest(current: () => GuardCore | undefined, mod: Module, original: RequestFn): RequestFn {
  const hook = mod === https ? 'https' : 'http';
  const guarded = function request(this: unknown, ...args: unknown[]): http.ClientRequest {
    const guard = current();
    if (!guard) return original.apply(this, args);
    const plan = planRequest(mod, args);
    // Anything Node would refuse (bad URL, wrong protocol for the agent, IPC socket) goes to Node as is:
    // it throws the same error, or it is not egress.
    if (!plan) return original.apply(this, args);
    const decided = decideRequest(guard, hook, plan);
    const exchange = new Exchange(guard, decided, hook);
    const context = connectionContext(guard, decided, hook);
    const refused = admitRequest(guard, exchange, decided);
    if (refused) return failedRequest(original, this, plan, refused, context);
    const options = plan.options;
    options.lookup = guardedLookup(
      dialChecksOf(guard),
      context,
      typeof options.lookup === 'function' ? options.lookup : undefined,
    );
    if (plan.secure) raiseFloor(options, decided.connection.decision);
    let req: http.ClientRequest;
    try {
      req = original.call(this, options, plan.callback);
    } catch (error) {
      exchange.end({ outcome: 'error', fields: { 'error.type': errorType(error) } });
      throw error;
    }
    track(req, exchange, context, plan.secure);
    return req;
  };
  Object.defineProperty(guarded, 'name', { value: 'request' });
  return guarded;
}

/**
 * Lets a decided request go ahead: refused (its error returned, its exchange ended) when denied or when
 * its circuit is open; otherwise noted, so that the socket it opens is decided as its transport.
 */
function admitRequest(guard: GuardCore, exchange: Exchange, decided: Decided): Error | undefined {
  if (!exchange.allowed) return exchange.refuse();
  const { target } = decided;
  guard.noteRequest(target.scheme, target.host, target.port);
  return exchange.admit(originOf(target));
}

/**
 * `Agent#addRequest` for requests that reached an agent without passing the patched functions: decide
 * them here, where method, path, host and port are all known, before a socket (new or pooled) is assigned.
 */
function guardAddRequest(current: () => GuardCore | undefined, original: AddRequest): AddRequest {
  return function addRequest(this: http.Agent, req, options, ...rest) {
    const guard = current();
    const shape = guard ? agentRequestShape(this, req, options) : undefined;
    if (!guard || !shape) return original.call(this, req, options, ...rest);
    const hook = 'http.agent';
    const decided = decideRequest(guard, hook, shape);
    const exchange = new Exchange(guard, decided, hook);
    const refused = admitRequest(guard, exchange, decided);
    if (refused) {
      // Node's own path for a socket that could not be created: 'error' then 'close', nothing dialled.
      (req as http.ClientRequest & { onSocket(socket: unknown, err: Error): void }).onSocket(
        undefined,
        refused,
      );
      return;
    }
    const opts = options as Options;
    const context = connectionContext(guard, decided, hook);
    const next: Options = {
      ...opts,
      lookup: guardedLookup(
        dialChecksOf(guard),
        context,
        typeof opts.lookup === 'function' ? opts.lookup : undefined,
      ),
    };
    if (shape.secure) raiseFloor(next, decided.connection.decision);
    track(req, exchange, context, shape.secure);
    return original.call(this, req, next, ...rest);
  };
}

/**
 * What a request that reached an agent directly asks for, read as the agent will dial it (the agent's own
 * options override the request's), or undefined when it is not for the guard (already decided, IPC).
 */
function agentRequestShape(agent: http.Agent, req: unknown, options: unknown): RequestShape | undefined {
  if (!(req instanceof http.ClientRequest) || typeof options !== 'object' || options === null)
    return undefined;
  const opts = options as Options;
  if (contextOf(opts.lookup) !== undefined) return undefined;
  const agentOptions = (agent as http.Agent & { options?: Options }).options;
  if (opts.socketPath || agentOptions?.socketPath) return undefined;
  const secure = (agent as http.Agent & { protocol?: string }).protocol === 'https:';
  return {
    secure,
    host: bare(String(agentOptions?.host || opts.host || 'localhost')),
    port: Number(agentOptions?.port || opts.port) || (secure ? 443 : 80),
    method: (req.method || 'GET').toUpperCase(),
    rawPath: req.path || '/',
    websocket: isWebSocket(req.getHeader('upgrade')),
  };
}

/** Normalises the arguments of `request`/`get` into one options object, or undefined to leave them to Node. */
function planRequest(mod: Module, args: unknown[]): Plan | undefined {
  let input = args[0];
  let rest = args.slice(1);
  let options: Options;
  try {
    if (typeof input === 'string') input = new URL(input);
    // Node takes any object that looks like a URL (href and protocol, no auth and no path) for one, and
    // sends its pathname: read it the same way, or the path decided would not be the path sent.
    if (input instanceof URL || isUrlLike(input)) {
      options = urlToHttpOptions(input) as Options;
      if (rest[0] && typeof rest[0] === 'object') {
        Object.assign(options, rest[0]);
        rest = rest.slice(1);
      }
    } else if (input && typeof input === 'object') {
      options = { ...(input as Options) };
    } else {
      // (cb), or nothing usable: Node falls back to every default (localhost:80 GET /); so does the decision.
      options = {};
      if (typeof input === 'function') rest = [input];
    }
  } catch {
    return undefined;
  }
  const callback = typeof rest[0] === 'function' ? (rest[0] as Plan['callback']) : undefined;

  // The agent and default port exactly as ClientRequest picks them.
  const defaultAgent: http.Agent =
    options._defaultAgent ?? (mod === https ? https.globalAgent : http.globalAgent);
  const callerAgent = options.agent;
  let agent: http.Agent | undefined;
  if (callerAgent === false) agent = defaultAgent;
  else if (callerAgent === null || callerAgent === undefined) {
    agent = typeof options.createConnection === 'function' ? undefined : defaultAgent;
  } else if (typeof (callerAgent as { addRequest?: unknown }).addRequest === 'function')
    agent = callerAgent as http.Agent;
  else return undefined;
  const defaultProtocol = (defaultAgent as http.Agent & { protocol?: string }).protocol;
  const protocol = options.protocol || defaultProtocol;
  // Node throws ERR_INVALID_PROTOCOL when the request's protocol is not the agent's: leave that to Node.
  // Only for an agent whose protocol is a plain value: agent-base (https-proxy-agent, used by axios for
  // proxies, and many others) computes it in a getter from the call stack, which says `https:` under Node's
  // https.request but not here; such an agent speaks whatever the request asks, so decide the request.
  const agentProtocol = agent ? plainProtocol(agent) : undefined;
  if (protocol !== (agentProtocol || defaultProtocol)) return undefined;
  const agentOptions =
    callerAgent === false ? undefined : (agent as (http.Agent & { options?: Options }) | undefined)?.options;
  if (options.socketPath || agentOptions?.socketPath) return undefined;
  if (options.hostname != null && typeof options.hostname !== 'string') return undefined;
  if (options.host != null && typeof options.host !== 'string') return undefined;
  const defaultPort =
    options.defaultPort || (agent as (http.Agent & { defaultPort?: number }) | undefined)?.defaultPort;
  // An agent's own options override the request's when it connects (`{ ...options, ...agent.options }`):
  // decide the host and port it will dial, not the ones the request names.
  const port = Number(agentOptions?.port || options.port || defaultPort || 80);
  const host = bare(String(agentOptions?.host || options.hostname || options.host || 'localhost'));
  const method = typeof options.method === 'string' && options.method ? options.method.toUpperCase() : 'GET';
  return {
    options,
    callback,
    secure: protocol === 'https:',
    host,
    port,
    method,
    rawPath: typeof options.path === 'string' && options.path ? options.path : '/',
    websocket: isWebSocket(headerValue(options.headers, 'upgrade')),
  };
}

/** What one request was decided as: its own decision, and the connection it opens. */
interface Decided {
  /** The request's decision (its target: scheme, host, port, method, path): events, timeouts, breaker. */
  decision: Decision;
  id: string;
  /** Where the request goes: its origin, or the target it asks a forward proxy for. */
  target: { scheme: Scheme; host: string; port: number; secure: boolean };
  /**
   * What the socket dials: the origin itself, or the forward proxy (decided as a transport). For a
   * plaintext request straight to its origin, also its method and path (see ConnectionContext).
   */
  connection: {
    scheme: Scheme;
    host: string;
    port: number;
    decision: Decision;
    method?: string | undefined;
    path?: string | undefined;
  };
}

type RequestShape = Pick<Plan, 'secure' | 'host' | 'port' | 'method' | 'rawPath' | 'websocket'>;

// An absolute-form request target (RFC 9112 3.2.2): the request is for a forward proxy.
const ABSOLUTE_FORM = /^[a-z][a-z\d+.-]*:\/\//i;

/**
 * Decides a request. A request sent to a forward proxy names its real target in the request line, not in
 * the host it dials: an absolute-form target (`GET http://target/path`, as axios, `request` and
 * HTTP_PROXY-aware clients send for plain-HTTP targets) is decided as a request to that target, with its
 * method and path; a `CONNECT host:port` opens a tunnel, whose target must be a destination a hook just
 * allowed, or be allowed as a raw tcp/tls one (as undici's CONNECTs are decided). In both cases the proxy
 * is decided as well, as a transport (`http`, or a raw `tcp` rule; `https`/`tls` for a TLS proxy), and is
 * what the socket dials: an allowed proxy never carries a request to a target no rule lists.
 */
function decideRequest(guard: GuardCore, hook: string, r: RequestShape): Decided {
  // One id for every decision of this request (the proxy hop, the tunnel, the target), and its completion.
  const id = guard.audit.nextId();
  const { secure, host, port, method, rawPath, websocket } = r;
  const scheme: Scheme = websocket ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
  const direct = { scheme, host, port, secure };
  if (method === 'CONNECT') return decideTunnel(guard, hook, r, id);
  if (!ABSOLUTE_FORM.test(rawPath)) {
    const path = stripQuery(rawPath);
    const { decision } = decideAndRecord(
      guard,
      { scheme, host, port, method, path },
      hook,
      { url: urlOf(secure, host, port, rawPath) },
      id,
    );
    if (!secure || !decision.allowed)
      return { decision, id, target: direct, connection: { scheme, host, port, decision, method, path } };
    return withTlsConnection(guard, hook, { decision, id, target: direct }, host, port);
  }
  let url: URL | undefined;
  try {
    url = new URL(rawPath);
  } catch {
    url = undefined;
  }
  const targetScheme = url ? TARGET_SCHEMES[url.protocol] : undefined;
  if (!url || !targetScheme) {
    const decision = guard.invalidDecision(
      `${method} ${rawPath.slice(0, 200)} (through ${hostForUrl(host)}:${port})`,
    );
    recordDecision(guard, decision, { scheme, host, port, method }, `${hook}.proxy`, {}, id);
    return { decision, id, target: direct, connection: { scheme, host, port, decision } };
  }
  const targetSecure = targetScheme === 'https' || targetScheme === 'wss';
  const target = {
    scheme:
      websocket && targetScheme === 'http'
        ? ('ws' as const)
        : websocket && targetScheme === 'https'
          ? ('wss' as const)
          : targetScheme,
    host: bare(url.hostname),
    port: url.port ? Number(url.port) : targetSecure ? 443 : 80,
    secure: targetSecure,
  };
  const checked = decideAndRecord(
    guard,
    { scheme: target.scheme, host: target.host, port: target.port, method, path: url.pathname || '/' },
    hook,
    { url: url.href },
    id,
  );
  if (!checked.decision.allowed) {
    return { ...checked, target, connection: { scheme, host, port, decision: checked.decision } };
  }
  const proxy = decideProxy(guard, hook, secure, host, port, id);
  if (!proxy.decision.allowed)
    return { ...proxy, target, connection: { scheme, host, port, decision: proxy.decision } };
  return {
    ...checked,
    target,
    connection: { scheme: proxy.decision.scheme, host, port, decision: proxy.decision },
  };
}

/**
 * A TLS connection is decided as the edge decides it, content unseen (see decideConnection): a request
 * allowed for `https` goes nowhere the edge would refuse (a deny rule for `wss` on the same host holds
 * its TLS connections too). A refusal is recorded under the request's id and is the request's answer.
 */
function withTlsConnection(
  guard: GuardCore,
  hook: string,
  request: Pick<Decided, 'decision' | 'id' | 'target'>,
  host: string,
  port: number,
): Decided {
  const connection = guard.decideTransport(host, port, true);
  if (connection.allowed)
    return { ...request, connection: { scheme: connection.scheme, host, port, decision: connection } };
  recordDecision(
    guard,
    connection,
    { scheme: connection.scheme, host, port },
    `${hook}.connect`,
    {},
    request.id,
  );
  return {
    ...request,
    decision: connection,
    connection: { scheme: connection.scheme, host, port, decision: connection },
  };
}

const TARGET_SCHEMES: Record<string, Scheme | undefined> = {
  'http:': 'http',
  'https:': 'https',
  'ws:': 'ws',
  'wss:': 'wss',
};

/** `CONNECT host:port` through the proxy `r.host:r.port`: the proxy, then the tunnel's target. */
function decideTunnel(guard: GuardCore, hook: string, r: RequestShape, id: string): Decided {
  const { secure, host, port, rawPath } = r;
  const proxy = decideProxy(guard, hook, secure, host, port, id);
  const connection = { scheme: proxy.decision.scheme, host, port, decision: proxy.decision };
  if (!proxy.decision.allowed) {
    const target = parseAuthority(rawPath) ?? { host, port };
    return { ...proxy, target: { scheme: 'tcp', ...target, secure: false }, connection };
  }
  const tunnel = decideTunnelTarget(guard, hook, rawPath, id);
  const target = tunnel.target ?? { scheme: 'tcp' as const, host, port, secure: false };
  // A tunnel to a destination a hook just allowed carries that request: the proxy's decision stands for it.
  if (!tunnel.checked) return { ...proxy, target, connection };
  return { ...tunnel.checked, target, connection };
}

/**
 * The target of a tunnel (`CONNECT host:port`, in HTTP/1 or as an HTTP/2 CONNECT stream's `:authority`):
 * allowed when a hook just allowed a request to that host and port (the tunnel carries that request, which
 * was decided and logged already: `checked` is then undefined), or when a rule allows it as a raw `tcp` (or
 * `tls`) destination (`checked` holds that decision, and its event is written). Anything else is denied,
 * so that a tunnel cannot be opened by hand through an allowed proxy to a destination no rule lists.
 */
export function decideTunnelTarget(
  guard: GuardCore,
  hook: string,
  authority: string,
  id?: string,
): { checked: { decision: Decision; id: string } | undefined; target: Decided['target'] | undefined } {
  const parsed = parseAuthority(authority);
  if (!parsed) {
    const decision = guard.invalidDecision(`CONNECT ${authority.slice(0, 200)}`);
    const checked = recordDecision(
      guard,
      decision,
      { scheme: 'tcp', host: decision.host, port: decision.port },
      `${hook}.tunnel`,
      {},
      id,
    );
    return { checked, target: undefined };
  }
  const recent = guard.recentRequest(parsed.host, parsed.port);
  if (recent) return { checked: undefined, target: { scheme: recent, ...parsed, secure: false } };
  const { decision } = decideTunnelTargetOf(guard.policy, authority, guard.service, guard.clock());
  const checked = recordDecision(
    guard,
    decision,
    { scheme: decision.scheme, host: parsed.host, port: parsed.port },
    `${hook}.tunnel`,
    {},
    id,
  );
  return { checked, target: { scheme: decision.scheme, ...parsed, secure: false } };
}

/** A forward proxy, decided as a transport: `http` (`https` for a TLS proxy), or a raw `tcp`/`tls` rule. */
function decideProxy(
  guard: GuardCore,
  hook: string,
  secure: boolean,
  host: string,
  port: number,
  id: string,
) {
  const decision = decideProxyHop(guard.policy, { host, port, secure, service: guard.service });
  const url = `${secure ? 'https' : 'http'}://${hostForUrl(host)}:${port}/`;
  return recordDecision(
    guard,
    decision,
    { scheme: decision.scheme, host, port },
    `${hook}.proxy`,
    { url },
    id,
  );
}

/** The context the request's socket carries: the decision of what it dials (the origin, or the proxy). */
function connectionContext(guard: GuardCore, decided: Decided, hook: string): ConnectionContext {
  const { connection, id } = decided;
  return {
    scheme: connection.scheme,
    host: connection.host,
    port: connection.port,
    method: connection.method,
    path: connection.path,
    service: guard.service,
    decision: connection.decision,
    hook,
    id,
  };
}

function originOf(target: Decided['target']): string {
  return `${target.secure ? 'https' : 'http'}://${hostForUrl(target.host)}:${target.port}`;
}

/** An agent's `protocol` when it is a plain value (Node's agents), undefined when a getter computes it. */
function plainProtocol(agent: http.Agent): string | undefined {
  for (let o: object | null = agent; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, 'protocol');
    if (!descriptor) continue;
    return 'value' in descriptor && typeof descriptor.value === 'string' ? descriptor.value : undefined;
  }
  return undefined;
}

/**
 * A real ClientRequest that fails with `error` and never opens a socket: no agent, and a
 * `createConnection` that hands back a socket whose look-up fails with the error (see refusedSocket). The
 * request then fails the way Node fails one whose connection could not be made: the caller gets it alive,
 * can attach listeners and write or pipe its body (buffered, as while connecting), and on a later tick
 * it emits 'error' (the guard's) then 'close'. Destroying it at once instead makes a body written or piped
 * into it fail first with ERR_STREAM_DESTROYED (node-fetch on Node 24+ then reports that, not the denial).
 */
function failedRequest(
  original: RequestFn,
  self: unknown,
  plan: Plan,
  error: Error,
  context: ConnectionContext,
): http.ClientRequest {
  const options: Options = {
    ...plan.options,
    agent: undefined,
    // The global agent of the protocol decided, and that protocol: Node's protocol check passes whatever
    // agent the caller gave (an agent-base agent answers it from the call stack).
    _defaultAgent: plan.secure ? https.globalAgent : http.globalAgent,
    protocol: plan.secure ? 'https:' : 'http:',
    createConnection: () => refusedSocket(context, error),
    lookup: undefined,
  };
  return original.call(self, options, plan.callback);
}

/** What `track` has seen of one request so far. */
interface Seen {
  status: number;
  bytes: number;
  error: Error | undefined;
  res: http.IncomingMessage | undefined;
  tlsVersion: string | undefined;
}

/**
 * Times an allowed request against the rule's limits (see Deadlines: connect while its socket connects,
 * response from the request being sent to the headers, idle between body chunks, total) and ends its
 * exchange with what happened. The request's own `emit` is wrapped to watch it: adding 'error'
 * listeners would change what an unhandled error does, and 'data' listeners would start the response flowing.
 */
function track(
  req: http.ClientRequest,
  exchange: Exchange,
  context: ConnectionContext,
  secure: boolean,
): void {
  const seen: Seen = { status: 0, bytes: 0, error: undefined, res: undefined, tlsVersion: undefined };
  const finish = (outcome?: string) => {
    deadlines.clear();
    exchange.end({
      outcome,
      error: seen.error,
      status: seen.status,
      fields: { 'egress.bytes.received': seen.bytes, 'tls.protocol.version': seen.tlsVersion },
    });
  };
  const deadlines = new Deadlines(exchange.decision, (elapsed) => {
    if (exchange.done) return;
    seen.error = elapsed;
    finish('timeout');
    abandon(req, seen.res, elapsed);
  });
  if (secure) translateCallbackErrors(req, exchange.decision);
  watchEmits(req, (event, args) => {
    switch (event) {
      case 'socket':
        return onSocket(req, args[0] as net.Socket, exchange, context, deadlines, seen);
      case 'finish':
        if (!seen.res && !exchange.done) deadlines.awaitingResponse();
        return;
      case 'response':
        return onResponse(args[0] as http.IncomingMessage, secure, deadlines, seen, finish);
      case 'upgrade':
      case 'connect':
        // The exchange ends at the upgrade (WebSocket) or the tunnel (CONNECT): the socket is the caller's now.
        seen.status = (args[0] as http.IncomingMessage).statusCode ?? 0;
        return finish();
      case 'error':
        if (secure) args[0] = translateTlsError(exchange.decision, args[0] as Error);
        seen.error ??= args[0] as Error;
        return;
      case 'close':
        return finish(seen.error ? undefined : seen.res?.complete ? undefined : 'aborted');
    }
  });
}

/** Fails a request whose limit elapsed, without a second 'error' from the request after its response. */
function abandon(req: http.ClientRequest, res: http.IncomingMessage | undefined, error: Error): void {
  if (res && !res.complete) {
    // Once the body is flowing, the error belongs to whoever reads it: close the socket quietly first.
    (res.socket ?? req.socket)?.destroy();
    res.destroy(error);
  } else req.destroy(error);
}

/** Calls `watch` with each event the request emits (it may replace the arguments), before its listeners. */
function watchEmits(req: http.ClientRequest, watch: (event: string | symbol, args: unknown[]) => void): void {
  const emit = req.emit;
  req.emit = function emit_(this: http.ClientRequest, event: string | symbol, ...args: unknown[]): boolean {
    watch(event, args);
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof req.emit;
}

/**
 * The request got its socket: a pooled one was dialled for an earlier request, so its address must also
 * suit this one's rule; a new one is held to the connect limit until it is up.
 */
function onSocket(
  req: http.ClientRequest,
  socket: net.Socket,
  exchange: Exchange,
  context: ConnectionContext,
  deadlines: Deadlines,
  seen: Seen,
): void {
  if (req.reusedSocket) {
    const address = socket.remoteAddress;
    const failure = address ? checkDialledAddress(exchange.guard, context, address) : undefined;
    if (failure) {
      seen.error = failure;
      req.destroy(failure);
    }
    return;
  }
  if (!socket.connecting) return;
  deadlines.connecting();
  socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => deadlines.connected());
}

/** The response headers arrived: count the body as it is pushed (without starting it flowing), time its gaps. */
function onResponse(
  response: http.IncomingMessage,
  secure: boolean,
  deadlines: Deadlines,
  seen: Seen,
  finish: () => void,
): void {
  seen.res = response;
  seen.status = response.statusCode ?? 0;
  deadlines.responding();
  if (secure) seen.tlsVersion = (response.socket as tls.TLSSocket | null)?.getProtocol?.() ?? undefined;
  const push = response.push;
  response.push = function push_(this: http.IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null && chunk !== undefined) {
      seen.bytes += (chunk as { length?: number }).length ?? 0;
      deadlines.data();
    }
    return push.call(this, chunk, encoding);
  } as typeof response.push;
  response.once('end', () => finish());
}

/**
 * A handshake refused on the version also reaches the callbacks of `write()` and `end()` (Node hands them
 * the socket's write error, before the request's 'error' event): clients that fail on those (got, on
 * Node 24 and later) must get the guard's EgressTlsError there too, not OpenSSL's EPROTO.
 */
function translateCallbackErrors(req: http.ClientRequest, decision: Decision): void {
  for (const name of ['write', 'end'] as const) {
    const method = req[name] as (...args: unknown[]) => unknown;
    (req as unknown as Record<string, unknown>)[name] = function (
      this: http.ClientRequest,
      ...args: unknown[]
    ) {
      const at = args.findIndex((a) => typeof a === 'function');
      if (at !== -1) {
        const callback = args[at] as (error?: Error | null) => void;
        args[at] = (error?: Error | null) => callback(error ? translateTlsError(decision, error) : error);
      }
      return method.apply(this, args);
    };
  }
}

// OpenSSL's words for a handshake that failed because no version both sides accept was left.
const VERSION_FAILURE = /alert protocol version|unsupported protocol|no protocols available|version too low/i;

/**
 * A handshake that failed on the version, on a socket held to the rule's floor, is reported as what it
 * is: EgressTlsError (reason tls_version) naming the floor and the rule, with OpenSSL's error as cause.
 */
export function translateTlsError(decision: Decision, error: Error): Error {
  // In report mode the floor is not set on the socket: a failed handshake is not the policy's doing.
  if (decision.mode === 'report') return error;
  const code = (error as { code?: unknown }).code;
  if (!(error instanceof Error) || (code !== 'EPROTO' && !String(code ?? '').startsWith('ERR_SSL')))
    return error;
  if (!VERSION_FAILURE.test(error.message)) return error;
  const denial = decideTlsVersion(
    decision,
    `the TLS handshake found no version at or above the floor ${decision.tls.minVersion} (the server offers only older ones)`,
  );
  return errorForDecision(denial, error);
}

/** Sets the rule's TLS floor unless the caller asked for a higher one (a lower cap is refused by the TLS layer). */
export function raiseFloor(options: { minVersion?: unknown }, decision: Decision): void {
  // Report mode blocks nothing: the TLS layer logs a connection below the floor instead.
  if (decision.mode === 'report') return;
  const floor = decision.tls.minVersion;
  const asked = typeof options.minVersion === 'string' ? options.minVersion : undefined;
  if (!asked || !meetsTlsFloor(asked, floor)) options.minVersion = floor;
}

export function stripQuery(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

/** An IPv6 literal without its brackets (Node dials the bare form; URLs carry the bracketed one). */
export function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function urlOf(secure: boolean, host: string, port: number, rawPath: string): string {
  const path = rawPath.startsWith('/') ? rawPath : `/${rawPath}`;
  return `${secure ? 'https' : 'http'}://${hostForUrl(host)}:${port}${path}`;
}

/** Node's `isURL` in `ClientRequest`: a URL, or an object shaped like one. */
function isUrlLike(value: unknown): value is URL {
  const v = value as Record<string, unknown> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    Boolean(v.href) &&
    Boolean(v.protocol) &&
    v.auth === undefined &&
    v.path === undefined
  );
}

function isWebSocket(value: unknown): boolean {
  const text = Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : '';
  return /(^|[\s,])websocket($|[\s,])/i.test(text);
}

/** A header's value from request options' `headers`, an object or a flat [name, value, ...] array. */
function headerValue(headers: unknown, name: string): unknown {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return headers[i + 1];
    }
    return undefined;
  }
  if (!headers || typeof headers !== 'object') return undefined;
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}
