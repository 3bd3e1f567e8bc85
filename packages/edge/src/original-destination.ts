/**
 * The pre-NAT destination of a connection that iptables/nftables `REDIRECT` (or `DNAT`) sent to a
 * transparent listener, read with `getsockopt(SO_ORIGINAL_DST)` through koffi (an FFI call into libc).
 *
 * Why FFI and not something else is argued in docs/edge.md, "Transparent mode: how the original
 * destination is read". In short: Node has no getsockopt; koffi ships prebuilt binaries inside its npm
 * package, so nothing is compiled on install; the cost is one syscall per accepted connection.
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import util from 'node:util';

/** The destination a client asked for before the kernel rewrote it to the listener. */
export interface OriginalDestination {
  /** IPv4 dotted quad, or IPv6 in Node's canonical (compressed, lower-case) form. */
  address: string;
  port: number;
  family: 4 | 6;
}

// <linux/in.h>, <linux/netfilter_ipv4.h>, <linux/netfilter_ipv6/ip6_tables.h>.
const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80;
const IP6T_SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;
/** `sizeof(struct sockaddr_in)`: family(2) port(2) addr(4) zero(8). */
const SOCKADDR_IN_SIZE = 16;
/** `sizeof(struct sockaddr_in6)`: family(2) port(2) flowinfo(4) addr(16) scope_id(4). */
const SOCKADDR_IN6_SIZE = 28;

type GetsockoptFn = (fd: number, level: number, name: number, value: Buffer, length: Buffer) => number;

/** libc's getsockopt, declared through koffi. */
export interface Native {
  getsockopt: GetsockoptFn;
  errno: () => number;
}

/** `undefined`: not tried yet; an Error: tried and failed (remembered, so the cost is paid once). */
let native: Native | Error | undefined;

/**
 * Loads koffi and declares getsockopt once, on first use: importing the edge must not need the native
 * module (explicit and sni-routed modes work without it, and on platforms koffi has no binary for).
 */
function loadNative(): Native {
  if (native instanceof Error) throw native;
  if (native) return native;
  // The package is built to both ESM and CJS: CJS has __filename; ESM has import.meta.url, which the
  // CJS build leaves empty, so it is read only without __filename. (Not `typeof require`: bundlers
  // replace `require` in ESM output with a shim that exists but throws.)
  const base = typeof __filename === 'string' ? __filename : import.meta.url;
  try {
    native = bindGetsockopt(createRequire(base));
    return native;
  } catch (err) {
    native = err as Error;
    throw native;
  }
}

/**
 * koffi is an optional peer dependency of the edge (28 MiB of prebuilt binaries that only the transparent
 * listener needs): installed by those who run one, absent for everyone else. Without it, this says which
 * package to install.
 */
export const KOFFI_MISSING =
  'transparent mode needs the koffi package, an optional peer dependency of @egress-guard/edge: install it beside the edge (npm install koffi)';

/**
 * Declares libc's getsockopt through koffi, loaded with `load` (the edge's own `require`; tests pass one
 * that fails as a missing package does).
 *
 * @throws An Error saying why transparent mode is unavailable: not Linux, koffi not installed
 * ({@link KOFFI_MISSING}), or koffi unable to load.
 */
export function bindGetsockopt(load: (id: string) => unknown): Native {
  if (process.platform !== 'linux') {
    throw new Error(
      `transparent mode is unavailable: SO_ORIGINAL_DST exists only on Linux (this is ${process.platform})`,
    );
  }
  let koffi: typeof import('koffi');
  try {
    koffi = load('koffi') as typeof import('koffi');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(KOFFI_MISSING, { cause: err });
    }
    throw new Error(`transparent mode is unavailable: koffi does not load (${(err as Error).message})`, {
      cause: err,
    });
  }
  try {
    const libc = koffi.load('libc.so.6');
    // Both pointers are passed as Buffers: koffi hands the native function a pointer into the Buffer's
    // memory for the call, so the kernel writes straight into it.
    const getsockopt = libc.func(
      'int getsockopt(int sockfd, int level, int optname, void *optval, void *optlen)',
    ) as unknown as GetsockoptFn;
    return { getsockopt, errno: () => koffi.errno() };
  } catch (err) {
    throw new Error(
      `transparent mode is unavailable: cannot call getsockopt through koffi (${(err as Error).message})`,
      { cause: err },
    );
  }
}

/**
 * Throws, saying why, when {@link originalDestination} cannot work in this process (not Linux, koffi not
 * installed or not loading). The edge calls it before binding a transparent listener.
 */
export function assertOriginalDestination(): void {
  loadNative();
}

/**
 * Whether {@link originalDestination} can work in this process: Linux, and koffi loads with libc's
 * getsockopt. Says nothing about the firewall rules; a connection that was not redirected still throws.
 * Call it at start-up to refuse a transparent listener early, with the reason in the log.
 */
export function supportsOriginalDestination(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

/** An Error shaped like Node's system errors (`code`, `errno`, `syscall`), so callers can log `code`. */
function systemError(errno: number, detail: string): NodeJS.ErrnoException {
  // libuv's errno values are the negated Linux ones; its map gives the name and a message.
  const [name, message] = util.getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  const err: NodeJS.ErrnoException = new Error(
    `getsockopt(SO_ORIGINAL_DST) failed: ${name} (${message}); ${detail}`,
  );
  err.code = name;
  err.errno = -errno;
  err.syscall = 'getsockopt';
  return err;
}

/** The IPv4 address inside `::ffff:a.b.c.d`, or `undefined`. */
function unmapV4(address: string): string | undefined {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m?.[1];
}

/** Reads `sockaddr.sa_family`, a host-order u16. */
function readFamily(buf: Buffer): number {
  return os.endianness() === 'LE' ? buf.readUInt16LE(0) : buf.readUInt16BE(0);
}

/** One spelling per IPv6 address (zero compression, lower case), by the URL parser's rules. */
function canonicalV6(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}

function formatV6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonicalV6(groups.join(':'));
}

/**
 * The destination a client connected to before iptables/nftables `REDIRECT` (or `DNAT`) rewrote it to
 * this listener: `getsockopt(fd, SOL_IP, SO_ORIGINAL_DST)` for IPv4 and
 * `getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST)` for IPv6, chosen by the socket's local address (an
 * IPv4 client on a dual-stack `::` listener has a `::ffff:` local address and is read as IPv4).
 *
 * The file descriptor is `socket._handle.fd`, an internal of Node's TCP handle (`TCPWrap` via
 * `LibuvStreamWrap`): present on Linux in Node 20, 22, 24 and 26 (checked for each release line in the
 * test matrix), `-1` on Windows. If a Node release drops it, this throws and transparent mode fails
 * closed, rather than guessing.
 *
 * Fail closed: the caller must deny the connection when this throws. It throws when
 * - the platform is not Linux or koffi cannot load (see {@link supportsOriginalDestination});
 * - the socket has no file descriptor (destroyed, or not a TCP socket);
 * - the kernel has no NAT record for it (`ENOENT`: conntrack does not track this connection);
 * - the connection was not redirected: the kernel then reports the address the client really dialled,
 *   which is this listener itself (`code: 'ERR_NOT_REDIRECTED'`). Forwarding it would loop back here.
 *
 * Cost: one getsockopt syscall per accepted connection, no allocation beyond two small Buffers.
 */
export function originalDestination(socket: net.Socket): OriginalDestination {
  const lib = loadNative();
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error(
      'cannot read the original destination: the socket has no file descriptor (destroyed, not TCP, ' +
        'or this Node release no longer exposes socket._handle.fd)',
    );
  }
  const local = socket.localAddress;
  if (local === undefined) {
    throw new Error('cannot read the original destination: the socket has no local address (closed)');
  }
  const mapped = unmapV4(local);
  const v4 = net.isIPv4(local) || mapped !== undefined;

  const value = Buffer.alloc(v4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
  const length = Buffer.alloc(4);
  // socklen_t is a host-order u32.
  if (os.endianness() === 'LE') length.writeUInt32LE(value.length);
  else length.writeUInt32BE(value.length);
  const rc = v4
    ? lib.getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, value, length)
    : lib.getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, value, length);
  if (rc !== 0) {
    const errno = lib.errno();
    throw systemError(
      errno,
      errno === 2
        ? 'the kernel has no NAT record for this connection (not redirected by iptables/nftables, or ' +
            'conntrack is not active in this network namespace)'
        : `fd ${fd}, local address ${local}`,
    );
  }

  const family = readFamily(value);
  let result: OriginalDestination;
  if (v4 && family === AF_INET) {
    const a = value.subarray(4, 8);
    result = { address: `${a[0]}.${a[1]}.${a[2]}.${a[3]}`, port: value.readUInt16BE(2), family: 4 };
  } else if (!v4 && family === AF_INET6) {
    result = { address: formatV6(value.subarray(8, 24)), port: value.readUInt16BE(2), family: 6 };
  } else {
    throw new Error(`cannot read the original destination: unexpected address family ${family}`);
  }

  // Not redirected: conntrack still has an entry, and its original destination is this listener.
  const localCanonical = result.family === 4 ? (mapped ?? local) : canonicalV6(local);
  if (result.port === socket.localPort && result.address === localCanonical) {
    const err: NodeJS.ErrnoException = new Error(
      `connection was not redirected: its original destination ${result.address}:${result.port} is ` +
        'this listener itself (a client dialled the filter directly)',
    );
    err.code = 'ERR_NOT_REDIRECTED';
    throw err;
  }
  return result;
}
