import net from 'node:net';
import { attachContext, type ConnectionContext } from './connection-context.js';

const REFUSED_HOST = 'egress-guard-denied.invalid';

/**
 * The socket of a refused request or session: asked to connect to a name that never resolves (its look-up fails
 * with the guard's error on the next tick), so it is "connecting" (the session waits for it, emits no
 * 'connect') and then fails without a connect syscall. The look-up carries the denied context so the
 * socket layer lets it through to fail rather than deciding it again.
 */
export function refusedSocket(context: ConnectionContext, error: Error): net.Socket {
  const port = context.port;
  const lookup = attachContext(
    ((_host: string, _options: unknown, callback: (e: Error) => void) => {
      process.nextTick(() => callback(error));
    }) as unknown as net.LookupFunction,
    { ...context, host: REFUSED_HOST, port },
  );
  const socket = new net.Socket();
  socket.connect({ host: REFUSED_HOST, port, lookup, autoSelectFamily: false } as net.TcpNetConnectOpts);
  return socket;
}
