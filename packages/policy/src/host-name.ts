import { domainToASCII } from 'node:url';
import { endsInNumber, type IpAddress, parseIpLiteral } from './address/index.js';

/** A host as the decider sees it: a normalised DNS name, an IP address, or invalid. */
export type ParsedHost =
  | { kind: 'name'; name: string }
  | { kind: 'ip'; ip: IpAddress }
  | { kind: 'invalid'; detail: string };

const ASCII_HOST = /^[a-z0-9._-]+$/;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
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
  if (NON_ASCII.test(host) || host.includes('xn--') || host.includes('XN--')) {
    // domainToASCII also validates punycode labels: it returns '' for `xn--zz`.
    if (!NON_ASCII.test(host) && !ASCII_HOST.test(host.toLowerCase())) return undefined;
    host = domainToASCII(host);
    if (host === '' || host.endsWith('.')) return undefined;
  } else {
    host = host.toLowerCase();
    if (!ASCII_HOST.test(host)) return undefined;
  }
  if (host.length > 253) return undefined;
  for (const label of host.split('.')) if (!LABEL.test(label)) return undefined;
  return host;
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
