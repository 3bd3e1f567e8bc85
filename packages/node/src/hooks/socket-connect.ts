import net from 'node:net';
import tls from 'node:tls';
import type { GuardCore } from '../guard/guard-core.js';
import { RawConnection } from '../pipeline/raw-connection.js';
import { checkDialledAddress, dialChecksOf } from '../pipeline/record.js';
import { type ConnectionContext, contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';

type Connect = typeof net.Socket.prototype.connect;
type ConnectArgs = (...args: unknown[]) => net.Socket;

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
    const target = guard ? readTarget(args) : undefined;
    // IPC (unix sockets, named pipes) is not egress.
    if (!guard || !target || isIpc(target)) return (original as ConnectArgs).apply(this, args);
    return connectGuarded(guard, this, args, target, original as ConnectArgs);
  } as Connect;
  net.Socket.prototype.connect = patched;
  return () => {
    if (net.Socket.prototype.connect === patched) net.Socket.prototype.connect = original;
  };
}

/** Node connects over TCP unless `path` is a non-empty string (agents pass `path: null` through). */
function isIpc(target: Target): boolean {
  return typeof target.path === 'string' && target.path !== '';
}

/**
 * Connects a TCP socket under the decision it carries, or the one made here for it as a raw connection:
 * an IP literal is checked now, a name address by address as the guarded lookup resolves it.
 */
function connectGuarded(
  guard: GuardCore,
  socket: net.Socket,
  args: unknown[],
  target: Target,
  original: ConnectArgs,
): net.Socket {
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
  const carried = context !== undefined;
  if (!context) {
    const secure = socket instanceof tls.TLSSocket;
    const raw = RawConnection.decide(guard, { host, port, secure }, secure ? 'tls' : 'net');
    if (!raw.allowed) return refuse(socket, raw.refuse());
    // A raw connection has no request above it to write its completion event: it is written when it closes.
    raw.completeOnClose(socket);
    context = raw.context();
  }
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (net.isIP(bare)) {
    const failure = checkDialledAddress(guard, context, bare);
    return failure ? refuse(socket, failure) : original.apply(socket, args);
  }
  if (carried) return original.apply(socket, args);
  const lookup = guardedLookup(dialChecksOf(guard), context, target.lookup as never);
  return original.apply(socket, withLookup(args, lookup));
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

function refuse(socket: net.Socket, error: Error): net.Socket {
  process.nextTick(() => socket.destroy(error));
  return socket;
}
