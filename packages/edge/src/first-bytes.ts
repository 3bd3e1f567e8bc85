/**
 * Reads the first bytes of a stream until a parser is satisfied, under a byte cap and a deadline. The
 * bytes are kept, never consumed: whatever was read is forwarded unchanged once the flow is allowed.
 */
import type net from 'node:net';

/** Outcome of {@link readFirstBytes}. `buffer` always holds every byte read so far. */
export type FirstBytes<T> =
  | { status: 'ok'; value: T; buffer: Buffer }
  /** The deadline passed with the parser still wanting more. */
  | { status: 'timeout'; buffer: Buffer }
  /** More than `maxBytes` arrived with the parser still wanting more. */
  | { status: 'too_large'; buffer: Buffer }
  /** The peer ended or the socket closed or failed first. */
  | { status: 'closed'; buffer: Buffer; error?: Error | undefined };

/** Options of {@link readFirstBytes}. */
export interface FirstBytesOptions {
  /** Epoch milliseconds by which the parser must be satisfied. */
  deadline: number;
  /** Cap on the bytes buffered while the parser wants more. */
  maxBytes: number;
}

/**
 * Feeds `initial` and then everything `socket` sends to `parse` (which sees the whole buffer each time
 * and returns undefined for "need more") until it returns a value. The socket is left paused with its
 * listeners removed, so the caller can pipe it.
 */
export function readFirstBytes<T>(
  socket: net.Socket,
  initial: Buffer,
  parse: (buffer: Buffer) => T | undefined,
  options: FirstBytesOptions,
): Promise<FirstBytes<T>> {
  return new Promise((resolve) => {
    let buffer = initial;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: FirstBytes<T>) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      resolve(result);
    };
    const check = (): boolean => {
      let value: T | undefined;
      try {
        value = parse(buffer);
      } catch (error) {
        // Parsers are meant never to throw; if one does, the bytes are refused, not the process.
        finish({ status: 'closed', buffer, error: error as Error });
        return true;
      }
      if (value !== undefined) {
        finish({ status: 'ok', value, buffer });
        return true;
      }
      if (buffer.length > options.maxBytes) {
        finish({ status: 'too_large', buffer });
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      check();
    };
    const onEnd = () => {
      // A parser may accept a complete message that the peer followed with FIN.
      if (!check()) finish({ status: 'closed', buffer });
    };
    const onError = (error: Error) => finish({ status: 'closed', buffer, error });

    if (initial.length > 0 && check()) return;
    if (socket.destroyed || socket.readableEnded) {
      finish({ status: 'closed', buffer });
      return;
    }
    const wait = options.deadline - Date.now();
    if (wait <= 0) {
      finish({ status: 'timeout', buffer });
      return;
    }
    timer = setTimeout(() => finish({ status: 'timeout', buffer }), wait);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  });
}
