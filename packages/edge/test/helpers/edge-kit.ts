/**
 * Helpers for the edge's loopback tests: a name→127.0.0.1 resolver, an event capture through a pino
 * destination, a started edge that is closed after the test, and raw clients for CONNECT tunnels.
 * Every wait is bounded; every address is loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import {
  createEventEmitter,
  createPolicy,
  type EventEmitter,
  egressEventSchema,
  type Policy,
  parsePolicy,
} from '@egress-guard/policy';
import type { DestinationStream } from 'pino';
import {
  type DnsAnswer,
  type EdgeOptions,
  type EdgeResolver,
  type EdgeServer,
  startEdge,
} from '../../src/index.js';

/** A resolver answering from a table (names → addresses), counting queries per name. */
export interface StaticResolver extends EdgeResolver {
  queries: string[];
  set(name: string, addresses: string[]): void;
}

export function staticResolver(table: Record<string, string[]>, ttl = 0): StaticResolver {
  const map = new Map(Object.entries(table));
  const queries: string[] = [];
  const answer =
    (family: 4 | 6) =>
    async (name: string): Promise<DnsAnswer[]> => {
      queries.push(name);
      const list = map.get(name.toLowerCase().replace(/\.$/, '')) ?? [];
      return list.filter((a) => net.isIP(a) === family).map((address) => ({ address, ttl }));
    };
  return {
    queries,
    resolve4: answer(4),
    resolve6: answer(6),
    set: (name, addresses) => map.set(name, addresses),
  };
}

/** One audit event as written (JSON). */
export type EventLine = Record<string, unknown> & { 'event.name': string };

/** Audit events captured through a pino destination stream. */
export interface Capture {
  emitter: EventEmitter;
  lines: EventLine[];
  /** Events that did not validate against the audit event schema (egressEventSchema), with the problem. */
  invalid: string[];
  decisions(): EventLine[];
  completions(): EventLine[];
  /** Events of one flow id. */
  flow(id: string): EventLine[];
  /**
   * Waits (bounded) for a flow whose decision matches `match` (field values) to complete; returns its
   * decision and completion events.
   */
  completed(
    match: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<{ decision: EventLine; completion: EventLine }>;
  /** Waits (bounded) until `predicate` holds over the lines; returns them. */
  waitFor(predicate: (lines: EventLine[]) => boolean, timeoutMs?: number): Promise<EventLine[]>;
}

export function captureEvents(): Capture {
  const lines: EventLine[] = [];
  const invalid: string[] = [];
  const destination: DestinationStream = {
    write(chunk: string) {
      for (const text of chunk.split('\n')) {
        if (!text.trim()) continue;
        const line = JSON.parse(text) as EventLine;
        lines.push(line);
        // pino's own fields are not part of the event.
        const { level: _level, time: _time, msg: _msg, ...event } = line;
        const checked = egressEventSchema.safeParse(event);
        if (!checked.success) invalid.push(`${line['event.name']}: ${checked.error.message}`);
      }
    },
  };
  const emitter = createEventEmitter({ destination });
  const of = (name: string) => () => lines.filter((l) => l['event.name'] === name);
  return {
    emitter,
    lines,
    invalid,
    decisions: of('egress.decision'),
    completions: of('egress.completion'),
    flow: (id) => lines.filter((l) => l['egress.id'] === id),
    waitFor: (predicate, timeoutMs = 5000) =>
      waitFor(() => (predicate(lines) ? lines : undefined), timeoutMs),
    completed: (match, timeoutMs = 5000) =>
      waitFor(
        () => {
          for (const decision of lines) {
            if (decision['event.name'] !== 'egress.decision') continue;
            if (!Object.entries(match).every(([k, v]) => decision[k] === v)) continue;
            const completion = lines.find(
              (l) => l['event.name'] === 'egress.completion' && l['egress.id'] === decision['egress.id'],
            );
            if (completion) return { decision, completion };
          }
          return undefined;
        },
        timeoutMs,
        `a completed flow matching ${JSON.stringify(match)}`,
      ),
  };
}

/** Polls `probe` every 10ms until it returns a value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | undefined | false,
  timeoutMs = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A policy from YAML text. */
export function policyOf(yaml: string): Policy {
  return parsePolicy(yaml);
}

export { createPolicy };

/** Ports the loopback test servers use (ephemeral). */
export const TEST_PORTS = '"1024-65535"';

/** A started edge plus its captured events; `close()` ends it. */
export interface TestEdge {
  edge: EdgeServer;
  capture: Capture;
  resolver: StaticResolver;
  /** Port of the listener of that kind (the first one). */
  port(kind: 'explicit' | 'sni' | 'transparent'): number;
  close(): Promise<void>;
}

/** Starts an edge with captured events, a static resolver, no default metrics and no file watch. */
export async function startTestEdge(
  options: Partial<EdgeOptions> & Pick<EdgeOptions, 'policy' | 'listeners'>,
  names: Record<string, string[]> = {},
): Promise<TestEdge> {
  const capture = captureEvents();
  const resolver = staticResolver(names);
  const edge = await startEdge({
    events: capture.emitter,
    defaultMetrics: false,
    watch: false,
    ...(options.lookup || options.dns?.servers ? {} : { resolver }),
    ...options,
  });
  return {
    edge,
    capture,
    resolver,
    port(kind) {
      const l = edge.listeners.find((x) => x.kind === kind);
      if (!l) throw new Error(`no ${kind} listener`);
      return l.port;
    },
    close: () => edge.close(),
  };
}

/** Result of a CONNECT through the explicit proxy. */
export interface Tunnel {
  /** The proxy's status code. */
  status: number;
  /** The whole response head as received. */
  head: string;
  socket: net.Socket;
  /** Bytes written by the client before the tunnel (the CONNECT request). */
  requestBytes: number;
  /** Bytes of the response head. */
  responseBytes: number;
}

/** Sends `CONNECT authority` and reads the response head (bounded). */
export function connectTunnel(proxyPort: number, authority: string, timeoutMs = 5000): Promise<Tunnel> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    const request = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('CONNECT timed out'));
    }, timeoutMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const head = buf.subarray(0, end + 4).toString('latin1');
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve({
        status: Number(head.split(' ')[1]),
        head,
        socket,
        requestBytes: Buffer.byteLength(request),
        responseBytes: end + 4,
      });
    };
    socket.on('data', onData);
    socket.on('end', () => {
      clearTimeout(timer);
      if (buf.indexOf('\r\n\r\n') < 0) reject(new Error(`proxy closed: ${buf.toString('latin1')}`));
    });
    socket.write(request);
  });
}

/** Opens TLS over a socket (a tunnel or a direct connection), resolving once the handshake is done. */
export function tlsOver(
  socket: net.Socket,
  options: tls.ConnectionOptions,
  timeoutMs = 5000,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket, ...options });
    const timer = setTimeout(() => {
      t.destroy();
      reject(new Error('TLS handshake timed out'));
    }, timeoutMs);
    t.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(t);
    });
    t.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Writes `data` and reads until `expected` bytes arrived (bounded); resolves with what was read. */
export function echo(socket: net.Socket | tls.TLSSocket, data: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(
      () => reject(new Error(`echo timed out with ${got.length}/${data.length} bytes`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= data.length) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.resume();
    socket.write(data);
  });
}

/** Waits (bounded) for a socket to close; resolves with everything it received meanwhile. */
export function untilClosed(socket: net.Socket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    if (socket.destroyed) return resolve(Buffer.alloc(0));
    const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

/** A temporary directory removed by `cleanup()`. */
export async function tempDir(): Promise<{
  dir: string;
  write(name: string, text: string): Promise<string>;
  cleanup(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'egress-edge-'));
  return {
    dir,
    async write(name, text) {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
