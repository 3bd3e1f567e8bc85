/**
 * The splice: bytes both ways between a client and its upstream once a flow is allowed, half-closes
 * passed on, one idle limit, and the completion event once both sides have closed.
 *
 * Why not `pipe()`: a pipe adds six listeners and a state object to each side, and a closure per flow for
 * each event the flow itself must watch. Here every listener is one function shared by all flows: it
 * finds its flow through the socket (`this`), so an idle spliced connection holds two sockets and one
 * small record, nothing more. Back-pressure is a pipe's: a side whose peer cannot take more is paused
 * until the peer drains.
 *
 * One idle timer per flow, on the client socket: every byte relayed either way is a read or a write on
 * the client, so its timer sees all the flow's activity (the upstream needs none of its own).
 */
import type net from 'node:net';
import type { Connection } from './connection.js';
import type { FlowOutcome, FlowRecord } from './flow-record.js';

/** How long the side left open may take to flush what is queued for it once the other side is gone. */
const FINISH_MS = 2000;

const PEER = Symbol('splice.peer');
const STATE = Symbol('splice.state');
const IS_CLIENT = Symbol('splice.isClient');

/** A socket taking part in a splice: it knows its peer and the flow's state. */
interface Side extends net.Socket {
  [PEER]: Side;
  [STATE]: SpliceState;
  [IS_CLIENT]: boolean;
}

/** One spliced flow: what ended it, and how many of its two sockets have closed. */
class SpliceState {
  /** A fault that ended the flow (idle limit, socket error): outranks a side's orderly end. */
  fault: string | undefined;
  outcome: FlowOutcome = 'ok';
  errorType: string | undefined;
  /** The side that sent its FIN first: the close reason when nothing else ended the flow. */
  firstEnd: 'client_closed' | 'upstream_closed' | undefined;
  closed = 0;

  constructor(
    readonly conn: Connection,
    readonly flow: FlowRecord,
    readonly upstream: net.Socket,
  ) {}

  /** Records the first fault; later ones are consequences of it. */
  failed(reason: string, outcome: FlowOutcome, errorType?: string): void {
    if (this.fault !== undefined) return;
    this.fault = reason;
    this.outcome = outcome;
    this.errorType = errorType;
  }

  /** Writes the completion: the edge's own abort, else the fault, else who closed first. */
  complete(): void {
    const flow = this.flow;
    flow.sent = this.upstream.bytesWritten;
    flow.received = this.upstream.bytesRead;
    const aborted = this.conn.abortReason;
    if (aborted !== undefined) flow.complete('ok', aborted);
    else flow.complete(this.outcome, this.fault ?? this.firstEnd ?? 'closed', this.errorType);
  }
}

/**
 * Relays both ways between `conn.client` and `upstream`, passes on half-closes, ends both after `idleMs`
 * without a byte either way (close reason `idle_timeout`, even when one side had already half-closed),
 * and writes the flow's completion once both sockets have closed.
 */
export function splice(conn: Connection, flow: FlowRecord, upstream: net.Socket, idleMs: number): void {
  const state = new SpliceState(conn, flow, upstream);
  const client = conn.client as Side;
  const up = upstream as Side;
  client[PEER] = up;
  up[PEER] = client;
  client[STATE] = state;
  up[STATE] = state;
  client[IS_CLIENT] = true;
  up[IS_CLIENT] = false;
  for (const side of [client, up]) {
    side.on('data', forward);
    side.on('drain', resumePeer);
    side.on('end', passEnd);
    side.on('error', onError);
    // A socket may already be closed (the peer left while the upstream's first answer was read).
    // `on`, not `once`: 'close' comes once anyway, and `once` would wrap every listener in two objects.
    if (side.closed) queueMicrotask(() => onClose.call(side));
    else side.on('close', onClose);
  }
  client.setTimeout(idleMs);
  client.on('timeout', onIdle);
  client.resume();
  up.resume();
}

function forward(this: Side, chunk: Buffer): void {
  const peer = this[PEER];
  if (peer.destroyed || peer.writableEnded) return;
  // Paused only for back-pressure: a peer that will never drain must not stop this side from reading,
  // or its FIN or reset would go unseen and the flow would outlive both peers.
  if (!peer.write(chunk) && peer.writable) this.pause();
}

/** The writer drained: the side that feeds it may read again. */
function resumePeer(this: Side): void {
  const peer = this[PEER];
  if (!peer.destroyed) peer.resume();
}

function passEnd(this: Side): void {
  const state = this[STATE];
  state.firstEnd ??= this[IS_CLIENT] ? 'client_closed' : 'upstream_closed';
  const peer = this[PEER];
  if (!peer.destroyed) peer.end();
}

function onError(this: Side, e: NodeJS.ErrnoException): void {
  this[STATE].failed(this[IS_CLIENT] ? 'client_error' : 'upstream_error', 'error', e.code ?? e.message);
  this[PEER].destroy();
}

function onIdle(this: Side): void {
  this[STATE].failed('idle_timeout', 'timeout');
  this.destroy();
  this[PEER].destroy();
}

function onClose(this: Side): void {
  const state = this[STATE];
  if (++state.closed === 2) state.complete();
  // The other side gets what is queued for it, then is closed.
  const other = this[PEER];
  if (other.destroyed) return;
  other.end();
  const timer = setTimeout(destroySide, FINISH_MS, other);
  timer.unref();
  other.once('close', () => clearTimeout(timer));
}

function destroySide(side: net.Socket): void {
  side.destroy();
}
