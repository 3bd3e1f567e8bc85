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

/** Sockets per server, and questions each one asks before it is replaced by one on a new random port. */
const SOCKETS_PER_SERVER = 8;
const QUESTIONS_PER_SOCKET = 2000;

/** One connected UDP socket and the questions waiting on it, by ID. */
interface PooledSocket {
  socket: dgram.Socket;
  pending: Map<number, { query: Buffer; done(answer: Buffer | undefined): void }>;
  asked: number;
  /** Resolves once connected (a send before that has no destination). */
  connected: Promise<void>;
}

/**
 * Asks the edge's resolvers. UDP goes through a small pool of connected sockets per server (a socket per
 * question costs more than the question), each on its own random port and replaced after
 * {@link QUESTIONS_PER_SOCKET} questions, so that an off-path spoofer must still guess a port among
 * several and a random 16-bit ID, and match the question (with the client's 0x20 case). TCP, for
 * truncated answers, opens a connection per question.
 */
export class UpstreamClient {
  private readonly pools = new Map<string, PooledSocket[]>();
  private next = 0;
  private closed = false;

  constructor(
    private readonly servers: readonly UpstreamServer[],
    private readonly timeoutMs: number,
  ) {}

  /**
   * Asks the servers in turn, within the time limit in all (each server gets an equal share). Resolves to
   * the first well-formed answer, or undefined (every server timed out or failed).
   */
  async ask(question: UpstreamQuestion): Promise<UpstreamAnswer | undefined> {
    const share = Math.max(50, Math.floor(this.timeoutMs / Math.max(1, this.servers.length)));
    for (const server of this.servers) {
      const udp = await this.askUdp(server, question, share);
      if (udp === undefined) continue;
      if ((udp.answer.readUInt16BE(2) & FLAG.TC) === 0) return { message: udp.answer, transport: 'udp' };
      const tcp = await askTcp(server, udp.query, share);
      if (tcp !== undefined) return { message: tcp, transport: 'tcp' };
    }
    return undefined;
  }

  /** Closes every pooled socket; questions in flight get no answer. */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) for (const p of pool) this.retire(p);
    this.pools.clear();
  }

  private askUdp(
    server: UpstreamServer,
    question: UpstreamQuestion,
    timeoutMs: number,
  ): Promise<{ query: Buffer; answer: Buffer } | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const pooled = this.socketFor(server);
    let id = randomInt(0, 0x10000);
    while (pooled.pending.has(id)) id = randomInt(0, 0x10000);
    const query = buildUpstreamQuery(id, question);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (answer: Buffer | undefined) => {
        clearTimeout(timer);
        if (pooled.pending.get(id)?.done === done) pooled.pending.delete(id);
        if (pooled.asked >= QUESTIONS_PER_SOCKET && pooled.pending.size === 0) closeQuietly(pooled.socket);
        resolve(answer ? { query, answer } : undefined);
      };
      pooled.pending.set(id, { query, done });
      pooled.connected.then(
        () => pooled.socket.send(query, (err) => err && done(undefined)),
        () => done(undefined),
      );
    });
  }

  private socketFor(server: UpstreamServer): PooledSocket {
    const key = `${server.host}|${server.port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = [];
      this.pools.set(key, pool);
    }
    const slot = this.next++ % SOCKETS_PER_SERVER;
    let pooled = pool[slot];
    if (!pooled || pooled.asked >= QUESTIONS_PER_SOCKET) {
      if (pooled) this.retireWhenIdle(pooled);
      pooled = this.open(server);
      pool[slot] = pooled;
    }
    pooled.asked++;
    return pooled;
  }

  private open(server: UpstreamServer): PooledSocket {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let connected!: () => void;
    let failed!: (error: Error) => void;
    const pooled: PooledSocket = {
      socket,
      pending: new Map(),
      asked: 0,
      connected: new Promise<void>((resolve, reject) => {
        connected = resolve;
        failed = reject;
      }),
    };
    pooled.connected.catch(() => {});
    socket.on('error', (error) => {
      failed(error);
      this.retire(pooled);
    });
    socket.on('message', (msg) => {
      if (msg.length < 12 || msg.length > MAX_UPSTREAM_ANSWER_BYTES) return;
      const waiting = pooled.pending.get(msg.readUInt16BE(0));
      // A connected socket hears only the server; the ID and the question must match too.
      if (waiting && answersQuery(msg, waiting.query)) waiting.done(msg);
    });
    socket.connect(server.port, server.host, () => connected());
    // A pooled socket must not keep the process alive on its own.
    socket.unref();
    return pooled;
  }

  /** A replaced socket closes once its last question is answered or timed out (see askUdp). */
  private retireWhenIdle(pooled: PooledSocket): void {
    if (pooled.pending.size === 0) this.retire(pooled);
  }

  private retire(pooled: PooledSocket): void {
    for (const waiting of [...pooled.pending.values()]) waiting.done(undefined);
    closeQuietly(pooled.socket);
  }
}

function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
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
