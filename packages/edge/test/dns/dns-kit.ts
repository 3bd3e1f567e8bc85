/**
 * Helpers for the DNS guard's tests: `dig` run against a listener (bounded), a raw upstream on loopback
 * that records every message it receives byte for byte and answers from a function, and raw UDP/TCP
 * exchanges for hand-made packets.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

/** What dig printed, read into the parts the tests check. */
export interface DigResult {
  status: string;
  flags: string[];
  answers: Array<{ name: string; ttl: number; type: string; data: string }>;
  output: string;
}

/** Runs `dig @127.0.0.1 -p port args...` with one try and a short timeout. */
export function dig(port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'dig',
      ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=3', '+noall', '+comments', '+answer', ...args],
      { timeout: 15_000 },
      (err, stdout) => {
        if (err && !stdout) return reject(err);
        const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
        const flags = (/flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
        const answers: DigResult['answers'] = [];
        let inAnswer = false;
        for (const line of stdout.split('\n')) {
          if (line.startsWith(';; ANSWER SECTION')) {
            inAnswer = true;
            continue;
          }
          if (line.startsWith(';;')) {
            inAnswer = false;
            continue;
          }
          if (!inAnswer || line.trim() === '') continue;
          const [name, ttl, , type, ...data] = line.split(/\s+/);
          answers.push({ name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') });
        }
        resolve({ status, flags, answers, output: stdout });
      },
    );
  });
}

/** A raw loopback upstream (UDP and TCP on one port) answering from `respond`. */
export interface RawUpstream {
  port: number;
  /** Every message received, decoded (undecodable ones as `undefined`), with its raw bytes. */
  received: Array<{ raw: Buffer; packet: dnsPacket.DecodedPacket | undefined; transport: 'udp' | 'tcp' }>;
  close(): Promise<void>;
}

/** `respond` returns the reply bytes, or undefined to stay silent (a timeout). */
export async function startRawUpstream(
  respond: (query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp') => Buffer | undefined,
): Promise<RawUpstream> {
  const received: RawUpstream['received'] = [];
  const decode = (raw: Buffer) => {
    try {
      return dnsPacket.decode(raw);
    } catch {
      return undefined;
    }
  };
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (raw, rinfo) => {
      const packet = decode(raw);
      received.push({ raw, packet, transport: 'udp' });
      const reply = packet ? respond(packet, 'udp') : undefined;
      if (reply) udp.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => sockets.delete(s));
      let buf = Buffer.alloc(0);
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const raw = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + raw.length);
          const packet = decode(raw);
          received.push({ raw: Buffer.from(raw), packet, transport: 'tcp' });
          const reply = packet ? respond(packet, 'tcp') : undefined;
          if (!reply) continue;
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(reply.length);
          s.write(Buffer.concat([frame, reply]));
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => resolve());
      });
    } catch (error) {
      udp.close();
      if (attempt > 8) throw error;
      continue;
    }
    return {
      port,
      received,
      close: async () => {
        for (const s of sockets) s.destroy();
        await Promise.all([
          new Promise<void>((r) => udp.close(() => r())),
          new Promise<void>((r) => tcp.close(() => r())),
        ]);
      },
    };
  }
}

/** A response to `query` with `answers` (and the flags of a recursive resolver). */
export function reply(query: dnsPacket.DecodedPacket, answers: dnsPacket.Answer[], rcode = 0): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: query.questions ?? [],
    answers,
  });
}

/** Sends one UDP datagram to the listener; resolves with the reply, or undefined after `timeoutMs`. */
export function udpExchange(port: number, message: Buffer, timeoutMs = 1500): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

/** A query for `name`/`type` built with dns-packet (EDNS when `edns`). */
export function query(name: string, type: string, id = 4242, edns = false): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as dnsPacket.RecordType, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as dnsPacket.Answer] : [],
  });
}

/** The response code of a response. */
export const rcodeOf = (message: Buffer) => message.readUInt16BE(2) & 0xf;

/**
 * Makes `nameserver` the only resolver of network namespace `ns` (`ip netns exec` mounts
 * /etc/netns/<ns>/resolv.conf over /etc/resolv.conf); returns the clean-up.
 */
export function useResolverIn(ns: string, nameserver: string): () => void {
  const dir = `/etc/netns/${ns}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/resolv.conf`, `nameserver ${nameserver}\noptions attempts:1 timeout:2\n`);
  return () => rmSync(dir, { recursive: true, force: true });
}
