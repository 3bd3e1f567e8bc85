import { domainToASCII } from 'node:url';

/**
 * An IP address, parsed from any spelling.
 *
 * `bytes` is the address in network order (4 bytes for IPv4, 16 for IPv6). `canonical` is the one
 * spelling used in decisions, logs and audit events: dotted decimal for IPv4 (`127.0.0.1`) and lower-case
 * compressed RFC 5952 text for IPv6, always in hex pieces (`::ffff:7f00:1`, as the WHATWG URL serializer
 * writes it), so two spellings of one address always compare equal as strings.
 */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly canonical: string;
}

const DOT = 0x2e;
const COLON = 0x3a;
const PERCENT = 0x25;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Parses an IP literal in any spelling that Node's connect path (`net.connect` → `dns.lookup` →
 * `getaddrinfo`/`inet_aton`) or the WHATWG URL parser (`new URL()`, used by fetch/undici) would turn into
 * an address, so the checker never reads a host differently from the client that dials it:
 *
 * - IPv4 with 1 to 4 parts, each decimal, octal (leading `0`) or hex (`0x`), the last part filling the
 *   remaining bytes: `127.1`, `0x7f.1`, `017700000001`, `2130706433`, `0`; one trailing dot (`127.0.0.1.`).
 * - IPv6, bare or in brackets, with an embedded dotted IPv4 (`::ffff:127.0.0.1`) and, bare only, a zone id
 *   (`fe80::1%eth0`), which is dropped: the address is what gets checked.
 * - Non-ASCII spellings that both clients map to ASCII first (UTS #46: `１２７.０.０.１`, `127。0。0。1`,
 *   `：：１`), and percent-escapes that the URL parser decodes in a host (`%31%32%37.1`).
 *
 * Returns undefined when `input` is not an IP literal. Callers must then also check {@link endsInNumber}:
 * a host that ends in a number but is not an address (`1.2.3.4.5`, `256.1.1.1`, `0x`) is invalid and must
 * be denied, never treated as a DNS name.
 *
 * Where the two clients disagree, this takes the denying side: `0x` (an empty hex part, which the URL
 * parser reads as 0 but `inet_aton` rejects) is not an address, so callers deny it as invalid. A trailing
 * dot is accepted as the URL parser does; `getaddrinfo` instead sends such a name to DNS, where the address
 * actually dialled is checked at dial time like any other resolved address.
 */
export function parseIpLiteral(input: string): IpAddress | undefined {
  const length = input.length;
  if (length === 0) return undefined;
  if (input.charCodeAt(0) === OPEN_BRACKET) {
    // Brackets come only from URLs, where they hold IPv6 and nothing else: no IPv4, no zone id, no
    // Unicode mapping (the URL parser maps nothing inside brackets and getaddrinfo rejects them).
    if (length < 3 || input.charCodeAt(length - 1) !== CLOSE_BRACKET) return undefined;
    const bytes = parseIpv6(input, 1, length - 1);
    return bytes === undefined ? undefined : makeAddress(6, bytes);
  }
  const host = isPlainAscii(input) ? input : prepareHost(input, false);
  if (host === undefined) return undefined;
  if (host.includes(':')) {
    // Node's connect path accepts a zone id (`fe80::1%eth0`): the address part is what is dialled.
    const percent = host.indexOf('%');
    const end = percent === -1 ? host.length : percent;
    if (percent !== -1 && !isValidZone(host, percent + 1)) return undefined;
    const bytes = parseIpv6(host, 0, end);
    return bytes === undefined ? undefined : makeAddress(6, bytes);
  }
  const value = parseIpv4(host);
  return value === undefined ? undefined : makeAddress(4, uint32ToBytes(value));
}

/**
 * The WHATWG URL "ends in a number" check: true when the host's last label (after removing one trailing
 * dot) is all ASCII digits or `0x` followed by hex digits. The URL parser then insists that the whole host
 * is an IPv4 address and fails otherwise.
 *
 * Callers must deny a host for which this is true but {@link parseIpLiteral} returns undefined
 * (`1.2.3.4.5`, `256.1.1.1`, `0x`, `1.0x`): it is neither an address nor a DNS name any client would look
 * up as such. The host is mapped to ASCII first (Unicode digits, percent-escapes) as the URL parser does.
 */
export function endsInNumber(host: string): boolean {
  const s = isPlainAscii(host) ? host : (prepareHost(host, true) ?? host);
  let end = s.length;
  if (end === 0) return false;
  // One empty last label (a trailing dot) is ignored, as in the URL standard.
  if (s.charCodeAt(end - 1) === DOT) end -= 1;
  const start = s.lastIndexOf('.', end - 1) + 1;
  if (start >= end) return false;
  if (isDigits(s, start, end)) return true;
  // A hex number, including the bare `0x` that the URL parser reads as 0.
  return end - start >= 2 && s.charCodeAt(start) === 0x30 && (s.charCodeAt(start + 1) | 0x20) === 0x78
    ? isHexDigits(s, start + 2, end)
    : false;
}

/**
 * Formats 4 or 16 address bytes canonically: dotted decimal for IPv4, lower-case compressed RFC 5952 for
 * IPv6 (the first longest run of two or more zero pieces becomes `::`; IPv4-mapped addresses stay in hex,
 * `::ffff:7f00:1`, matching the WHATWG URL serializer). Throws `RangeError` for any other length.
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const pieces: number[] = [];
  for (let i = 0; i < 16; i += 2) pieces.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero piece is never compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (pieces[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && pieces[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i += 1) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLength - 1;
      continue;
    }
    out += pieces[i]!.toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

/**
 * Returns the IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.0.0.1` → `10.0.0.1`), and any
 * other address unchanged. A socket given a mapped address talks IPv4 to the embedded address, so rules
 * match it as that IPv4 address: an `addresses: [10.0.0.0/8]` rule, allow or deny, also covers
 * `::ffff:10.0.0.1`.
 */
export function unmapIpv4(ip: IpAddress): IpAddress {
  if (!isIpv4Mapped(ip.bytes)) return ip;
  return makeAddress(4, ip.bytes.slice(12, 16));
}

/** True for the 16 bytes of `::ffff:a.b.c.d`. */
function isIpv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i += 1) if (bytes[i] !== 0) return false;
  return true;
}

function makeAddress(family: 4 | 6, bytes: Uint8Array): IpAddress {
  return { family, bytes, canonical: formatIp(bytes) };
}

function uint32ToBytes(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  bytes[0] = value >>> 24;
  bytes[1] = value >>> 16;
  bytes[2] = value >>> 8;
  bytes[3] = value;
  return bytes;
}

/** ASCII without `%`: the common case, parsed as is with no mapping. */
function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || c === PERCENT) return false;
  }
  return true;
}

function isDigits(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isHexDigits(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) if (hexValue(s.charCodeAt(i)) < 0) return false;
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x57;
  return -1;
}

/**
 * Parses the IPv4 grammar shared by the URL standard's IPv4 parser and `inet_aton`: 1 to 4 dot-separated
 * parts, each decimal, octal or hex; all but the last at most 255, the last filling the remaining bytes.
 * Returns the address as an unsigned 32-bit number.
 */
function parseIpv4(s: string): number | undefined {
  let end = s.length;
  if (end > 0 && s.charCodeAt(end - 1) === DOT) end -= 1;
  if (end === 0) return undefined;
  // The parts before the last, packed big-endian as they are read; at most three of them.
  let head = 0;
  let headCount = 0;
  let start = 0;
  for (;;) {
    let stop = start;
    while (stop < end && s.charCodeAt(stop) !== DOT) stop += 1;
    const value = parseIpv4Part(s, start, stop);
    if (value < 0) return undefined;
    if (stop === end) {
      // The last part fills the bytes the others left: below 2^32, 2^24, 2^16 or 2^8.
      if (value >= 256 ** (4 - headCount)) return undefined;
      return head * 256 ** (4 - headCount) + value;
    }
    if (headCount === 3 || value > 0xff) return undefined;
    head = head * 256 + value;
    headCount += 1;
    start = stop + 1;
  }
}

/** One IPv4 part, or -1. Stops accumulating past 2^32 so no input can overflow into a valid value. */
function parseIpv4Part(s: string, start: number, end: number): number {
  if (start === end) return -1;
  let radix = 10;
  let i = start;
  if (end - start >= 2 && s.charCodeAt(start) === 0x30) {
    if ((s.charCodeAt(start + 1) | 0x20) === 0x78) {
      radix = 16;
      i += 2;
      // `0x` with no digits: the URL parser reads 0, inet_aton rejects it. Take the denying side.
      if (i === end) return -1;
    } else {
      radix = 8;
      i += 1;
    }
  }
  let value = 0;
  for (; i < end; i += 1) {
    const digit = hexValue(s.charCodeAt(i));
    if (digit < 0 || digit >= radix) return -1;
    value = value * radix + digit;
    if (value > 0xffffffff) return -1;
  }
  return value;
}

/**
 * The WHATWG IPv6 parser over `s[start, end)` (which also accepts everything `inet_pton` does):
 * up to 8 hex pieces of 1-4 digits, one `::`, an optional trailing dotted-decimal IPv4 with no leading
 * zeros. Returns the 16 bytes or undefined.
 */
function parseIpv6(s: string, start: number, end: number): Uint8Array | undefined {
  const pieces = [0, 0, 0, 0, 0, 0, 0, 0];
  let pieceIndex = 0;
  let compress = -1;
  let p = start;
  if (codeAt(s, p, end) === COLON) {
    if (codeAt(s, p + 1, end) !== COLON) return undefined;
    p += 2;
    pieceIndex += 1;
    compress = pieceIndex;
  }
  while (p < end) {
    if (pieceIndex === 8) return undefined;
    if (codeAt(s, p, end) === COLON) {
      if (compress !== -1) return undefined;
      p += 1;
      pieceIndex += 1;
      compress = pieceIndex;
      continue;
    }
    let value = 0;
    let digits = 0;
    while (digits < 4) {
      const digit = hexValue(codeAt(s, p, end));
      if (digit < 0) break;
      value = value * 16 + digit;
      p += 1;
      digits += 1;
    }
    if (codeAt(s, p, end) === DOT) {
      if (digits === 0) return undefined;
      p -= digits;
      if (pieceIndex > 6) return undefined;
      let numbersSeen = 0;
      while (p < end) {
        if (numbersSeen > 0) {
          if (codeAt(s, p, end) === DOT && numbersSeen < 4) p += 1;
          else return undefined;
        }
        let c = codeAt(s, p, end);
        if (c < 0x30 || c > 0x39) return undefined;
        let octet = -1;
        while (c >= 0x30 && c <= 0x39) {
          const digit = c - 0x30;
          if (octet === -1) octet = digit;
          else if (octet === 0)
            return undefined; // leading zero: rejected by both parsers
          else octet = octet * 10 + digit;
          if (octet > 255) return undefined;
          p += 1;
          c = codeAt(s, p, end);
        }
        pieces[pieceIndex] = pieces[pieceIndex]! * 0x100 + octet;
        numbersSeen += 1;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex += 1;
      }
      if (numbersSeen !== 4) return undefined;
      break;
    }
    if (codeAt(s, p, end) === COLON) {
      p += 1;
      if (p === end) return undefined;
    } else if (p < end) {
      return undefined;
    }
    pieces[pieceIndex] = value;
    pieceIndex += 1;
  }
  if (compress !== -1) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const other = compress + swaps - 1;
      const tmp = pieces[pieceIndex]!;
      pieces[pieceIndex] = pieces[other]!;
      pieces[other] = tmp;
      pieceIndex -= 1;
      swaps -= 1;
    }
  } else if (pieceIndex !== 8) {
    return undefined;
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i += 1) {
    bytes[i * 2] = pieces[i]! >>> 8;
    bytes[i * 2 + 1] = pieces[i]! & 0xff;
  }
  return bytes;
}

/** The character code at `i`, or -1 at and past `end` (the parsers' end-of-input marker). */
function codeAt(s: string, i: number, end: number): number {
  return i < end ? s.charCodeAt(i) : -1;
}

/**
 * A zone id after `%`. Its value does not matter (the address is checked, not the interface), so any
 * printable ASCII is accepted: an interface name getaddrinfo knows (`br_lan`) still dials the address.
 */
function isValidZone(s: string, start: number): boolean {
  if (start >= s.length) return false;
  for (let i = start; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === PERCENT) return false;
  }
  return true;
}

/**
 * Maps a non-ASCII or percent-escaped host to the ASCII text a client would parse, or undefined if no
 * client would see an IP literal in it. Two routes, and an address from either one counts:
 *
 * - Connect path: `dns.lookup` passes the host through UTS #46 mapping (fullwidth digits and colons,
 *   ideographic full stops, ignorable characters removed) before getaddrinfo, with no percent-decoding.
 * - URL path: the host is percent-decoded, then UTS #46 mapped; a `:` there is a forbidden code point.
 *
 * With `keepUnmapped`, characters that map to nothing usable stay as they are (for {@link endsInNumber},
 * where such a character simply is not a digit).
 */
function prepareHost(input: string, keepUnmapped: boolean): string | undefined {
  const mapped = mapToAscii(input, keepUnmapped);
  if (mapped === undefined) return undefined;
  // Without escapes both routes see the same text. With a colon only the connect path can produce an
  // address (the URL parser forbids `:` outside brackets), and there a `%` starts a zone id.
  if (!input.includes('%') || mapped.includes(':')) return mapped;
  const decoded = percentDecode(input);
  const viaUrl = decoded === undefined ? undefined : mapToAscii(decoded, keepUnmapped);
  // `:` and `%` after decoding are forbidden host code points: the URL parser fails.
  if (viaUrl === undefined || viaUrl.includes(':') || viaUrl.includes('%')) {
    return keepUnmapped ? mapped : undefined;
  }
  return viaUrl;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * WHATWG percent-decoding of a host (a `%` not followed by two hex digits stays literal), then UTF-8
 * decoding. Invalid UTF-8 becomes U+FFFD in the URL parser, which then rejects the host: undefined.
 */
function percentDecode(s: string): string | undefined {
  const encoded = utf8Encoder.encode(s);
  const bytes = new Uint8Array(encoded.length);
  let length = 0;
  for (let i = 0; i < encoded.length; i += 1) {
    const b = encoded[i]!;
    if (b === PERCENT && i + 2 < encoded.length) {
      const high = hexValue(encoded[i + 1]!);
      const low = hexValue(encoded[i + 2]!);
      if (high >= 0 && low >= 0) {
        bytes[length++] = high * 16 + low;
        i += 2;
        continue;
      }
    }
    bytes[length++] = b;
  }
  try {
    return utf8Decoder.decode(bytes.subarray(0, length));
  } catch {
    return undefined;
  }
}

/**
 * UTS #46 maps these to `:` and `%`, which the URL's domainToASCII then rejects as forbidden, so probing
 * cannot see them; Node's lenient mapping before getaddrinfo keeps them (`：：１` dials `::1`). Found by
 * comparing every code point against `dns.lookup`.
 */
const FORBIDDEN_MAPPINGS: ReadonlyMap<number, string> = new Map([
  [0xfe13, ':'],
  [0xfe55, ':'],
  [0xff1a, ':'],
  [0xfe6a, '%'],
  [0xff05, '%'],
]);

const MAPPING_CACHE_LIMIT = 4096;
const mappingCache = new Map<number, string | null>();

/**
 * Maps each non-ASCII code point to its UTS #46 ASCII image, or returns undefined when one has none.
 * Mapping code point by code point equals mapping the whole host whenever every result is ASCII (the
 * only case in which the host can be an IP literal): NFC and punycode leave ASCII alone.
 */
function mapToAscii(s: string, keepUnmapped: boolean): string | undefined {
  let out = '';
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      out += s[i];
      continue;
    }
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) i += 1;
    const image = mapCodePoint(cp);
    if (image !== null) out += image;
    else if (keepUnmapped) out += String.fromCodePoint(cp);
    else return undefined;
  }
  return out;
}

function mapCodePoint(cp: number): string | null {
  const cached = mappingCache.get(cp);
  if (cached !== undefined) return cached;
  let image: string | null = FORBIDDEN_MAPPINGS.get(cp) ?? null;
  if (image === null) {
    // Probe between two letters so the result is one ordinary label: never an IPv4 address, never
    // empty because of the mapping itself (an ignorable character maps to '' and leaves `aa`).
    const probe = domainToASCII(`a${String.fromCodePoint(cp)}a`);
    if (probe.length >= 2 && probe.startsWith('a') && probe.endsWith('a') && !probe.startsWith('xn--')) {
      const middle = probe.slice(1, -1);
      if (isPlainAscii(middle)) image = middle;
    }
  }
  if (mappingCache.size < MAPPING_CACHE_LIMIT) mappingCache.set(cp, image);
  return image;
}
