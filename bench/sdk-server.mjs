// The SDK benchmark's loopback server, in its own process: answers every request with a 2-byte body.
// Paths under /close answer with `Connection: close`, so that every request of a client opens a new
// connection (the new-connection figures); other paths keep the connection alive.
import http from 'node:http';
import { serve } from './lib/rpc.mjs';

let requests = 0;
const body = Buffer.from('ok');
const server = http.createServer(
  { keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 0 },
  (req, res) => {
    requests++;
    const close = req.url.startsWith('/close');
    res.writeHead(200, {
      'content-type': 'text/plain',
      'content-length': 2,
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(body);
  },
);
server.keepAliveTimeout = 60_000;
server.maxRequestsPerSocket = 0;

await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
serve(
  {
    stats: () => ({ requests, cpu: process.cpuUsage() }),
    exit: () => server.close(),
  },
  { port: server.address().port },
);
