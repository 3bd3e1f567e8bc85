// The edge benchmark's load generator, in its own process (open-file limit raised by the parent). It
// reaches the upstream (edge-upstream.mjs) through a target:
//   { kind: 'direct' | 'sni', port }      TLS straight to `port` with SNI api.bench.test (direct, the
//                                         edge's SNI listener, nginx, HAProxy, sniproxy);
//   { kind: 'connect', port, upstreamPort } CONNECT api.bench.test:<upstreamPort> to the explicit proxy
//                                         on `port`, then TLS inside the tunnel.
// Every connection verifies the server certificate (the bench CA) and never resumes a session.
// argv: caPath
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { measureCps } from './lib/cps.mjs';
import { serve } from './lib/rpc.mjs';
import { latencySummary } from './lib/stats.mjs';

const NAME = 'api.bench.test';
const ca = readFileSync(process.argv[2]);
const SMALL_REQUEST = Buffer.from(`GET /small HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`);
const SMALL_RESPONSE_BYTES = Buffer.byteLength(
  'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok',
);
const STEP_TIMEOUT_MS = 15_000;

let firstError;
const noteError = (e) => {
  firstError ??= String(e?.message ?? e);
};

/** A TLS connection to the upstream through `target`, resolved once the handshake is complete. */
function open(target) {
  return new Promise((resolve, reject) => {
    let settled = false;
    let raw;
    const fail = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      raw?.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`connection not ready after ${STEP_TIMEOUT_MS} ms`)),
      STEP_TIMEOUT_MS,
    );
    const startTls = (socket) => {
      const s = tls.connect({ socket, host: '127.0.0.1', port: target.port, servername: NAME, ca });
      raw = s;
      s.on('error', fail);
      s.once('secureConnect', () => {
        if (settled) return s.destroy();
        settled = true;
        clearTimeout(timer);
        s.off('error', fail);
        s.on('error', noteError);
        resolve(s);
      });
    };
    if (target.kind !== 'connect') return startTls(undefined);
    raw = net.connect({ host: '127.0.0.1', port: target.port, noDelay: true });
    raw.on('error', fail);
    raw.once('connect', () => {
      const authority = `${NAME}:${target.upstreamPort}`;
      raw.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      raw.off('data', onData);
      raw.pause();
      const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.[01] 200/.test(status)) return fail(new Error(`CONNECT refused: ${status}`));
      if (head.length > end + 4) raw.unshift(head.subarray(end + 4));
      raw.off('error', fail);
      startTls(raw);
    };
    raw.on('data', onData);
  });
}

/** Sends `request` and resolves with the number of bytes received once the server ends the stream. */
function exchange(socket, request) {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end after ${STEP_TIMEOUT_MS} ms (${bytes} bytes)`));
    }, STEP_TIMEOUT_MS);
    socket.on('data', (d) => {
      bytes += d.length;
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(bytes);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.write(request);
  });
}

/** One new TLS connection plus one small request; resolves with its duration in ms. */
async function oneSmall(target) {
  const t0 = performance.now();
  const s = await open(target);
  const bytes = await exchange(s, SMALL_REQUEST);
  if (bytes !== SMALL_RESPONSE_BYTES) throw new Error(`short response: ${bytes} bytes`);
  return performance.now() - t0;
}

const idle = [];

serve({
  /** Sequential connections, one at a time (bounded by count and time): p50/p99 in ms. */
  async latency({ target, count, ms, warmup = 20 }) {
    for (let i = 0; i < warmup; i++) await oneSmall(target).catch(noteError);
    const samples = new Float64Array(count);
    let n = 0;
    let errors = 0;
    const end = performance.now() + ms;
    while (n < count && performance.now() < end) {
      try {
        samples[n++] = await oneSmall(target);
      } catch (e) {
        n--;
        errors++;
        noteError(e);
        if (errors > 50) break;
      }
    }
    return { ...latencySummary(samples.subarray(0, n)), errors, firstError };
  },

  /** Connections per second: `concurrency` loops of new TLS connection + small request, bounded. */
  async cps({ target, concurrency, ms, count }) {
    const r = await measureCps({ concurrency, ms, count }, () => oneSmall(target));
    if (r.firstError) noteError(r.firstError);
    return { ...r, firstError };
  },

  /** `bytes` in total downloaded over `connections` parallel connections: bytes/second (set-up included). */
  async bulk({ target, connections, bytes }) {
    const each = Math.floor(bytes / connections);
    const t0 = performance.now();
    let errors = 0;
    let received = 0;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        try {
          const s = await open(target);
          const n = await exchange(s, Buffer.from(`GET /bulk/${each} HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`));
          received += n;
        } catch (e) {
          errors++;
          noteError(e);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const expected = each * connections;
    return {
      secs,
      bytes: received,
      expected,
      bytesPerSec: expected / secs,
      complete: received >= expected && errors === 0,
      errors,
      firstError,
    };
  },

  /** Opens `count` TLS connections (handshake complete) and holds them idle. */
  async openIdle({ target, count, concurrency = 64 }) {
    let next = 0;
    let errors = 0;
    const t0 = performance.now();
    const loop = async () => {
      while (next < count) {
        next++;
        try {
          const s = await open(target);
          s.on('error', () => {});
          idle.push(s);
        } catch (e) {
          errors++;
          noteError(e);
          if (errors > 100) return;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const alive = idle.filter((s) => !s.destroyed).length;
    return { opened: idle.length, alive, errors, secs: (performance.now() - t0) / 1000, firstError };
  },

  /** How many of the idle connections are still open. */
  idleAlive: () => idle.filter((s) => !s.destroyed && !s.readableEnded).length,

  async closeIdle() {
    const n = idle.length;
    for (const s of idle.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 200));
    return n;
  },

  resetErrors() {
    const e = firstError;
    firstError = undefined;
    return e;
  },
});
