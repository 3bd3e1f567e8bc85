import http2 from 'node:http2';
import { Duplex } from 'node:stream';

export { refusedSocket } from '../../socket/refused-socket.js';

const { NGHTTP2_REFUSED_STREAM } = http2.constants;
/**
 * Stands in for a `ClientHttp2Stream` the guard refused: nothing is sent; it emits the error and closes
 * on the next tick. Written data is discarded.
 */
export class RefusedHttp2Stream extends Duplex {
  readonly id = undefined;
  readonly pending = true;
  readonly aborted = false;
  readonly endAfterHeaders = false;
  readonly bufferSize = 0;
  readonly state = {};
  readonly sentInfoHeaders: http2.OutgoingHttpHeaders[] = [];
  readonly sentTrailers = undefined;
  rstCode: number | undefined = NGHTTP2_REFUSED_STREAM;

  constructor(
    readonly session: http2.ClientHttp2Session,
    readonly sentHeaders: http2.OutgoingHttpHeaders,
    error: Error,
  ) {
    super({
      read() {},
      write(_chunk, _encoding, callback) {
        callback();
      },
    });
    process.nextTick(() => this.destroy(error));
  }

  close(code?: number, callback?: () => void): void {
    if (typeof code === 'number') this.rstCode = code;
    if (callback) this.once('close', callback);
    this.destroy();
  }

  priority(): void {}

  sendTrailers(): void {}

  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    return this;
  }
}
