import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import tls from 'node:tls';

/** One client's first bytes, as a loopback server received them. */
export interface Capture {
  name: string;
  bytes: Buffer;
  /** TCP reads it took to receive them: more than one means the hello spanned segments. */
  reads: number;
}

/**
 * Listens on 127.0.0.1, lets `client` connect to the port, and records what the first connection sends.
 * The hello is judged complete from the TLS record length alone (not the parser under test), with a time
 * limit as a fallback; then the socket is destroyed and the server closed.
 */
export async function captureFirstBytes(
  name: string,
  client: (port: number) => Promise<unknown>,
): Promise<Capture> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const captured = new Promise<Capture>((resolve) => {
    server.once('connection', (socket) => {
      const chunks: Buffer[] = [];
      let reads = 0;
      const finish = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ name, bytes: Buffer.concat(chunks), reads });
      };
      const timer = setTimeout(finish, 1500);
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        reads += 1;
        if (firstRecordComplete(Buffer.concat(chunks))) finish();
      });
      socket.on('end', finish);
    });
  });
  const clientDone = client(port).catch(() => undefined);
  const nothing: Capture = { name, bytes: Buffer.alloc(0), reads: 0 };
  // A client that refuses its options (openssl without PQ groups) exits without connecting.
  const capture = await Promise.race([
    captured,
    clientDone.then(() => delay(500)).then(() => nothing),
    delay(5000).then(() => nothing),
  ]);
  server.close();
  await clientDone;
  return capture;
}

function firstRecordComplete(buf: Buffer): boolean {
  return buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3);
}

/** Runs a command with stdin from /dev/null; resolves with its exit code and output, never rejects. */
export function run(
  cmd: string,
  args: string[],
  timeoutMs = 5000,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', (e) => resolve({ code: -1, output: String(e) }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Connects with Node's TLS client and resolves when the connection ends either way. */
export function nodeTlsClient(port: number, options: tls.ConnectionOptions): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

const openssl = (port: number, extra: string[]) =>
  run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...extra]);

/** The real clients the tests capture, by name. */
export const REAL_CLIENTS: Record<string, (port: number) => Promise<unknown>> = {
  curl: (port) =>
    run('curl', [
      '-sk',
      '--noproxy',
      '*',
      '--max-time',
      '2',
      `https://some.name.test:${port}/`,
      '--resolve',
      `some.name.test:${port}:127.0.0.1`,
    ]),
  'openssl-default': (port) => openssl(port, ['-servername', 'x.example.test', '-alpn', 'h2,http/1.1']),
  'openssl-tls1_2': (port) =>
    openssl(port, ['-servername', 'x.example.test', '-alpn', 'h2,http/1.1', '-tls1_2']),
  'openssl-no_tls1_3': (port) =>
    openssl(port, ['-servername', 'x.example.test', '-alpn', 'h2,http/1.1', '-no_tls1_3']),
  'openssl-tls1_1': (port) =>
    openssl(port, ['-servername', 'old.example.test', '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']),
  'openssl-noservername': (port) => openssl(port, ['-noservername', '-alpn', 'http/1.1']),
  'openssl-pq': (port) =>
    openssl(port, ['-servername', 'pq.example.test', '-alpn', 'h2', '-groups', 'X25519MLKEM768']),
  node: (port) => nodeTlsClient(port, { servername: 'node.example.test', ALPNProtocols: ['h2', 'http/1.1'] }),
};

/** Captures every real client once, in parallel. Clients that sent nothing are left out. */
export async function captureRealHellos(): Promise<Map<string, Capture>> {
  const captures = await Promise.all(
    Object.entries(REAL_CLIENTS).map(([name, c]) => captureFirstBytes(name, c)),
  );
  return new Map(captures.filter((c) => c.bytes.length > 0).map((c) => [c.name, c]));
}
