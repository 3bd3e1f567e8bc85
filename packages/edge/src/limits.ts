/**
 * Connection limits: how many connections may be open at once, in total and from one client address.
 * A connection over either limit is closed at accept, before a byte is read, with `connection_limit`.
 */

/** A held slot; call `release()` once when the connection closes (later calls do nothing). */
export interface ConnectionSlot {
  release(): void;
}

/** Why a connection was refused, when it was. */
export type LimitRefusal = { scope: 'total' | 'source'; limit: number };

/** Counts open connections in total and per source address. */
export class ConnectionLimiter {
  private total = 0;
  private readonly perSource = new Map<string, number>();

  /**
   * @param maxTotal Connections open at once across every listener.
   * @param maxPerSource Connections open at once from one client address.
   */
  constructor(
    private readonly maxTotal: number,
    private readonly maxPerSource: number,
  ) {}

  /** Takes a slot for a connection from `source`, or says which limit refuses it. */
  acquire(source: string): ConnectionSlot | LimitRefusal {
    if (this.total >= this.maxTotal) return { scope: 'total', limit: this.maxTotal };
    const current = this.perSource.get(source) ?? 0;
    if (current >= this.maxPerSource) return { scope: 'source', limit: this.maxPerSource };
    this.total++;
    this.perSource.set(source, current + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const n = (this.perSource.get(source) ?? 1) - 1;
        if (n <= 0) this.perSource.delete(source);
        else this.perSource.set(source, n);
      },
    };
  }
}

/** Whether an {@link ConnectionLimiter.acquire} result is a refusal. */
export function isRefusal(result: ConnectionSlot | LimitRefusal): result is LimitRefusal {
  return 'scope' in result;
}
