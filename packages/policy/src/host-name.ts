import { domainToASCII } from 'node:url';
import { endsInNumber, type IpAddress, parseIpLiteral } from './address/index.js';

/** A host as the decider sees it: a normalised DNS name, an IP address, or invalid. */
export type ParsedHost =
  | { kind: 'name'; name: string }
  | { kind: 'ip'; ip: IpAddress }
  | { kind: 'invalid'; detail: string };

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Normalises a DNS name the way policy.md says: lower case, one trailing dot removed, IDN converted to
 * its A-label form (UTS #46, as the WHATWG URL parser does, so the checker and the client agree).
 * Returns undefined when the result is not a valid DNS name: empty labels, labels over 63 octets,
 * names over 253, characters outside letters/digits/hyphen/underscore, broken punycode, `%` escapes.
 */
export function normaliseHostName(input: string): string | undefined {
  let host = input.endsWith('.') ? input.slice(0, -1) : input;
  if (host.length === 0 || host.length > 253) return undefined;
  const fast = validAsciiName(host);
  if (fast !== undefined) {
    if (!fast.includes('xn--')) return fast;
    host = fast;
  } else if (!NON_ASCII.test(host)) {
    return undefined;
  }
  // IDN and punycode: domainToASCII applies UTS #46 and validates punycode labels (`xn--zz` gives '').
  host = domainToASCII(host);
  if (host === '' || host.endsWith('.')) return undefined;
  return validAsciiName(host);
}

/**
 * Lower-cases and validates an ASCII DNS name in one pass (hot path: called on every decision):
 * labels of 1-63 letters, digits, `-` or `_`, not starting or ending with `-`, 253 octets at most.
 */
function validAsciiName(host: string): string | undefined {
  if (host.length > 253) return undefined;
  let lower = true;
  let labelLength = 0;
  let previous = 46; // '.'
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c === 46) {
      if (labelLength === 0 || previous === 45) return undefined;
      labelLength = 0;
    } else {
      if (c >= 65 && c <= 90) lower = false;
      else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 45)) return undefined;
      if (c === 45 && labelLength === 0) return undefined;
      if (++labelLength > 63) return undefined;
    }
    previous = c;
  }
  if (labelLength === 0 || previous === 45) return undefined;
  return lower ? host : host.toLowerCase();
}

/**
 * Classifies what a caller named: an IP literal in any spelling (matched by `addresses` rules only),
 * a DNS name (normalised), or something invalid, which is always denied.
 */
export function parseHost(input: string): ParsedHost {
  const unbracketed = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const ip = parseIpLiteral(unbracketed);
  if (ip) return { kind: 'ip', ip };
  // WHATWG: a host whose last label is a number must be an IPv4 address; if it is not one
  // (`1.2.3.4.5`, `256.1.1.1`) clients reject or reinterpret it, so we deny it.
  if (endsInNumber(unbracketed) || unbracketed.includes(':')) {
    return { kind: 'invalid', detail: `"${input}" is neither a valid IP address nor a DNS name` };
  }
  const name = normaliseHostName(unbracketed);
  if (name === undefined) return { kind: 'invalid', detail: `"${input}" is not a valid DNS name` };
  return { kind: 'name', name };
}
