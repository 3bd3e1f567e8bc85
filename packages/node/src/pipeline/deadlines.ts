import { type Decision, type EgressTimeoutError, type TimeoutKind, timeoutError } from '@egress-guard/policy';

/**
 * The rule's limits on one request, on Node's own timers (undici's coarse timers fire up to a second
 * late): total from the start; connect while a new connection is being made; response from the request
 * being on a connection to the response headers; idle between response body chunks. The first to elapse
 * calls `onElapsed` with an error that names the limit, its value and the rule; then all are cleared.
 */
export class Deadlines {
  private readonly total: NodeJS.Timeout;
  private connect: NodeJS.Timeout | undefined;
  private response: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private over = false;

  constructor(
    private readonly decision: Decision,
    private readonly onElapsed: (error: EgressTimeoutError) => void,
  ) {
    this.total = this.arm('total');
  }

  /** A new connection is being made for the request. */
  connecting(): void {
    if (!this.over && !this.connect) this.connect = this.arm('connect');
  }

  /** The connection is up (after the TLS handshake, for TLS). */
  connected(): void {
    clearTimeout(this.connect);
  }

  /** The request is on a connection (being sent, or sent): waiting for the response headers from now. */
  awaitingResponse(): void {
    clearTimeout(this.connect);
    if (!this.over && !this.response) this.response = this.arm('response');
  }

  /** The response headers arrived: from now on, the idle limit between body chunks. */
  responding(): void {
    clearTimeout(this.connect);
    clearTimeout(this.response);
    if (!this.over) this.idle ??= this.arm('idle');
  }

  /** A response body chunk arrived. */
  data(): void {
    this.idle?.refresh();
  }

  /** The request ended: no limit applies any more. */
  clear(): void {
    this.over = true;
    clearTimeout(this.total);
    clearTimeout(this.connect);
    clearTimeout(this.response);
    clearTimeout(this.idle);
  }

  private arm(kind: TimeoutKind): NodeJS.Timeout {
    const limit = this.decision.timeouts[kind];
    const timer = setTimeout(() => {
      if (this.over) return;
      this.clear();
      this.onElapsed(timeoutError(kind, limit, this.decision));
    }, limit);
    timer.unref();
    return timer;
  }
}
