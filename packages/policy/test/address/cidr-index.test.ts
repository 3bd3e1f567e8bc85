import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Cidr,
  CidrIndex,
  cidrContains,
  formatIp,
  type IpAddress,
  parseCidr,
  parseIpLiteral,
} from '../../src/address/index.js';

function ip(text: string): IpAddress {
  return parseIpLiteral(text)!;
}

describe('CidrIndex', () => {
  it('returns every value whose range contains the address, in insertion order', () => {
    const index = new CidrIndex<string>();
    index.add(parseCidr('10.0.0.0/8'), 'a');
    index.add(parseCidr('10.1.0.0/16'), 'b');
    index.add(parseCidr('0.0.0.0/0'), 'c');
    index.add(parseCidr('10.1.2.3'), 'd');
    index.add(parseCidr('10.0.0.0/8'), 'e');
    index.add(parseCidr('2001:db8::/32'), 'f');
    index.add(parseCidr('::/0'), 'g');
    expect(index.size).toBe(7);
    expect(index.lookup(ip('10.1.2.3'))).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(index.lookup(ip('10.2.0.0'))).toEqual(['a', 'c', 'e']);
    expect(index.lookup(ip('11.0.0.0'))).toEqual(['c']);
    expect(index.lookup(ip('2001:db8::1'))).toEqual(['f', 'g']);
    expect(index.lookup(ip('2001:db9::1'))).toEqual(['g']);
  });

  it('looks up IPv4-mapped addresses as IPv4', () => {
    const index = new CidrIndex<string>();
    index.add(parseCidr('10.0.0.0/8'), 'v4');
    index.add(parseCidr('::/0'), 'v6');
    expect(index.lookup(ip('::ffff:10.0.0.1'))).toEqual(['v4']);
    expect(index.lookup(ip('[::ffff:a00:1]'))).toEqual(['v4']);
    expect(index.lookup(ip('::10.0.0.1'))).toEqual(['v6']);
  });

  it('is empty before anything is added', () => {
    const index = new CidrIndex<number>();
    expect(index.size).toBe(0);
    expect(index.lookup(ip('1.2.3.4'))).toEqual([]);
    expect(index.lookup(ip('::1'))).toEqual([]);
  });

  it('refuses ranges that could never match', () => {
    const index = new CidrIndex<number>();
    const hostBits: Cidr = { family: 4, bytes: Uint8Array.of(10, 0, 0, 1), prefix: 8, text: '10.0.0.1/8' };
    expect(() => index.add(hostBits, 1)).toThrow(RangeError);
    const mapped: Cidr = {
      family: 6,
      bytes: ip('::ffff:10.0.0.0').bytes,
      prefix: 104,
      text: '::ffff:a00:0/104',
    };
    expect(() => index.add(mapped, 1)).toThrow(/IPv4-mapped/);
    const wrongLength: Cidr = { family: 6, bytes: new Uint8Array(4), prefix: 8, text: 'x' };
    expect(() => index.add(wrongLength, 1)).toThrow(RangeError);
    expect(index.size).toBe(0);
  });

  it('refuses a hand-built address whose bytes do not fit its family', () => {
    const index = new CidrIndex<number>();
    index.add(parseCidr('::/0'), 1);
    const bad: IpAddress = { family: 6, bytes: new Uint8Array(4), canonical: '::' };
    expect(() => index.lookup(bad)).toThrow(RangeError);
    expect(() => cidrContains(parseCidr('::/0'), bad)).toThrow(RangeError);
  });

  it('builds and answers correctly with 10,000 entries', () => {
    const index = new CidrIndex<number>();
    const cidrs: Cidr[] = [];
    for (let i = 0; i < 5000; i += 1) {
      // 10.x.y.0/24 networks and 2001:db8:x::/48 networks, plus a few wide ranges.
      cidrs.push(parseCidr(`10.${(i >> 8) & 0xff}.${i & 0xff}.0/24`));
      cidrs.push(parseCidr(`2001:db8:${i.toString(16)}::/48`));
    }
    cidrs[42] = parseCidr('10.0.0.0/8');
    cidrs[43] = parseCidr('2001:db8::/32');
    cidrs.forEach((cidr, i) => {
      index.add(cidr, i);
    });
    expect(index.size).toBe(10_000);
    expect(index.lookup(ip('10.0.7.9'))).toEqual([14, 42]);
    expect(index.lookup(ip('10.19.135.1'))).toEqual([42, 9998]); // 4999 = 0x1387
    expect(index.lookup(ip('::ffff:10.19.135.1'))).toEqual([42, 9998]);
    expect(index.lookup(ip('11.0.0.1'))).toEqual([]);
    expect(index.lookup(ip('2001:db8:1387::5'))).toEqual([43, 9999]);
    expect(index.lookup(ip('2001:db9::'))).toEqual([]);
    for (let probe = 0; probe < 300; probe += 1) {
      const address = ip(`10.${probe % 20}.${(probe * 7) % 256}.${probe % 256}`);
      const expected = cidrs.flatMap((cidr, i) => (cidrContains(cidr, address) ? [i] : []));
      expect(index.lookup(address)).toEqual(expected);
    }
  });
});

/** A random CIDR near a few shared bases, so that ranges nest and overlap and lookups hit. */
function cidrArbitrary(family: 4 | 6): fc.Arbitrary<Cidr> {
  const size = family === 4 ? 4 : 16;
  const bases =
    family === 4
      ? [
          [10, 0, 0, 0],
          [192, 168, 0, 0],
          [0, 0, 0, 0],
        ]
      : [
          [0x20, 0x01, 0x0d, 0xb8],
          [0xfe, 0x80],
        ];
  return fc
    .record({
      base: fc.constantFrom(...bases),
      noise: fc.uint8Array({ minLength: size, maxLength: size }),
      keep: fc.integer({ min: 0, max: size }),
      prefix: fc.integer({ min: 0, max: size * 8 }),
    })
    .map(({ base, noise, keep, prefix }) => {
      const bytes = Uint8Array.from(noise, (b, i) => (i < keep ? (base[i] ?? b) : b));
      // Clear the host bits, then let parseCidr build the canonical object.
      for (let i = 0; i < size; i += 1) {
        const bits = prefix - i * 8;
        if (bits < 8) bytes[i] = bytes[i]! & (bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff);
      }
      return parseCidr(`${formatIp(bytes)}/${prefix}`);
    });
}

function addressArbitrary(): fc.Arbitrary<IpAddress> {
  const v4 = fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }),
    fc
      .tuple(fc.constantFrom(10, 192), fc.constantFrom(0, 168), fc.nat(255), fc.nat(255))
      .map((b) => Uint8Array.from(b)),
  );
  const v6 = fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc
      .uint8Array({ minLength: 12, maxLength: 12 })
      .map((rest) => Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...rest])),
  );
  return fc.oneof(
    v4.map((b) => ip(formatIp(b))),
    v6.map((b) => ip(formatIp(b))),
    // IPv4-mapped: must be found under IPv4 ranges.
    v4.map((b) => ip(`::ffff:${formatIp(b)}`)),
  );
}

describe('CidrIndex (property)', () => {
  it('lookup equals a brute-force scan over the same ranges', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(cidrArbitrary(4), cidrArbitrary(6)), { maxLength: 60 }),
        fc.array(addressArbitrary(), { minLength: 1, maxLength: 30 }),
        (cidrs, addresses) => {
          const index = new CidrIndex<number>();
          cidrs.forEach((cidr, i) => {
            index.add(cidr, i);
          });
          expect(index.size).toBe(cidrs.length);
          for (const address of addresses) {
            const expected = cidrs.flatMap((cidr, i) => (cidrContains(cidr, address) ? [i] : []));
            expect(index.lookup(address)).toEqual(expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
