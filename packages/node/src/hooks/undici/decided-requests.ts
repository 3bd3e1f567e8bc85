import { parsedOrigin } from './request-target.js';

/**
 * Marks dispatch options a GuardedDispatcher already decided, so that the dispatchers beneath it
 * (Agent → Pool → Client, ProxyAgent → its inner Agent) do not decide the same request again.
 *
 * The mark is an enumerable symbol property, so it survives the shallow copies undici makes on the way
 * down (`{ ...opts, headers }` in ProxyAgent). It names the request it was made for (origin, method,
 * path): a copy whose origin, method or path was changed since (a redirect hop, which undici's redirect
 * handler makes by mutating or copying the options; an origin rewritten to an IP by the DNS interceptor)
 * no longer matches and is decided again.
 */
const DECIDED = Symbol('egress-guard.decided');

type Marked = { [DECIDED]?: string };

function keyOf(origin: string, method: string | undefined, path: string | undefined): string {
  return `${(method ?? 'GET').toUpperCase()} ${origin}${path ?? '/'}`;
}

/** Marks options as decided for this origin (scheme://host:port), method and path. */
export function markDecided(
  opts: object,
  origin: string,
  method: string | undefined,
  path: string | undefined,
): void {
  (opts as Marked)[DECIDED] = keyOf(origin, method, path);
}

/** Whether these options were decided, for the origin, method and path they now carry. */
export function wasDecided(opts: object, origin: string | undefined): boolean {
  const mark = (opts as Marked)[DECIDED];
  if (mark === undefined || origin === undefined) return false;
  const o = opts as { method?: string; path?: string };
  return mark === keyOf(origin, o.method, o.path);
}

/** The origin (scheme://host:port) of a dispatch's `origin` option, or undefined if it has none. */
export function originOf(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  // One cache of parsed origins for every layer (see request-target.ts).
  return parsedOrigin(String(value))?.origin;
}
