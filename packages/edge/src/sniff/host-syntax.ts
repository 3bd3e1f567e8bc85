import { isIPv6 } from 'node:net';

const MAX_NAME = 253;
const MAX_LABEL = 63;

/**
 * Checks that a name seen on the wire (SNI, Host, CONNECT target) is a plausible DNS name: letters,
 * digits, hyphen, underscore and dots, non-empty labels of at most 63 characters, at most 253 characters
 * plus one optional trailing dot. Case and the trailing dot are left for the policy to normalise; this only
 * refuses bytes no resolver would accept (spaces, NUL, `%`, `@`, `\`, non-ASCII), which is where a filter
 * and a server can be made to read the same bytes differently.
 *
 * @returns undefined when plausible, else why not.
 */
export function hostNameProblem(name: string): string | undefined {
  const end = name.endsWith('.') ? name.length - 1 : name.length;
  if (end === 0) return 'empty host name';
  if (end > MAX_NAME) return `host name of ${end} characters exceeds ${MAX_NAME}`;
  let label = 0;
  for (let i = 0; i < end; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2e) {
      if (label === 0) return 'empty label in host name';
      label = 0;
      continue;
    }
    if (!isHostChar(c)) return `character 0x${c.toString(16).padStart(2, '0')} not allowed in a host name`;
    label += 1;
    if (label > MAX_LABEL) return `label longer than ${MAX_LABEL} characters`;
  }
  if (label === 0) return 'empty label in host name';
  return undefined;
}

function isHostChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === 0x5f // _ (seen in real names even though DNS host names forbid it)
  );
}

/** A host and optional port split out of `host[:port]` or `[v6]:port`; brackets removed. */
export interface HostPort {
  host: string;
  port: number | undefined;
}

/**
 * Parses an authority `host`, `host:port`, `[v6]` or `[v6]:port`. Userinfo (`user@host`), zone ids,
 * empty or out-of-range ports and anything {@link hostNameProblem} refuses are errors, because those are the
 * spellings on which URL parsers disagree.
 */
export function parseAuthority(text: string): HostPort | string {
  if (text.length === 0) return 'empty authority';
  if (text.includes('@')) return 'userinfo in authority';
  let host: string;
  let rest: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return 'unterminated IPv6 literal';
    host = text.slice(1, close);
    rest = text.slice(close + 1);
    // Node's isIPv6 accepts zone ids (`fe80::1%eth0`); a zone id has no meaning off the local host.
    if (host.includes('%') || !isIPv6(host)) return `"${host}" is not an IPv6 address`;
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    rest = colon < 0 ? '' : text.slice(colon);
    const problem = hostNameProblem(host);
    if (problem) return problem;
  }
  if (rest === '') return { host, port: undefined };
  if (!rest.startsWith(':')) return `unexpected "${rest}" after host`;
  const port = parsePort(rest.slice(1));
  if (port === undefined) return `invalid port "${rest.slice(1)}"`;
  return { host, port };
}

/** Decimal port 1..65535 of 1-5 digits; undefined for anything else (0, empty, sign, hex, overflow). */
function parsePort(text: string): number | undefined {
  if (text.length === 0 || text.length > 5) return undefined;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  // Port 0 cannot be dialled; accepting it would only hand the caller a claim it cannot check.
  return n >= 1 && n <= 65535 ? n : undefined;
}
