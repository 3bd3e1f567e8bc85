import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { run } from './capture.js';

/** A throwaway self-signed P-256 certificate, made with the openssl CLI in a temporary directory. */
export async function selfSignedCert(): Promise<{ key: Buffer; cert: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'sniff-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    const { code, output } = await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=x',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
    ]);
    if (code !== 0) throw new Error(`openssl req failed: ${output}`);
    return { key: await readFile(keyPath), cert: await readFile(certPath) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Starts a Node TLS server on 127.0.0.1 and returns its port and a closer. */
export async function startTlsServer(options: tls.TlsOptions): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer(options, (socket) => socket.end());
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/**
 * Sends raw bytes (a captured ClientHello) to a server over a plain socket and returns what comes back
 * until the server closes or goes quiet, so the answer is judged without the parser under test.
 */
export function exchange(port: number, hello: Buffer, quietMs = 300): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(hello));
    let timer = setTimeout(done, 3000);
    function done() {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    }
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
