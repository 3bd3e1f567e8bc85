import { describe, expect, it } from 'vitest';
import { endsInNumber, formatIp, parseIpLiteral, unmapIpv4 } from '../../src/address/index.js';

describe('parseIpLiteral: IPv4 spellings (threats.md 5 and 6)', () => {
  const cases: ReadonlyArray<readonly [input: string, canonical: string]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['0X7F.1', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0x0000000000000007f.1', '127.0.0.1'],
    ['00000000000000000000000000177.1', '127.0.0.1'],
    ['127.0.0.0x1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['127.1.', '127.0.0.1'],
    ['0', '0.0.0.0'],
    ['00', '0.0.0.0'],
    ['0x0', '0.0.0.0'],
    ['0.0.0.0', '0.0.0.0'],
    ['4294967295', '255.255.255.255'],
    ['0xffffffff', '255.255.255.255'],
    ['037777777777', '255.255.255.255'],
    ['0377.0377.0377.0377', '255.255.255.255'],
    ['1.0xffffff', '1.255.255.255'],
    ['1.2.0xffff', '1.2.255.255'],
    ['1.2.65535', '1.2.255.255'],
    ['169.254.43518', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['10.0.0.1', '10.0.0.1'],
    ['8.8.8.8', '8.8.8.8'],
  ];
  it.each(cases)('%s is %s', (input, canonical) => {
    const ip = parseIpLiteral(input);
    expect(ip?.family).toBe(4);
    expect(ip?.canonical).toBe(canonical);
    expect(ip?.bytes).toEqual(Uint8Array.from(canonical.split('.').map(Number)));
  });
});

describe('parseIpLiteral: IPv6 spellings', () => {
  const cases: ReadonlyArray<readonly [input: string, canonical: string]> = [
    ['::', '::'],
    ['[::]', '::'],
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::0000', '::'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['::ffff:7f00:1', '::ffff:7f00:1'],
    ['[::ffff:7f00:1]', '::ffff:7f00:1'],
    ['[::ffff:127.0.0.1]', '::ffff:7f00:1'],
    ['0:0:0:0:0:FFFF:7F00:0001', '::ffff:7f00:1'],
    ['::127.0.0.1', '::7f00:1'],
    ['64:ff9b::7f00:1', '64:ff9b::7f00:1'],
    ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1'],
    ['2002:7f00:1::', '2002:7f00:1::'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:DB8::', '2001:db8::'],
    ['2606:4700::1111', '2606:4700::1111'],
    ['fe80::1%eth0', 'fe80::1'],
    ['fe80::1%1', 'fe80::1'],
    ['fe80::1%br_lan', 'fe80::1'],
    ['::1%lo', '::1'],
    ['::ffff:1.2.3.4%lo', '::ffff:102:304'],
  ];
  it.each(cases)('%s is %s', (input, canonical) => {
    const ip = parseIpLiteral(input);
    expect(ip?.family).toBe(6);
    expect(ip?.canonical).toBe(canonical);
    expect(ip?.bytes.length).toBe(16);
  });
});

describe('parseIpLiteral: spellings a client maps to ASCII first', () => {
  const cases: ReadonlyArray<readonly [input: string, canonical: string]> = [
    // UTS #46 mapping: both `new URL()` and `dns.lookup` apply it.
    ['１２７.０.０.１', '127.0.0.1'],
    ['１２７.１', '127.0.0.1'],
    ['127。0。0。1', '127.0.0.1'],
    ['127．0．0．1', '127.0.0.1'],
    ['127｡0｡0｡1', '127.0.0.1'],
    ['０Ｘ７Ｆ.１', '127.0.0.1'],
    ['①27.0.0.1', '127.0.0.1'],
    ['127.0.0.1\u00ad', '127.0.0.1'],
    ['1\u200b27.0.0.1', '127.0.0.1'],
    // Only dns.lookup: the URL parser forbids `:` outside brackets.
    ['：：１', '::1'],
    ['::１', '::1'],
    ['fe80::1%ｅｔｈ0', 'fe80::1'],
    // Only the URL parser: it percent-decodes a host before parsing it.
    ['%31%32%37.1', '127.0.0.1'],
    ['127.%30.0.1', '127.0.0.1'],
    ['127.0.0.1%2e', '127.0.0.1'],
    ['%E2%91%A027.0.0.1', '127.0.0.1'],
  ];
  it.each(cases)('%j is %s', (input, canonical) => {
    expect(parseIpLiteral(input)?.canonical).toBe(canonical);
  });
});

describe('parseIpLiteral: not an IP literal', () => {
  const notIp: ReadonlyArray<readonly [input: string, endsInNumber: boolean]> = [
    // DNS names: callers match these by host rules.
    ['example.com', false],
    ['localhost', false],
    ['127.0.0.1.nip.io', false],
    ['1.2.3.foo', false],
    ['0xg', false],
    ['00x1', false],
    ['0x7f.1.example', false],
    // End in a number but are no address: callers deny these as invalid.
    ['1.2.3.4.5', true],
    ['256.1.1.1', true],
    ['1.2.3.256', true],
    ['1.256.1', true],
    ['0400.0.0.0', true],
    ['4294967296', true],
    ['0x100000000', true],
    ['040000000000', true],
    ['99999999999999999999', true],
    ['1.0x1000000', true],
    ['1.2.65536', true],
    ['08', true],
    ['09.1', true],
    ['0x', true], // the URL parser reads 0.0.0.0, inet_aton rejects: the denying side
    ['0x.1', true],
    ['1.0x', true],
    ['０ｘ', true],
    ['foo.0x1', true],
    ['1..2', true],
    ['1.2..3', true],
    ['.1.2.3', true],
    // Syntax no client accepts as an address. Some end in a number (callers deny those), the rest
    // are not valid DNS names either (callers deny those too).
    ['', false],
    ['.', false],
    ['127.0.0.1..', false],
    ['127.0.0.1 ', false],
    [' 127.0.0.1', true],
    ['127.0.0.1 foo', false],
    ['+1', false],
    ['-1', false],
    ['1.-1', false],
    ['127.0.0.1:80', false],
    ['127.0.0.1%lo', false],
    ['[127.0.0.1]', false],
    ['[127.1]', false],
    ['[::1', false],
    ['::1]', false],
    ['[]', false],
    ['[fe80::1%eth0]', false],
    ['[fe80::1%25eth0]', false],
    ['fe80::1%', false],
    ['fe80::1%eth 0', false],
    [':', false],
    [':::', false],
    ['1::2::3', false],
    ['1:2:3:4:5:6:7:8:9', false],
    ['1:2:3::4:5:6:7:8', false],
    ['0:0:0:0:0:0:0:0:0', false],
    ['1:2:3:4:5:6:7', false],
    ['::00000', false],
    ['::g', false],
    ['1:', false],
    [':1', false],
    ['::ffff:127.0.0.01', true],
    ['::ffff:127.1', true],
    ['::ffff:0x7f.0.0.1', true],
    ['::1.2.3', true],
    ['1:2:3:4:5:6:7:1.2.3.4', true],
    ['::1.2.3.4.5', true],
    ['::256.0.0.1', true],
    ['%3A%3A1', false],
    ['%EF%BC%9A%EF%BC%9A1', false],
    ['%ff.1', true],
    ['ⅰ27.0.0.1', true],
    ['١٢٧.0.0.1', true],
    ['\ud800127.0.0.1', true],
  ];
  it.each(notIp)('%j is not an address (endsInNumber %s)', (input, ends) => {
    expect(parseIpLiteral(input)).toBeUndefined();
    expect(endsInNumber(input)).toBe(ends);
  });
});

describe('endsInNumber', () => {
  const cases: ReadonlyArray<readonly [host: string, expected: boolean]> = [
    ['1.2.3.4', true],
    ['example.com', false],
    ['example.1', true],
    ['example.0x1f', true],
    ['example.0X', true],
    ['example.0x1g', false],
    ['example.1.', true],
    ['example.1..', false],
    ['1.example', false],
    ['', false],
    ['.', false],
    ['123', true],
    ['example.１', true],
    ['example.%31', true],
  ];
  it.each(cases)('%j → %s', (host, expected) => {
    expect(endsInNumber(host)).toBe(expected);
  });
});

describe('formatIp', () => {
  const cases: ReadonlyArray<readonly [bytes: number[], text: string]> = [
    [[127, 0, 0, 1], '127.0.0.1'],
    [[0, 0, 0, 0], '0.0.0.0'],
    [Array(16).fill(0), '::'],
    [[...Array(15).fill(0), 1], '::1'],
    [[1, ...Array(15).fill(0)], '100::'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], '2001:db8:0:1:1:1:1:1'],
    [[0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], '1:0:0:1::1'],
    [[...Array(10).fill(0), 0xff, 0xff, 127, 0, 0, 1], '::ffff:7f00:1'],
  ];
  it.each(cases)('%s → %s', (bytes, text) => {
    expect(formatIp(Uint8Array.from(bytes))).toBe(text);
  });
  it('rejects other lengths', () => {
    expect(() => formatIp(new Uint8Array(5))).toThrow(RangeError);
  });
});

describe('unmapIpv4', () => {
  it('turns a mapped address into its IPv4 address', () => {
    const ip = unmapIpv4(parseIpLiteral('::ffff:10.0.0.1')!);
    expect(ip).toEqual({ family: 4, bytes: Uint8Array.of(10, 0, 0, 1), canonical: '10.0.0.1' });
  });
  it.each(['10.0.0.1', '::1', '::10.0.0.1', '64:ff9b::a00:1', '::fffe:a00:1', '0:0:0:0:1:ffff:a00:1'])(
    'leaves %s unchanged',
    (input) => {
      const ip = parseIpLiteral(input)!;
      expect(unmapIpv4(ip)).toBe(ip);
    },
  );
});
