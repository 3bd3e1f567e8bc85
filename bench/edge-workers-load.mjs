// The workers benchmark's load generator and upstream, in one process of their own: a plain TCP upstream
// on 127.0.0.1 that answers one byte and closes, and `concurrency` loops that each open a connection to
// the edge's explicit proxy, send `CONNECT 127.0.0.1:<upstream>`, read the 200, send a byte, read the
// answer and close. No TLS: the cheapest work per connection on this side, so that the edge, not the
// load, is what limits connections per second.
import net from 'node:net';
import { measureCps } from './lib/cps.mjs';
import { serve } from './lib/rpc.mjs';

const upstream = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => {});
  s.once('data', () => s.end('y'));
});
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamPort = upstream.address().port;
const STEP_TIMEOUT_MS = 15_000;

/** One connection through the edge: resolves when the upstream's answer came back and the socket closed. */
function one(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let stage = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('connection timed out'));
    }, STEP_TIMEOUT_MS);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('connect', () =>
      s.write(`CONNECT 127.0.0.1:${upstreamPort} HTTP/1.1\r\nhost: 127.0.0.1:${upstreamPort}\r\n\r\n`),
    );
    let head = '';
    s.on('data', (d) => {
      if (stage === 0) {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (!head.startsWith('HTTP/1.1 200')) {
          s.destroy();
          clearTimeout(timer);
          reject(new Error(`refused: ${head.split('\r\n')[0]}`));
          return;
        }
        stage = 1;
        s.write('x');
      } else if (stage === 1) {
        stage = 2;
        s.end();
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (stage === 2) resolve();
      else reject(new Error('closed early'));
    });
  });
}

serve(
  {
    /** Connections per second over `ms` with `concurrency` loops (bounded by `count`). */
    cps: ({ port, concurrency, ms, count }) => measureCps({ concurrency, ms, count }, () => one(port)),
  },
  { upstreamPort },
);
