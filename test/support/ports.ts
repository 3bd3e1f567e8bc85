import net from 'node:net';

/**
 * Starts `server` listening on an ephemeral port of `host` and resolves with that port.
 *
 * @param host - Address to bind. Default `'127.0.0.1'`.
 */
export function listenEphemeral(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(0, host, () => {
      server.off('error', onError);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') {
        reject(new Error(`server on ${host} has no TCP address`));
        return;
      }
      resolve(addr.port);
    });
  });
}

/**
 * A port on `host` where nothing listens: bound to learn a free ephemeral port, then closed. A connect
 * there is refused at once, which tests use for "the target was down" without waiting on a timeout.
 * Another process could in principle take the port in between; the kernel hands ephemeral ports out
 * round-robin, so in practice it stays free for the life of a test.
 *
 * @param host - Address to probe. Default `'127.0.0.1'`.
 */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  const port = await listenEphemeral(server, host);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Live count of TCP connections a server accepted, from {@link countAccepts}. */
export interface AcceptCounter {
  /** Connections accepted since the counter was attached (or last reset). */
  readonly count: number;
  /** Sets the count back to zero. */
  reset(): void;
  /** Detaches the listener. */
  stop(): void;
}

/**
 * Counts accepted connections on any `net.Server` (including http, https, tls and http2 servers, whose
 * `'connection'` event fires for the raw TCP socket before any TLS or HTTP parsing). A count of zero is
 * the proof that a denied destination never got a packet.
 */
export function countAccepts(server: net.Server): AcceptCounter {
  let count = 0;
  const onConnection = (): void => {
    count++;
  };
  server.on('connection', onConnection);
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
    stop() {
      server.off('connection', onConnection);
    },
  };
}
