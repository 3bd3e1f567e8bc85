// The edge benchmark's upstream: a TLS server on 127.0.0.1 (the "internet" every candidate reaches) that
// speaks just enough HTTP/1.1: `GET /small` is answered with a 2-byte body, `GET /bulk/<n>` with n bytes,
// and the connection is then ended by the server. A connection that sends nothing is held open (the
// idle-connection memory figure). argv: certPath keyPath.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { serve } from './lib/rpc.mjs';

const [certPath, keyPath] = process.argv.slice(2);
const CHUNK = Buffer.alloc(256 * 1024, 0x61);
const SMALL = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
let open = 0;
let accepted = 0;
let smalls = 0;
let bulkBytes = 0;

function sendBulk(socket, n) {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${n}\r\nconnection: close\r\n\r\n`);
  let left = n;
  const pump = () => {
    while (left > 0) {
      const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= chunk.length;
      bulkBytes += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

const server = tls.createServer(
  { cert: readFileSync(certPath), key: readFileSync(keyPath), handshakeTimeout: 600_000 },
  (socket) => {
    open++;
    accepted++;
    socket.setNoDelay(true);
    let head = '';
    socket.on('data', function onData(d) {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 8192) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.resume();
      const path = head.slice(0, head.indexOf('\r\n')).split(' ')[1] ?? '';
      if (path.startsWith('/bulk/')) sendBulk(socket, Number(path.slice(6)));
      else {
        smalls++;
        socket.end(SMALL);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => open--);
  },
);
server.on('tlsClientError', () => {});
server.maxConnections = 100_000;
await new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
serve(
  {
    stats: () => ({ open, accepted, smalls, bulkBytes }),
    exit: () => server.close(),
  },
  { port: server.address().port },
);
