import { PassThrough } from 'node:stream';
import { getExtensionData, readTlsClientHello } from 'read-tls-client-hello';

/** What read-tls-client-hello makes of some bytes, or why it gave up. */
export type ReferenceResult =
  | { ok: true; serverName: string | undefined; alpn: string[] }
  | { ok: false; error: string };

/**
 * Feeds bytes to read-tls-client-hello through a stream, as a socket would deliver them. It can wait
 * forever on a stream that ended early, so a time limit turns that into a failure.
 */
export async function referenceParse(bytes: Buffer, timeoutMs = 500): Promise<ReferenceResult> {
  const stream = new PassThrough();
  stream.end(bytes);
  let timer: NodeJS.Timeout | undefined;
  try {
    const hello = await Promise.race([
      readTlsClientHello(stream),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      }),
    ]);
    const sni = getExtensionData(hello, 'sni');
    const alpn = getExtensionData(hello, 'alpn');
    return { ok: true, serverName: sni?.serverName, alpn: alpn?.protocols ?? [] };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}
