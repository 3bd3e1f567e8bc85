import net from 'node:net';
import tls from 'node:tls';
import { type Decision, EgressError } from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { checkDialledAddress, decideAndRecord, dialChecksOf, recordCompletion } from '../pipeline/record.js';
import { type ConnectionContext, contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';

type Connect = typeof net.Socket.prototype.connect;

/**
 * Patches `net.Socket.prototype.connect`, the one place every TCP client in the process reaches (net,
 * tls, http, https, http2, undici, any copy of any library). A connection that a guarded hook opened
 * carries its decision in its `lookup`; any other is decided here as a raw `tcp`/`tls` connection. A
 * denied socket is destroyed before `connect` is called: the destination never sees a packet. IP
 * literals are checked here (they never reach a lookup); names are checked address by address in the
 * guarded lookup, at the moment they are dialled.
 */
export function patchSocketConnect(current: () => GuardCore | undefined): () => void {
  const original: Connect = net.Socket.prototype.connect;
  const patched = function connect(this: net.Socket, ...args: unknown[]) {
    const guard = current();
    if (!guard) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    const target = readTarget(args);
    // IPC (unix sockets, named pipes) is not egress.
    // Node connects over TCP unless `path` is a non-empty string (agents pass `path: null` through).
    if (typeof target.path === 'string' && target.path !== '') {
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    }

    const host = target.host ?? 'localhost';
    const port = Number(target.port);
    let context = contextOf(target.lookup);
    if (context && !sameTarget(context, host, port)) {
      // A library spread a request's options (its decided lookup included) into a connection to somewhere
      // else: that decision says nothing about this destination. Decide it afresh, resolving with the
      // guard's own lookup rather than the foreign one.
      context = undefined;
      target.lookup = undefined;
      args = withLookup(args, undefined);
    }
    const wrapsCallerLookup = context === undefined;
    if (!context) {
      const isTls = this instanceof tls.TLSSocket;
      const recent = guard.recentRequest(host, port);
      // A socket opened for a request a hook allowed moments ago (a caller's own dispatcher or agent)
      // is decided as that request's transport; anything else is a raw connection.
      const hook = isTls ? 'tls' : 'net';
      const started = performance.now();
      const { decision, id } = recent
        ? {
            decision:
              recent === 'tcp' || recent === 'tls'
                ? guard.decide({ scheme: recent, host, port })
                : guard.decideTransport(host, port, isTls),
            id: undefined,
          }
        : decideAndRecord(guard, { scheme: isTls ? 'tls' : 'tcp', host, port }, hook);
      if (!decision.allowed) {
        if (id)
          recordCompletion(guard, id, hook, decision, {
            outcome: 'denied',
            durationMs: 0,
            'error.type': decision.reason,
          });
        return refuse(this, guard.errorFor(decision));
      }
      // A raw connection has no request above it to write its completion event: write it when it closes.
      if (id) completeOnClose(this, guard, id, hook, decision, started);
      context = { scheme: decision.scheme, host, port, service: guard.service, decision, hook, id };
    }
    const bare = host.startsWith('[') ? host.slice(1, -1) : host;
    if (net.isIP(bare)) {
      const failure = checkDialledAddress(guard, context, bare);
      if (failure) return refuse(this, failure);
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    }
    if (!wrapsCallerLookup) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    const lookup = guardedLookup(dialChecksOf(guard), context as ConnectionContext, target.lookup as never);
    return (original as (...a: unknown[]) => net.Socket).apply(this, withLookup(args, lookup));
  } as Connect;
  net.Socket.prototype.connect = patched;
  return () => {
    if (net.Socket.prototype.connect === patched) net.Socket.prototype.connect = original;
  };
}

function sameTarget(context: ConnectionContext, host: string, port: number): boolean {
  const bare = (h: string) => (h.startsWith('[') ? h.slice(1, -1) : h).toLowerCase().replace(/\.$/, '');
  return context.port === port && bare(context.host) === bare(host);
}

interface Target {
  path?: string | null | undefined;
  host?: string | undefined;
  port?: unknown;
  lookup?: unknown;
}

/** Reads connect's arguments in each form: ([options, cb]) as net.connect passes them, (options, cb), (port, host, cb), (path, cb). */
function readTarget(args: unknown[]): Target {
  const first = args[0];
  const options = Array.isArray(first) ? first[0] : first;
  if (options && typeof options === 'object') {
    const o = options as Record<string, unknown>;
    return {
      path: o.path as string | undefined,
      host: o.host as string | undefined,
      port: o.port,
      lookup: o.lookup,
    };
  }
  if (typeof options === 'string' && !/^\d+$/.test(options)) return { path: options };
  return { port: options, host: typeof args[1] === 'string' ? args[1] : undefined };
}

function withLookup(args: unknown[], lookup: unknown): unknown[] {
  const first = args[0];
  if (Array.isArray(first)) {
    // net.connect passes a normalised array tagged with an internal symbol: keep the array, replace its options.
    first[0] = { ...(first[0] as object), lookup };
    return args;
  }
  if (first && typeof first === 'object') return [{ ...(first as object), lookup }, ...args.slice(1)];
  const cb = args.find((a) => typeof a === 'function');
  return [
    { port: first, host: typeof args[1] === 'string' ? args[1] : undefined, lookup },
    ...(cb ? [cb] : []),
  ];
}

/** Writes the completion event of a raw connection (outcome, duration, bytes, TLS version) when it closes. */
export function completeOnClose(
  socket: net.Socket,
  guard: GuardCore,
  id: string,
  hook: string,
  decision: Decision,
  started: number,
): void {
  let failure: Error | undefined;
  let version: string | undefined;
  socket.once('error', (error) => {
    failure = error;
  });
  // Read at the handshake: asking a closed TLS socket for its protocol can crash Node 20 (use after free).
  if (socket instanceof tls.TLSSocket) {
    socket.once('secureConnect', () => {
      version = socket.getProtocol() ?? undefined;
    });
  }
  socket.once('close', () => {
    const code = (failure as { code?: string } | undefined)?.code;
    recordCompletion(guard, id, hook, decision, {
      outcome: failure
        ? failure instanceof EgressError
          ? code === 'EGRESS_ERR_TLS'
            ? 'tls'
            : 'denied'
          : 'error'
        : 'ok',
      durationMs: performance.now() - started,
      'egress.bytes.sent': socket.bytesWritten,
      'egress.bytes.received': socket.bytesRead,
      'tls.protocol.version': version,
      'error.type': failure ? (code ?? failure.name) : undefined,
    });
  });
}

function refuse(socket: net.Socket, error: Error): net.Socket {
  process.nextTick(() => socket.destroy(error));
  return socket;
}
