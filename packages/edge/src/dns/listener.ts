/**
 * The DNS guard's sockets: UDP and TCP on one address and port (clients retry a truncated UDP answer
 * over TCP on the same port). TCP follows RFC 7766: two-byte length frames, several questions per
 * connection answered as they complete, an idle timeout, and bounds on connections and on questions in
 * flight per connection. Nothing a client sends can throw out of here.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { DnsGuard } from './dns-guard.js';
import type { DnsMetrics } from './dns-metrics.js';
import { MAX_QUERY_BYTES } from './query.js';

/** Limits of one listener. */
export interface DnsListenerLimits {
  /** TCP connections open at once. Default `256`. */
  maxTcpConnections: number;
  /** Questions in flight on one TCP connection; reading pauses beyond it. Default `16`. */
  maxInFlightPerConnection: number;
  /** A TCP connection with no question for this long is closed. Default `10_000` ms. */
  tcpIdleMs: number;
}

export const DNS_LISTENER_DEFAULTS: DnsListenerLimits = {
  maxTcpConnections: 256,
  maxInFlightPerConnection: 16,
  tcpIdleMs: 10_000,
};

/** A bound DNS listener. */
export class DnsListener {
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** The bound port (UDP and TCP). */
  port = 0;

  constructor(
    private readonly guard: DnsGuard,
    private readonly metrics: DnsMetrics,
    readonly host: string,
    private readonly requestedPort: number,
    private readonly limits: DnsListenerLimits = DNS_LISTENER_DEFAULTS,
  ) {}

  /**
   * Binds UDP, then TCP on the same port. With port 0 the system picks the UDP port and TCP may find it
   * taken: a few attempts are made before giving up.
   */
  async listen(): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < (this.requestedPort === 0 ? 10 : 1); attempt++) {
      const udp = await this.bindUdp();
      const port = udp.address().port;
      try {
        this.tcp = await this.bindTcp(port);
        this.udp = udp;
        this.port = port;
        return;
      } catch (error) {
        lastError = error;
        await new Promise<void>((resolve) => udp.close(() => resolve()));
      }
    }
    throw lastError;
  }

  /** Stops both sockets and ends open TCP connections. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      new Promise<void>((resolve) => (this.udp ? this.udp.close(() => resolve()) : resolve())),
      new Promise<void>((resolve) => (this.tcp?.listening ? this.tcp.close(() => resolve()) : resolve())),
    ]);
    this.udp = undefined;
    this.tcp = undefined;
  }

  private bindUdp(): Promise<dgram.Socket> {
    // An IPv6 address listens on IPv6 only (as nginx's `ipv6only=on`), so that `[::]:53` and
    // `0.0.0.0:53` can both be given: a dual-stack `::` would take the IPv4 port too (EADDRINUSE).
    const ipv6 = net.isIPv6(this.host);
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: ipv6 });
    socket.on('message', (msg, rinfo) => {
      this.guard.answer(msg, rinfo.address, 'udp').then(
        (reply) => {
          if (reply) socket.send(reply, rinfo.port, rinfo.address, () => {});
        },
        () => {},
      );
    });
    return new Promise((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new Error(
            `cannot listen on ${this.host}:${this.requestedPort} (dns, udp): ${err.code ?? err.message}`,
          ),
        );
      });
      socket.bind(this.requestedPort, this.host, () => {
        socket.removeAllListeners('error');
        // Send errors (an unreachable client) must not take the process down.
        socket.on('error', () => {});
        resolve(socket);
      });
    });
  }

  private bindTcp(port: number): Promise<net.Server> {
    const server = net.createServer((socket) => this.serveTcp(socket));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on ${this.host}:${port} (dns, tcp): ${err.code ?? err.message}`));
      });
      server.listen({ port, host: this.host, ipv6Only: net.isIPv6(this.host) }, () => {
        server.removeAllListeners('error');
        server.on('error', () => {});
        resolve(server);
      });
    });
  }

  private serveTcp(socket: net.Socket): void {
    socket.on('error', () => {});
    if (this.sockets.size >= this.limits.maxTcpConnections) {
      this.metrics.dropped.inc({ why: 'busy', transport: 'tcp' });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.setTimeout(this.limits.tcpIdleMs, () => socket.destroy());
    const source = socket.remoteAddress ?? 'unknown';
    let buffered: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        // No query is this large: a client sending one is not speaking DNS.
        if (length > MAX_QUERY_BYTES || length < 12) {
          this.metrics.malformed.inc({ answer: 'none', transport: 'tcp' });
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + length) break;
        const message = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        inFlight++;
        if (inFlight >= this.limits.maxInFlightPerConnection) socket.pause();
        this.guard.answer(message, source, 'tcp').then(
          (reply) => {
            inFlight--;
            if (socket.isPaused() && inFlight < this.limits.maxInFlightPerConnection) socket.resume();
            if (!reply || socket.destroyed) return;
            const frame = Buffer.alloc(2);
            frame.writeUInt16BE(reply.length);
            socket.write(Buffer.concat([frame, reply]));
          },
          () => socket.destroy(),
        );
      }
    });
  }
}
