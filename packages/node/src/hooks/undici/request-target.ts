import type { Scheme } from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';

/** What a dispatch asks for, read from undici's dispatch options. */
export interface RequestTarget {
  origin: ParsedOrigin;
  scheme: Scheme;
  port: number;
  method: string;
  /** The request target as sent (path and query, or an absolute URL or authority through a proxy). */
  rawPath: string;
  /** The path without its query. */
  path: string;
  /**
   * Through a forward proxy: a CONNECT names its target as `host:port`, a forwarded plain-http request
   * (absolute-form) as a URL. Either way this hop goes to the proxy; `tunnel` is the target's authority.
   */
  tunnel: string | undefined;
}

/** The parts of an origin a decision needs. */
export type ParsedOrigin = Pick<URL, 'protocol' | 'hostname' | 'port' | 'origin'>;

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Reads a dispatch's options, or undefined when its origin is not a URL. */
export function readRequestTarget(opts: {
  origin?: unknown;
  path?: string;
  method?: string;
  upgrade?: unknown;
}): RequestTarget | undefined {
  const origin = parsedOrigin(String(opts.origin));
  if (!origin) return undefined;
  const secure = origin.protocol === 'https:' || origin.protocol === 'wss:';
  const websocket = String(opts.upgrade ?? '').toLowerCase() === 'websocket';
  const scheme: Scheme = websocket ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
  const rawPath = opts.path ?? '/';
  const q = rawPath.indexOf('?');
  const method = opts.method ?? 'GET';
  const absolute = ABSOLUTE_FORM.test(rawPath) ? authorityOf(rawPath) : undefined;
  const tunnel = method.toUpperCase() === 'CONNECT' ? rawPath : absolute;
  return {
    origin,
    scheme,
    port: origin.port ? Number(origin.port) : secure ? 443 : 80,
    method,
    rawPath,
    path: q === -1 ? rawPath : rawPath.slice(0, q),
    tunnel,
  };
}

// A process talks to few origins: each is parsed once, not on every request. `false`: not a URL.
const parsedOrigins = new LRUCache<string, ParsedOrigin | false>({ max: 1024 });

/** An origin's parts, parsed once per distinct text; undefined when it is not a URL. */
export function parsedOrigin(text: string): ParsedOrigin | undefined {
  let parsed = parsedOrigins.get(text);
  if (parsed === undefined) {
    try {
      const u = new URL(text);
      parsed = { protocol: u.protocol, hostname: u.hostname, port: u.port, origin: u.origin };
    } catch {
      parsed = false;
    }
    parsedOrigins.set(text, parsed);
  }
  return parsed || undefined;
}

/** `host:port` of an absolute-form request target (with the scheme's default port), or `''` if unparsable. */
function authorityOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80)}`;
  } catch {
    return '';
  }
}
