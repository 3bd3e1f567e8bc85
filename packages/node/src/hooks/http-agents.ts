import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  type Decision,
  decideTlsVersion,
  decideVerifyDisabled,
  meetsTlsFloor,
  timeoutError,
} from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { errorType, outcomeOf } from '../pipeline/outcome.js';
import {
  checkDialledAddress,
  decideAndRecord,
  dialChecksOf,
  recordCompletion,
  recordDecision,
} from '../pipeline/record.js';
import { contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { translateTlsError } from './http.js';

type Callback = (error: Error | null, socket?: Duplex) => void;
type ConnectOptions = http.ClientRequestArgs & tls.ConnectionOptions & { lookup?: unknown; path?: string };
type Create = (options: ConnectOptions, callback?: Callback) => Duplex | null | undefined;

/**
 * An `http.Agent` that decides every connection it opens, for explicit use without `install()`:
 * `http.get(url, { agent: createHttpAgent(guard) })`.
 *
 * Each new connection is decided as a transport (may this host be reached on this port over plaintext
 * HTTP, or WS), every address a name resolves to is checked before it is dialled (special-purpose
 * addresses need `privateAddresses: allow` or an `addresses` rule), IP literals are checked against
 * `addresses` rules, and the rule's connect timeout applies. One decision event is written per new
 * connection (hook `http.agent`) and one completion event when it closes.
 *
 * An agent sees connections, not requests: it cannot apply a rule's `methods` and `paths`, nor its
 * response/idle/total timeouts and breaker (a pooled keep-alive socket carries many requests). Use
 * `install()` (the `http` request patch) for those. Under `install()`, a request the patch already decided
 * keeps that decision: the agent writes no second event for it.
 *
 * @param options - Node's `http.AgentOptions`; defaults are Node's (keep-alive off).
 */
export function createHttpAgent(guard: GuardCore, options?: http.AgentOptions): http.Agent {
  const agent = new http.Agent(options);
  const base = http.Agent.prototype.createConnection as Create;
  agent.createConnection = ((opts: ConnectOptions, callback?: Callback) =>
    guardedConnection(guard, false, opts, callback, (o, cb) =>
      base.call(agent, o, cb),
    )) as typeof agent.createConnection;
  return agent;
}

/**
 * An `https.Agent` that decides every connection it opens, for explicit use without `install()`:
 * `https.get(url, { agent: createHttpsAgent(guard) })`.
 *
 * As {@link createHttpAgent} (hook `https.agent`), and for TLS: sets the rule's `tls.minVersion` as the
 * floor (a caller's lower `maxVersion` is refused), refuses `rejectUnauthorized: false` unless the rule
 * says `tls.verify: false` (and logs each use when it does), checks the negotiated version after the
 * handshake, and trusts the guard's `ca` in addition to Node's bundled roots when the caller gave no `ca`.
 *
 * It cannot apply a rule's `methods` and `paths` (it sees connections, not requests): use `install()`.
 *
 * @param options - Node's `https.AgentOptions`; defaults are Node's (keep-alive off).
 */
export function createHttpsAgent(guard: GuardCore, options?: https.AgentOptions): https.Agent {
  const agent = new https.Agent(options);
  const base = https.Agent.prototype.createConnection as unknown as Create;
  agent.createConnection = ((opts: ConnectOptions, callback?: Callback) =>
    guardedConnection(guard, true, opts, callback, (o, cb) =>
      base.call(agent, o, cb),
    )) as typeof agent.createConnection;
  return agent;
}

function guardedConnection(
  guard: GuardCore,
  secure: boolean,
  options: ConnectOptions,
  callback: Callback | undefined,
  create: Create,
): Duplex | null | undefined {
  // IPC (unix sockets, named pipes) is not egress.
  if (options.socketPath || options.path) return create(options, callback);
  const started = performance.now();
  const hook = secure ? 'https.agent' : 'http.agent';
  const rawHost =
    typeof options.host === 'string'
      ? options.host
      : typeof options.hostname === 'string'
        ? options.hostname
        : 'localhost';
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const port = Number(options.port) || (secure ? 443 : 80);
  const fail = (error: Error): undefined => {
    if (callback) callback(error);
    else throw error;
    return undefined;
  };

  // A request the http patch decided brings its decision along; anything else is decided here.
  let context = contextOf(options.lookup);
  let own: { id: string; decision: Decision } | undefined;
  if (!context) {
    const transport = guard.decideTransport(host, port, secure);
    const checked = decideAndRecord(guard, { scheme: transport.scheme, host, port }, hook, {
      url: `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    });
    own = checked;
    if (!checked.decision.allowed) {
      complete(guard, own, hook, started, 'denied', checked.decision.reason);
      return fail(guard.errorFor(checked.decision));
    }
    context = {
      scheme: checked.decision.scheme,
      host,
      port,
      service: guard.service,
      decision: checked.decision,
      hook,
      id: checked.id,
    };
  }
  const decision = context.decision;
  const opts: ConnectOptions = { ...options };
  if (!contextOf(options.lookup)) {
    opts.lookup = guardedLookup(
      dialChecksOf(guard),
      context,
      typeof options.lookup === 'function' ? (options.lookup as net.LookupFunction) : undefined,
    );
  }

  if (secure) {
    const floor = decision.tls.minVersion;
    // Report mode blocks nothing: a TLS would-deny is logged and the connection goes ahead as asked.
    const report = decision.mode === 'report';
    const dest = { scheme: decision.scheme, host, port };
    if (opts.maxVersion && !meetsTlsFloor(opts.maxVersion, floor)) {
      const denial = decideTlsVersion(decision, `the caller capped TLS at ${opts.maxVersion}`);
      if (report) recordDecision(guard, denial, dest, `${hook}.floor`);
      else {
        if (own) complete(guard, own, hook, started, 'tls', 'tls_version');
        return fail(guard.errorFor(denial));
      }
    }
    if (!report && (!opts.minVersion || !meetsTlsFloor(opts.minVersion, floor))) opts.minVersion = floor;
    if (opts.rejectUnauthorized === false) {
      if (decision.tls.verify === false) {
        // Allowed by the rule, and logged on every use.
        decideAndRecord(guard, dest, `${hook}.verify-disabled`);
      } else if (report) {
        recordDecision(guard, decideVerifyDisabled(decision), dest, `${hook}.verify-disabled`);
      } else {
        if (own) complete(guard, own, hook, started, 'tls', 'tls_verify_disabled');
        return fail(guard.errorFor(decideVerifyDisabled(decision)));
      }
    }
    if (guard.ca !== undefined && opts.ca === undefined) {
      opts.ca = [...tls.rootCertificates, ...(Array.isArray(guard.ca) ? guard.ca : [guard.ca])];
    }
  }

  // IP literals never reach a look-up: check them here (without install() nothing else would).
  if (net.isIP(host)) {
    const failure = checkDialledAddress(guard, context, host);
    if (failure) {
      if (own)
        complete(guard, own, hook, started, 'denied', (failure as { reason?: string }).reason ?? 'denied');
      return fail(failure);
    }
  }

  const socket = create(opts, callback) as net.Socket | null | undefined;
  if (!socket) return socket;
  let error: Error | undefined;
  if (socket.connecting) {
    const timer = setTimeout(() => {
      error = timeoutError('connect', decision.timeouts.connect, decision);
      socket.destroy(error);
    }, decision.timeouts.connect);
    timer.unref();
    socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  }
  let tlsVersion: string | undefined;
  if (secure) {
    socket.once('secureConnect', () => {
      const version = (socket as tls.TLSSocket).getProtocol() ?? 'unknown';
      tlsVersion = version;
      if (meetsTlsFloor(version, decision.tls.minVersion)) return;
      const denial = decideTlsVersion(decision, `the server negotiated ${version}`);
      if (decision.mode === 'report') {
        recordDecision(guard, denial, { scheme: decision.scheme, host, port }, `${hook}.floor`);
        return;
      }
      error = guard.errorFor(denial);
      socket.destroy(error);
    });
  }
  // Watch errors without adding an 'error' listener, which would change what an unhandled one does.
  const emit = socket.emit;
  socket.emit = function emit_(this: net.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'error') {
      if (secure) args[0] = translateTlsError(decision, args[0] as Error);
      error ??= args[0] as Error;
    } else if (event === 'close' && own) {
      complete(
        guard,
        own,
        hook,
        started,
        error ? outcomeOf(error) : 'ok',
        error ? errorType(error) : undefined,
        {
          'egress.bytes.received': socket.bytesRead,
          'egress.bytes.sent': socket.bytesWritten,
          'tls.protocol.version': tlsVersion,
        },
      );
    }
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof socket.emit;
  return socket;
}

function complete(
  guard: GuardCore,
  checked: { id: string; decision: Decision },
  hook: string,
  started: number,
  outcome: string,
  errorType: string | undefined,
  extra: Record<string, unknown> = {},
): void {
  recordCompletion(guard, checked.id, hook, checked.decision, {
    outcome,
    durationMs: performance.now() - started,
    'error.type': errorType,
    ...extra,
  });
}
