/**
 * What a tunnel hands to the plaintext HTTP forwarder when its first bytes are an HTTP request, and the
 * one method it calls. Kept apart from http-forwarder.ts so that tunnels and the runtime can name the
 * forwarder without importing it (imports run one way: forwarder → runtime, never back).
 */
import type { Connection } from './connection.js';

/** What the listener knows about where a plaintext HTTP connection goes. */
export type HttpContext =
  /** Explicit proxy: each request names its target in absolute form (`GET http://host:port/path`). */
  | { kind: 'explicit' }
  /** Inside a CONNECT tunnel: the Host header must name the CONNECT host. */
  | { kind: 'connect'; host: string; port: number }
  /** Transparent: the Host header must resolve to the original destination. */
  | { kind: 'original'; address: string; port: number }
  /** SNI-routed listener: routed by the Host header to `port`. */
  | { kind: 'sni'; port: number };

/** The plaintext HTTP forwarder as flows see it. */
export interface PlainHttpServer {
  /** Takes over a client connection whose first bytes (`buffered`, already read) are an HTTP request head. */
  serve(conn: Connection, buffered: Buffer, ctx: HttpContext): void;
}
