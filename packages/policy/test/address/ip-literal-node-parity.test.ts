/**
 * parseIpLiteral must read a host exactly as the clients that dial it do. The oracles here are Node
 * itself: `new URL()` (WHATWG, used by fetch/undici) and `dns.lookup` (the `net.connect` path:
 * getaddrinfo/inet_aton after Node's UTS #46 mapping). Numeric hosts resolve without any network.
 *
 * Where the clients disagree with each other, the row names the divergence and the side the parser takes.
 */
import dns from 'node:dns';
import { describe, expect, it } from 'vitest';
import { endsInNumber, parseIpLiteral } from '../../src/address/index.js';

/** How the two clients treat a spelling the parser accepts (or, for `stricter`, refuses). */
type Agreement =
  /** URL and lookup both give the parser's address, or all three refuse it. */
  | 'both'
  /** Only the URL parser gives the address; getaddrinfo treats the host as a DNS name and finds nothing. */
  | 'url-only'
  /** Only dns.lookup gives the address; the URL parser refuses the host (zone ids, `：` mapped to `:`). */
  | 'lookup-only'
  /** The URL parser gives an address but getaddrinfo refuses: the parser refuses too (callers deny). */
  | 'stricter';

const IPV4_ROWS: ReadonlyArray<readonly [input: string, agreement: Agreement]> = [
  ['127.1', 'both'],
  ['0x7f.1', 'both'],
  ['0X7F.1', 'both'],
  ['017700000001', 'both'],
  ['2130706433', 'both'],
  ['0', 'both'],
  ['0.0.0.0', 'both'],
  ['0x7f000001', 'both'],
  ['127.0.0.0x1', 'both'],
  ['0x0000000000000007f.1', 'both'],
  ['00000000000000000000000000177.1', 'both'],
  ['0377.0377.0377.0377', 'both'],
  ['4294967295', 'both'],
  ['0xffffffff', 'both'],
  ['037777777777', 'both'],
  ['1.0xffffff', 'both'],
  ['1.2.0xffff', 'both'],
  ['169.254.43518', 'both'],
  ['１２７.０.０.１', 'both'],
  ['１２７.１', 'both'],
  ['127。0。0。1', 'both'],
  ['０Ｘ７Ｆ.１', 'both'],
  ['①27.0.0.1', 'both'],
  ['1\u200b27.0.0.1', 'both'],
  // Invalid everywhere.
  ['4294967296', 'both'],
  ['0x100000000', 'both'],
  ['040000000000', 'both'],
  ['1.2.3.4.5', 'both'],
  ['256.1.1.1', 'both'],
  ['1.2.3.256', 'both'],
  ['0400.0.0.0', 'both'],
  ['1.0x1000000', 'both'],
  ['1.2.65536', 'both'],
  ['08', 'both'],
  ['09.1', 'both'],
  ['00x1', 'both'],
  ['0xg', 'both'],
  ['foo.0x1', 'both'],
  ['1..2', 'both'],
  ['.1.2.3', 'both'],
  ['127.0.0.1..', 'both'],
  ['127.0.0.1 ', 'both'],
  ['127.0.0.1 foo', 'both'],
  [' 127.0.0.1', 'both'],
  ['+1', 'both'],
  ['99999999999999999999', 'both'],
  ['ⅰ27.0.0.1', 'both'],
  ['١٢٧.0.0.1', 'both'],
  // A trailing dot: the URL parser drops it; getaddrinfo sends the name to DNS (checked when dialled).
  ['127.0.0.1.', 'url-only'],
  ['127.1.', 'url-only'],
  ['0x7f.1。', 'url-only'],
  // Percent-escapes: decoded by the URL parser only.
  ['%31%32%37.1', 'url-only'],
  ['127.%30.0.1', 'url-only'],
  ['127.0.0.1%2e', 'url-only'],
  // An empty hex part: 0 for the URL parser, an error for inet_aton. Refused (callers deny it).
  ['0x', 'stricter'],
  ['0x.1', 'stricter'],
  ['1.0x', 'stricter'],
  ['０ｘ', 'stricter'],
];

const IPV6_ROWS: ReadonlyArray<readonly [input: string, agreement: Agreement]> = [
  ['::', 'both'],
  ['::1', 'both'],
  ['::ffff:127.0.0.1', 'both'],
  ['::ffff:7f00:1', 'both'],
  ['::127.0.0.1', 'both'],
  ['64:ff9b::7f00:1', 'both'],
  ['64:ff9b::127.0.0.1', 'both'],
  ['2002:7f00:1::', 'both'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'both'],
  ['FE80::1', 'both'],
  ['::0000', 'both'],
  ['1:2:3:4:5:6:7::', 'both'],
  ['::1:2:3:4:5:6:7', 'both'],
  ['1:2:3:4:5:6:1.2.3.4', 'both'],
  ['::ffff:127.0.0.01', 'both'],
  ['::ffff:127.1', 'both'],
  ['::ffff:0x7f.0.0.1', 'both'],
  ['1::2::3', 'both'],
  ['1:2:3::4:5:6:7:8', 'both'],
  ['1:2:3:4:5:6:7:8:9', 'both'],
  ['::00000', 'both'],
  ['1:2:3:4:5:6:7:1.2.3.4', 'both'],
  // Zone ids: Node's connect path takes them (net.isIP accepts them); URLs cannot carry one.
  ['fe80::1%eth0', 'lookup-only'],
  ['fe80::1%1', 'lookup-only'],
  ['::1%lo', 'lookup-only'],
  ['::ffff:1.2.3.4%lo', 'lookup-only'],
  // Node maps the host through UTS #46 before getaddrinfo; the URL parser forbids the mapped `:`.
  ['：：１', 'lookup-only'],
  ['::１', 'lookup-only'],
  ['fe80::1%ｅｔｈ0', 'lookup-only'],
];

/** The URL parser's reading of a host as an address (canonical text), or null. */
function viaUrl(host: string): string | null {
  const bare = host.includes(':') || host.includes('：') || host.includes('%ｅ');
  let hostname: string;
  try {
    hostname = new URL(`http://${bare ? `[${host}]` : host}/`).hostname;
  } catch {
    return null;
  }
  if (hostname.startsWith('[')) return hostname.slice(1, -1);
  return /^\d+\.\d+\.\d+\.\d+$/.test(hostname) ? hostname : null;
}

/**
 * dns.lookup's reading, or null when it finds nothing. IPv6 answers are canonicalised by the URL
 * serializer, independently of the parser under test. (Not ipaddr.js: it reads `::1.2.3.4` as
 * `::ffff:1.2.3.4`, and glibc writes `::1:2` as `::0.1.0.2`.)
 */
async function viaLookup(host: string, family: 4 | 6): Promise<string | null> {
  const answer = new Promise<string | null>((resolve) => {
    dns.lookup(host, { family }, (error, address) => resolve(error ? null : address));
  });
  const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref());
  const address = await Promise.race([answer, timeout]);
  if (address === null) return null;
  if (!address.includes(':')) return address;
  return new URL(`http://[${address.split('%')[0]}]/`).hostname.slice(1, -1);
}

async function expectAgreement(input: string, agreement: Agreement, family: 4 | 6): Promise<void> {
  const parsed = parseIpLiteral(input)?.canonical ?? null;
  const url = viaUrl(input);
  const lookup = await viaLookup(input, family);
  switch (agreement) {
    case 'both':
      expect({ url, lookup }).toEqual({ url: parsed, lookup: parsed });
      break;
    case 'url-only':
      expect(parsed).not.toBeNull();
      expect(url).toBe(parsed);
      // Another libc might resolve the name itself; it must then agree.
      expect([null, parsed]).toContain(lookup);
      break;
    case 'lookup-only':
      expect(parsed).not.toBeNull();
      expect({ url, lookup }).toEqual({ url: null, lookup: parsed });
      break;
    case 'stricter':
      expect(parsed).toBeNull();
      expect(url).not.toBeNull();
      expect(lookup).toBeNull();
      expect(endsInNumber(input)).toBe(true);
      break;
  }
}

describe('IPv4 spellings agree with new URL() and dns.lookup({ family: 4 })', () => {
  it.each(IPV4_ROWS)('%j (%s)', async (input, agreement) => {
    await expectAgreement(input, agreement, 4);
  });
});

describe('IPv6 spellings agree with new URL() and dns.lookup({ family: 6 })', () => {
  it.each(IPV6_ROWS)('%j (%s)', async (input, agreement) => {
    await expectAgreement(input, agreement, 6);
  });
});

describe('Unicode characters that map into IP syntax', () => {
  // Planes 0 and 1 hold every character UTS #46 maps to an ASCII digit, letter, dot, colon or percent;
  // E0100-E01EF (variation selectors) map to nothing. Every character whose mapping, or NFKC form, makes
  // an address in one of these contexts is checked against dns.lookup and the URL parser.
  const codePoints: number[] = [];
  for (let cp = 0x80; cp <= 0x1ffff; cp += 1) if (cp < 0xd800 || cp > 0xdfff) codePoints.push(cp);
  for (let cp = 0xe0000; cp <= 0xe0fff; cp += 1) codePoints.push(cp);

  const contexts: ReadonlyArray<{ make: (c: string) => string; family: 4 | 6; url: boolean }> = [
    { make: (c) => `::1${c}2`, family: 6, url: false },
    { make: (c) => `0${c}7f.1`, family: 4, url: true },
    { make: (c) => `127${c}1`, family: 4, url: true },
  ];

  it('parseIpLiteral maps them as Node does', async () => {
    const candidates: Array<{ input: string; family: 4 | 6; url: boolean }> = [];
    for (const cp of codePoints) {
      const c = String.fromCodePoint(cp);
      for (const context of contexts) {
        const input = context.make(c);
        if (parseIpLiteral(input) !== undefined || parseIpLiteral(input.normalize('NFKC')) !== undefined) {
          candidates.push({ input, family: context.family, url: context.url });
        }
      }
    }
    expect(candidates.length).toBeGreaterThan(300);
    const mismatches: string[] = [];
    const queue = [...candidates];
    const worker = async (): Promise<void> => {
      for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
        const parsed = parseIpLiteral(next.input)?.canonical ?? null;
        const lookup = await viaLookup(next.input, next.family);
        const url = next.url ? viaUrl(next.input) : lookup;
        // Where only one client reads an address, the parser must still read it.
        const expected = lookup ?? url;
        if (parsed !== expected || (lookup !== null && url !== null && lookup !== url)) {
          mismatches.push(`${JSON.stringify(next.input)}: parser ${parsed}, lookup ${lookup}, URL ${url}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    expect(mismatches).toEqual([]);
  });
});
