// The demo's "internet": HTTPS servers on 127.0.0.1 that count the connections they accept, so the demo
// can show that a denied call never reached its server.
import https from 'node:https';

export async function startServer(
  pki,
  names,
  handler = (req, res) => res.end(JSON.stringify({ ok: true, path: req.url })),
) {
  const { cert, key } = await pki.issue(names);
  const server = https.createServer({ cert, key }, handler);
  const state = { connections: 0, port: 0, close: () => new Promise((r) => server.close(() => r())) };
  server.on('connection', () => state.connections++);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  state.port = server.address().port;
  server.keepAliveTimeout = 100;
  return state;
}

/** Resolves every *.demo.test name to 127.0.0.1; anything else is not found (the demo never leaves loopback). */
export function demoLookup(hostname, options, callback) {
  const cb = typeof options === 'function' ? options : callback;
  const opts = typeof options === 'object' && options ? options : {};
  if (!/(^|\.)demo\.test$/i.test(hostname)) {
    const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
      code: 'ENOTFOUND',
      hostname,
    });
    return process.nextTick(() => cb(error));
  }
  if (opts.all) return process.nextTick(() => cb(null, [{ address: '127.0.0.1', family: 4 }]));
  process.nextTick(() => cb(null, '127.0.0.1', 4));
}
