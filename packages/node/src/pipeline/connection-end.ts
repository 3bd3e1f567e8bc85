import type net from 'node:net';
import tls from 'node:tls';
import type { Exchange } from './exchange.js';
import { errorType, outcomeOf } from './outcome.js';

/**
 * How a connection's exchange ends: refused before it dialled, or when its socket closes. For the
 * connections a hook decides on its own (raw `net`/`tls` sockets, the guard's agents), which have no
 * request above them to write their completion.
 */

/**
 * Ends the exchange of a connection the guard refused before it dialled (its TLS options, its address):
 * the outcome from the error (`denied`, `tls`), `error.type` the refusal's reason. Returns the error, to
 * fail the connection with. Without an exchange (the connection has no events of its own) it only returns it.
 */
export function endRefused(exchange: Exchange | undefined, error: Error): Error {
  const reason = (error as { reason?: unknown }).reason;
  exchange?.end({
    outcome: outcomeOf(error),
    fields: { 'error.type': typeof reason === 'string' ? reason : errorType(error) },
  });
  return error;
}

/**
 * Ends the exchange when the socket closes: the outcome from the first error it emitted (`ok` without
 * one), the bytes each way, and for TLS the version negotiated.
 *
 * Errors are seen through the socket's `emit`, not an 'error' listener: a listener would change what an
 * error the caller left unhandled does (swallowed, where Node throws it). Watch before wrapping `emit` to
 * translate errors (e.g. OpenSSL's version failure into EgressTlsError): the wrapper installed last runs
 * first, so the completion sees the error the caller sees.
 */
export function endOnClose(socket: net.Socket, exchange: Exchange): void {
  let failure: Error | undefined;
  let version: string | undefined;
  if (socket instanceof tls.TLSSocket) {
    // Read at the handshake: asking a closed TLS socket for its protocol can crash Node 20 (use after free).
    socket.once('secureConnect', () => {
      version = socket.getProtocol() ?? undefined;
    });
  }
  const emit = socket.emit;
  socket.emit = function emit_(this: net.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'error') failure ??= args[0] as Error;
    else if (event === 'close') {
      exchange.end({
        error: failure,
        fields: {
          'egress.bytes.sent': socket.bytesWritten,
          'egress.bytes.received': socket.bytesRead,
          'tls.protocol.version': version,
        },
      });
    }
    return (emit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof socket.emit;
}
