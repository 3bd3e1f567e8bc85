/**
 * How the edge answers a refused or failed flow: an HTTP error response for proxy and plaintext clients,
 * a TLS alert (see tls-wire.ts) for TLS clients, and a gentle close that lets the answer reach the client.
 */
import type net from 'node:net';
import type { Decision } from '@egress-guard/policy';
import type { Connection } from './connection.js';
import type { FlowRecord } from './flow-record.js';

/** How long a refused client may take to read the answer before its socket is destroyed. */
const GENTLE_CLOSE_MS = 1000;

/**
 * Ends a refused connection gently: the reply (an HTTP error or a TLS alert) is flushed and the socket
 * destroyed once the peer closes or after a second, unread input discarded.
 */
export function closeGently(socket: net.Socket, reply?: Buffer | string): void {
  if (socket.destroyed) return;
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), GENTLE_CLOSE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  if (!socket.writable) socket.destroy();
  else if (reply === undefined) socket.end();
  else socket.end(reply);
}

/** Writes the decision (a refusal), closes the client with `reply`, writes the completion. */
export function refuse(
  conn: Connection,
  flow: FlowRecord,
  decision: Decision,
  reply?: Buffer | string,
): void {
  flow.decide(decision);
  closeGently(conn.client, reply);
  flow.complete('denied', decision.reason);
}

/** A short HTTP/1.1 error response for the explicit proxy, naming the reason. */
export function httpError(status: number, reason: string, message: string): string {
  const text = STATUS_TEXT[status] ?? 'Error';
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\nx-egress-reason: ${reason}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
