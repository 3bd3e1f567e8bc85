import { DEFAULT_PORTS, type Destination, SCHEMES, type Scheme } from '@egress-guard/policy';
import { UsageError } from './io.js';

/**
 * Turns what a person typed into a Destination: a URL (`https://api.example.com/v1/x`) or `host:port`
 * (`api.example.com:443`, `[2001:db8::1]:443`) with the scheme given separately.
 */
export function parseTarget(text: string, scheme: Scheme | undefined): Destination {
  if (text.includes('://')) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UsageError(`"${text}" is not a valid URL`);
    }
    const s = url.protocol.slice(0, -1);
    if (!(SCHEMES as readonly string[]).includes(s))
      throw new UsageError(`unsupported scheme "${s}" (one of ${SCHEMES.join(', ')})`);
    const port = url.port ? Number(url.port) : DEFAULT_PORTS[s as Scheme];
    if (port === undefined) throw new UsageError(`"${text}" has no port and ${s} has no default port`);
    return { scheme: s as Scheme, host: url.hostname, port, path: url.pathname };
  }
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is neither a URL nor host:port`);
  return { scheme: scheme ?? 'https', host: m[1]!, port: Number(m[2]) };
}
