/**
 * Asks the edge's own resolver. The query is the guard's: a fresh random ID, one question rebuilt from
 * the labels it checked, RD set, and its own OPT record (no client option is passed on). Over UDP from a
 * connected socket on a random port, answers whose ID or question differ are ignored (spoofing); a
 * truncated answer is asked again over TCP. Every wait is bounded: the caller answers SERVFAIL when
 * this returns nothing.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { EDNS_UDP_PAYLOAD, FLAG, optRecord } from './wire.js';

/** Largest answer accepted from the upstream (bytes); a larger one is treated as no answer. */
export const MAX_UPSTREAM_ANSWER_BYTES = 16_384;

/** One resolver address. */
export interface UpstreamServer {
  host: string;
  port: number;
}

/** What is asked upstream. */
export interface UpstreamQuestion {
  /** Labels exactly as the client sent them (checked to be plain printable ASCII). */
  labels: readonly string[];
  qtype: number;
  qclass: number;
  /** Copied from the client: CD, and EDNS DO. */
  checkingDisabled: boolean;
  dnssecOk: boolean;
}

/** The raw answer and how it came. */
export interface UpstreamAnswer {
  message: Buffer;
  transport: 'udp' | 'tcp';
}

/** Builds the query the upstream sees. */
export function buildUpstreamQuery(id: number, q: UpstreamQuestion): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(FLAG.RD | (q.checkingDisabled ? FLAG.CD : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 10);
  parts.push(header);
  for (const label of q.labels) {
    const bytes = Buffer.from(label, 'latin1');
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  const tail = Buffer.alloc(5);
  tail[0] = 0;
  tail.writeUInt16BE(q.qtype, 1);
  tail.writeUInt16BE(q.qclass, 3);
  parts.push(tail, optRecord(EDNS_UDP_PAYLOAD, q.dnssecOk));
  return Buffer.concat(parts);
}

/**
 * Whether `answer` answers `query`: same ID, a response, and the same question (name compared without
 * case, as resolvers may change it back). Reads only the header and the first question, bounded.
 */
export function answersQuery(answer: Buffer, query: Buffer): boolean {
  if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) return false;
  if ((answer.readUInt16BE(2) & FLAG.QR) === 0 || answer.readUInt16BE(4) !== 1) return false;
  // The question section of the query runs from 12 to its OPT record (11 bytes at the end).
  const questionLength = query.length - 12 - 11;
  if (answer.length < 12 + questionLength) return false;
  const mine = query.subarray(12, 12 + questionLength);
  const theirs = answer.subarray(12, 12 + questionLength);
  // The name's letters may differ in case; its length bytes, the type and the class may not.
  const nameLength = questionLength - 4;
  for (let i = 0; i < questionLength; i++) {
    const a = mine[i]!;
    const b = theirs[i]!;
    if (a === b) continue;
    const letter = (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7a;
    if (i >= nameLength || !letter || (a | 0x20) !== (b | 0x20)) return false;
  }
  return true;
}

/**
 * Asks `servers` in turn, `question`, within `timeoutMs` in all (each server gets an equal share).
 * Resolves to the first well-formed answer, or undefined (every server timed out or failed).
 */
export async function askUpstream(
  servers: readonly UpstreamServer[],
  question: UpstreamQuestion,
  timeoutMs: number,
): Promise<UpstreamAnswer | undefined> {
  const share = Math.max(50, Math.floor(timeoutMs / Math.max(1, servers.length)));
  for (const server of servers) {
    const query = buildUpstreamQuery(randomInt(0, 0x10000), question);
    const udp = await askUdp(server, query, share);
    if (udp === undefined) continue;
    if ((udp.readUInt16BE(2) & FLAG.TC) === 0) return { message: udp, transport: 'udp' };
    const tcp = await askTcp(server, query, share);
    if (tcp !== undefined) return { message: tcp, transport: 'tcp' };
  }
  return undefined;
}

function askUdp(server: UpstreamServer, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (answer: Buffer | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('error', () => finish(undefined));
    socket.on('message', (msg) => {
      // A connected socket hears only the server; the ID and question must match too.
      if (msg.length <= MAX_UPSTREAM_ANSWER_BYTES && answersQuery(msg, query)) finish(msg);
    });
    socket.connect(server.port, server.host, () => {
      if (!done) socket.send(query, (err) => err && finish(undefined));
    });
  });
}

function askTcp(server: UpstreamServer, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let done = false;
    let buffered = Buffer.alloc(0);
    const finish = (answer: Buffer | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('connect', () => {
      const frame = Buffer.alloc(2);
      frame.writeUInt16BE(query.length);
      socket.write(Buffer.concat([frame, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (length > MAX_UPSTREAM_ANSWER_BYTES) return finish(undefined);
      if (buffered.length < 2 + length) return;
      const message = buffered.subarray(2, 2 + length);
      finish(answersQuery(message, query) ? Buffer.from(message) : undefined);
    });
  });
}

/**
 * Parses resolver addresses: `10.0.0.2`, `10.0.0.2:5353`, `[fd00::53]:53`, `fd00::53` (port 53 when
 * none). Throws on anything else.
 */
export function parseServer(text: string): UpstreamServer {
  const trimmed = text.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(trimmed);
  if (bracketed) return checked(bracketed[1]!, bracketed[2], text);
  if (net.isIPv6(trimmed)) return { host: trimmed, port: 53 };
  const hostPort = /^([^:]+)(?::(\d{1,5}))?$/.exec(trimmed);
  if (hostPort) return checked(hostPort[1]!, hostPort[2], text);
  throw new Error(`"${text}" is not a resolver address (10.0.0.2, 10.0.0.2:53, [fd00::53]:53)`);
}

function checked(host: string, port: string | undefined, text: string): UpstreamServer {
  const n = port === undefined ? 53 : Number(port);
  if (net.isIP(host) === 0 || !(n >= 1 && n <= 65535)) {
    throw new Error(`"${text}" is not a resolver address (10.0.0.2, 10.0.0.2:53, [fd00::53]:53)`);
  }
  return { host, port: n };
}

/**
 * The resolvers the guard forwards to: the configured ones (`--dns-server`), else the system's
 * (`/etc/resolv.conf`, as Node read it at start).
 */
export function upstreamServers(configured: readonly string[] | undefined): UpstreamServer[] {
  const texts = configured && configured.length > 0 ? configured : dns.getServers();
  return texts.map(parseServer);
}
