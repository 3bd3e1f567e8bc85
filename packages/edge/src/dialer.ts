/**
 * Opens the upstream connection to addresses that were already checked. It never resolves a name:
 * what it dials is exactly what the decider saw, so nothing can change between check and connect.
 */
import net from 'node:net';

/** Why a dial failed. */
export class DialError extends Error {
  constructor(
    message: string,
    /** `timeout` when the connect time limit elapsed, else the last socket error code. */
    readonly code: string,
  ) {
    super(message);
    this.name = 'DialError';
  }
}

/** Options of {@link dial}. */
export interface DialOptions {
  /** Checked addresses to try, in order (IPv4 first as resolved). At most four are tried. */
  addresses: readonly string[];
  port: number;
  /** Time limit of each attempt, in milliseconds. */
  timeoutMs: number;
  /** Gives up when aborted (the client went away). */
  signal?: AbortSignal | undefined;
}

const MAX_ATTEMPTS = 4;

/**
 * Connects to the first address that accepts, trying them one after another. Resolves with a connected
 * socket (half-open allowed, so a client's FIN can be passed on while the reply still flows), with an
 * 'error' handler already attached; rejects with {@link DialError}.
 */
export async function dial(options: DialOptions): Promise<net.Socket> {
  // Errors capture a stack: build one only when a dial has failed, not on every connection.
  let last: DialError | undefined;
  for (const address of options.addresses.slice(0, MAX_ATTEMPTS)) {
    if (options.signal?.aborted)
      throw new DialError('the client closed before the upstream answered', 'ABORTED');
    try {
      return await connectOnce(address, options.port, options.timeoutMs, options.signal);
    } catch (error) {
      last = error as DialError;
      if (last.code === 'ABORTED') throw last;
    }
  }
  throw last ?? new DialError('no address to dial', 'ENOADDR');
}

function connectOnce(
  address: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port, allowHalfOpen: true, noDelay: true });
    let settled = false;
    const finish = (error?: DialError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(socket);
    };
    const onConnect = () => finish();
    const onAbort = () => finish(new DialError('the client closed before the upstream answered', 'ABORTED'));
    // Stays attached for the socket's life: a late error must never become an uncaught exception.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      finish(
        new DialError(
          `connect to ${address}:${port} failed: ${err.code ?? err.message}`,
          err.code ?? 'ERROR',
        ),
      );
    });
    socket.once('connect', onConnect);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => finish(new DialError(`connect to ${address}:${port} timed out after ${timeoutMs}ms`, 'timeout')),
      timeoutMs,
    );
  });
}
