/**
 * One accepted client connection: its limit slot, its source, its hello deadline, and the upstream
 * sockets opened for it, so that drain and close can end everything it holds.
 */
import type net from 'node:net';
import { canonicalAddress } from './claims.js';
import type { ListenerKind } from './config.js';
import type { ConnectionSlot } from './limits.js';

/** An accepted connection and everything it holds. */
export class Connection {
  /** The client's address, canonical (IPv4-mapped IPv6 unmapped). */
  readonly source: string;
  /**
   * Epoch ms by which the client's first bytes (CONNECT head and hello) must be complete. Moved on when a
   * keep-alive proxy connection opens a tunnel later.
   */
  helloDeadline: number;
  /** Upstream sockets opened for this connection (one for a tunnel; one per plaintext request). */
  readonly upstreams = new Set<net.Socket>();
  /** Set when the edge itself ends the connection (drain, shutdown), so flows report why. */
  abortReason: string | undefined;
  /** For plaintext HTTP: true between requests (nothing in flight), so drain may close it at once. */
  idle = false;
  /**
   * The service the client's proxy credentials named (explicit proxy with `proxyAuth`); it wins over the
   * source address. Set once, from the first request head, for the life of the connection.
   */
  identity: string | undefined;
  /** Resolves when the client socket has closed. */
  readonly closed: Promise<void>;

  constructor(
    readonly client: net.Socket,
    readonly listener: ListenerKind,
    /** The listener's port (the destination port when nothing better is known). */
    readonly localPort: number,
    helloTimeoutMs: number,
    slot: ConnectionSlot,
  ) {
    this.source = canonicalAddress(client.remoteAddress ?? '') ?? client.remoteAddress ?? 'unknown';
    this.helloDeadline = Date.now() + helloTimeoutMs;
    this.closed = new Promise((resolve) => {
      client.once('close', () => {
        slot.release();
        for (const u of this.upstreams) u.destroy();
        resolve();
      });
    });
  }

  /** The service whose section decides this connection's flows: its credentials', else its source's. */
  serviceIn(policy: { serviceForAddress(address: string): string | undefined }): string | undefined {
    return this.identity ?? policy.serviceForAddress(this.source);
  }

  /** Tracks an upstream socket until it closes. */
  addUpstream(socket: net.Socket): void {
    this.upstreams.add(socket);
    (socket as TrackedUpstream)[OWNER] = this;
    // One listener function shared by every connection: no closure per upstream kept for the flow's life.
    socket.on('close', forgetUpstream);
  }

  /** Ends the connection and its upstreams now, recording why. */
  abort(reason: string): void {
    this.abortReason ??= reason;
    this.client.destroy();
    for (const u of this.upstreams) u.destroy();
  }
}

const OWNER = Symbol('connection.owner');

/** An upstream socket that knows the connection it was opened for. */
interface TrackedUpstream extends net.Socket {
  [OWNER]: Connection;
}

function forgetUpstream(this: TrackedUpstream): void {
  this[OWNER].upstreams.delete(this);
}
