/**
 * Reading and checking `Proxy-Authorization`: `Basic` with the service name as user and its token as
 * password (what `HTTPS_PROXY=http://payments:TOKEN@edge:3128` makes curl, undici and Node send), or
 * `Bearer TOKEN` (the token alone names the service). Tokens are compared as SHA-256 digests with
 * `crypto.timingSafeEqual`, against every candidate without stopping at a match, so the time taken says
 * nothing about how much of a token was right.
 */
import { timingSafeEqual } from 'node:crypto';
import { type CredentialTable, tokenDigest } from './secrets-file.js';

/** The outcome of {@link verifyProxyAuthorization}. */
export type CredentialCheck =
  | { ok: true; service: string }
  | {
      ok: false;
      failure: 'missing' | 'invalid';
      /** The service the credentials claimed, when it is one that has credentials (never anything else). */
      service?: string | undefined;
      /** What was wrong, for the log; never a credential. */
      detail: string;
    };

/** The `Proxy-Authorization` header of a request head: absent, its one value, or `several`. */
export type ProxyAuthorizationHeader =
  | { status: 'absent' }
  | { status: 'one'; value: string }
  | { status: 'several' };

const NAME = 'proxy-authorization:';

/**
 * Finds `Proxy-Authorization` in a request head already checked by the HTTP sniffer (CRLF lines, no
 * folding). Two of them are refused: which one a proxy would read is the kind of disagreement smuggling
 * is built on.
 */
export function readProxyAuthorization(head: Buffer, headerBytes: number): ProxyAuthorizationHeader {
  const lines = head.subarray(0, headerBytes).toString('latin1').split('\r\n');
  let found: string | undefined;
  for (const line of lines.slice(1)) {
    if (line.length < NAME.length || line.slice(0, NAME.length).toLowerCase() !== NAME) continue;
    if (found !== undefined) return { status: 'several' };
    found = line.slice(NAME.length).trim();
  }
  return found === undefined ? { status: 'absent' } : { status: 'one', value: found };
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Checks a `Proxy-Authorization` value against the table. */
export function verifyProxyAuthorization(
  header: ProxyAuthorizationHeader,
  table: CredentialTable,
): CredentialCheck {
  if (header.status === 'absent')
    return { ok: false, failure: 'missing', detail: 'no Proxy-Authorization header' };
  if (header.status === 'several') {
    return { ok: false, failure: 'invalid', detail: 'more than one Proxy-Authorization header' };
  }
  const space = header.value.indexOf(' ');
  const scheme = (space < 0 ? header.value : header.value.slice(0, space)).toLowerCase();
  const rest = space < 0 ? '' : header.value.slice(space + 1).trim();
  if (scheme === 'basic') {
    if (!BASE64.test(rest) || rest.length % 4 !== 0) {
      return { ok: false, failure: 'invalid', detail: 'Basic credentials that are not base64' };
    }
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { ok: false, failure: 'invalid', detail: 'Basic credentials without a user name' };
    const user = decoded.slice(0, colon);
    const digests = table.get(user);
    if (!digests) return { ok: false, failure: 'invalid', detail: 'Basic credentials for no known service' };
    return anyMatches(tokenDigest(decoded.slice(colon + 1)), digests)
      ? { ok: true, service: user }
      : { ok: false, failure: 'invalid', service: user, detail: `a wrong token for ${user}` };
  }
  if (scheme === 'bearer') {
    if (rest === '') return { ok: false, failure: 'invalid', detail: 'an empty Bearer token' };
    const presented = tokenDigest(rest);
    let service: string | undefined;
    // Every digest is compared: no early exit on a match.
    for (const [name, digests] of table) if (anyMatches(presented, digests)) service ??= name;
    return service !== undefined
      ? { ok: true, service }
      : { ok: false, failure: 'invalid', detail: 'a Bearer token of no known service' };
  }
  return { ok: false, failure: 'invalid', detail: 'an authentication scheme other than Basic or Bearer' };
}

function anyMatches(presented: Buffer, digests: readonly Buffer[]): boolean {
  let match = false;
  for (const d of digests) match = timingSafeEqual(presented, d) || match;
  return match;
}
