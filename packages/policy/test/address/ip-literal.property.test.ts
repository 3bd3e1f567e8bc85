import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { endsInNumber, formatIp, parseIpLiteral } from '../../src/address/index.js';

const RUNS = { numRuns: 2000 };

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** One IPv4 part in the radix a spelling picks, with the extra zeros and letter case both parsers allow. */
const partSpelling = (value: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constant(value.toString(10)),
    fc.nat({ max: 3 }).map((zeros) => `0${'0'.repeat(zeros)}${value.toString(8)}`),
    fc
      .record({ upper: fc.boolean(), prefix: fc.constantFrom('0x', '0X'), zeros: fc.nat({ max: 3 }) })
      .map(({ upper, prefix, zeros }) => {
        const digits = value.toString(16);
        return `${prefix}${'0'.repeat(zeros)}${upper ? digits.toUpperCase() : digits}`;
      }),
  );

/** Every 1- to 4-part spelling of an address: the last part holds all the remaining bytes. */
const ipv4Spelling = (n: number): fc.Arbitrary<string> =>
  fc
    .record({ parts: fc.integer({ min: 1, max: 4 }), trailingDot: fc.boolean() })
    .chain(({ parts, trailingDot }) => {
      const bytes = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
      const values = bytes.slice(0, parts - 1);
      values.push(bytes.slice(parts - 1).reduce((acc, b) => acc * 256 + b, 0));
      return fc
        .tuple(...values.map(partSpelling))
        .map((spelled) => spelled.join('.') + (trailingDot ? '.' : ''));
    });

describe('IPv4 spellings (property)', () => {
  it('every spelling of a random address parses to the same canonical address', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }).chain((n) => fc.tuple(fc.constant(n), ipv4Spelling(n))),
        ([n, spelling]) => {
          const ip = parseIpLiteral(spelling);
          expect(ip?.canonical).toBe(dotted(n));
          expect(ip?.family).toBe(4);
        },
      ),
      RUNS,
    );
  });

  it('agrees with new URL() on every such spelling', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }).chain((n) => ipv4Spelling(n)),
        (spelling) => {
          expect(new URL(`http://${spelling}/`).hostname).toBe(parseIpLiteral(spelling)?.canonical);
        },
      ),
      RUNS,
    );
  });

  it('agrees with new URL() on random strings of IPv4 characters', () => {
    const hostChars = fc.constantFrom(...'0123456789abcdefxX.');
    fc.assert(
      fc.property(fc.string({ unit: hostChars, minLength: 1, maxLength: 16 }), (host) => {
        let url: string | null;
        try {
          url = new URL(`http://${host}/`).hostname;
        } catch {
          url = null;
        }
        const isV4 = url !== null && /^\d+\.\d+\.\d+\.\d+$/.test(url);
        const ip = parseIpLiteral(host);
        if (ip !== undefined) {
          expect(url).toBe(ip.canonical);
        } else if (isV4) {
          // The one divergence: an empty hex part (`0x`), 0 to the URL parser, an error to inet_aton.
          expect(host).toMatch(/(^|\.)0[xX](\.|$)/);
        }
        // The URL parser tries IPv4 exactly when the host ends in a number.
        if (isV4) expect(endsInNumber(host)).toBe(true);
        if (url !== null && !isV4) expect(endsInNumber(host)).toBe(false);
        // Callers deny a host that ends in a number but is no address: so does the URL parser (bar `0x`).
        if (endsInNumber(host) && ip === undefined && !isV4) expect(url).toBeNull();
      }),
      { numRuns: 5000 },
    );
  });
});

describe('IPv6 spellings (property)', () => {
  const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
  // Runs of zero pieces, so compression is exercised.
  const sparse16 = fc
    .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
      minLength: 8,
      maxLength: 8,
    })
    .map((pieces) => Uint8Array.from(pieces.flatMap((p) => [p >>> 8, p & 0xff])));
  const address = fc.oneof(bytes16, sparse16);

  it('formatIp and parseIpLiteral round-trip, matching the URL serializer and ipaddr.js', () => {
    fc.assert(
      fc.property(address, (bytes) => {
        const text = formatIp(bytes);
        const ip = parseIpLiteral(text);
        expect(ip?.bytes).toEqual(bytes);
        expect(ip?.canonical).toBe(text);
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
        expect((ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6).toRFC5952String()).toBe(text);
      }),
      RUNS,
    );
  });

  it('uncompressed, upper-case, zero-padded and dotted-tail spellings parse to the same address', () => {
    fc.assert(
      fc.property(
        address,
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (bytes, upper, pad, dottedTail, bracketed) => {
          const pieces: string[] = [];
          for (let i = 0; i < 16; i += 2) {
            const piece = ((bytes[i]! << 8) | bytes[i + 1]!).toString(16);
            pieces.push(pad ? piece.padStart(4, '0') : piece);
          }
          if (dottedTail) pieces.splice(6, 2, [...bytes.slice(12)].join('.'));
          let text = pieces.join(':');
          if (upper) text = text.toUpperCase();
          if (bracketed) text = `[${text}]`;
          expect(parseIpLiteral(text)?.canonical).toBe(formatIp(bytes));
        },
      ),
      RUNS,
    );
  });
});
