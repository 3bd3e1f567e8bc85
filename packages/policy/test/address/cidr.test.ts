import { describe, expect, it } from 'vitest';
import { type Cidr, cidrContains, parseCidr, parseIpLiteral } from '../../src/address/index.js';

describe('parseCidr: accepted', () => {
  const cases: ReadonlyArray<readonly [input: string, text: string, family: 4 | 6, prefix: number]> = [
    ['10.0.0.0/8', '10.0.0.0/8', 4, 8],
    ['169.254.169.254/32', '169.254.169.254/32', 4, 32],
    ['169.254.169.254', '169.254.169.254/32', 4, 32],
    ['0.0.0.0/0', '0.0.0.0/0', 4, 0],
    ['192.168.1.128/25', '192.168.1.128/25', 4, 25],
    ['255.255.255.255/32', '255.255.255.255/32', 4, 32],
    ['::/0', '::/0', 6, 0],
    ['::1', '::1/128', 6, 128],
    ['2001:db8::/32', '2001:db8::/32', 6, 32],
    ['2001:DB8:0000::/32', '2001:db8::/32', 6, 32],
    ['fe80::/10', 'fe80::/10', 6, 10],
    ['64:ff9b::10.0.0.0/104', '64:ff9b::a00:0/104', 6, 104],
    ['::/64', '::/64', 6, 64],
    ['2001:db8::8000/113', '2001:db8::8000/113', 6, 113],
  ];
  it.each(cases)('%s → %s', (input, text, family, prefix) => {
    const cidr = parseCidr(input);
    expect(cidr).toMatchObject({ text, family, prefix });
    expect(cidr.bytes.length).toBe(family === 4 ? 4 : 16);
  });
});

describe('parseCidr: refused with a clear RangeError', () => {
  const cases: ReadonlyArray<readonly [input: string, message: RegExp]> = [
    ['10.0.0.0/33', /prefix length "33".*0 to 32/],
    ['::/129', /prefix length "129".*0 to 128/],
    ['10.0.0.0/-1', /prefix length "-1"/],
    ['10.0.0.0/08', /prefix length "08"/],
    ['10.0.0.0/+8', /prefix length "\+8"/],
    ['10.0.0.0/', /prefix length ""/],
    ['10.0.0.0/8/8', /prefix length "8\/8"/],
    ['10.0.0.0/ 8', /prefix length " 8"/],
    ['10.0.0.0/8.0', /prefix length "8.0"/],
    ['10.0.0.1/8', /host bits set: did you mean 10\.0\.0\.0\/8 .* or 10\.0\.0\.1\/32/],
    ['192.168.1.1/24', /did you mean 192\.168\.1\.0\/24/],
    ['2001:db8::1/32', /did you mean 2001:db8::\/32 .* or 2001:db8::1\/128/],
    ['10.1/8', /reads "10\.1" as 10\.0\.0\.1; write four decimal numbers/],
    ['010.0.0.0/8', /reads "010\.0\.0\.0" as 8\.0\.0\.0/],
    ['0xa.0.0.0/8', /reads "0xa\.0\.0\.0" as 10\.0\.0\.0/],
    ['167772160/8', /reads "167772160" as 10\.0\.0\.0/],
    ['10.0.0.0./8', /reads "10\.0\.0\.0\." as 10\.0\.0\.0/],
    ['１０.0.0.0/8', /reads "１０\.0\.0\.0" as 10\.0\.0\.0/],
    ['256.0.0.0/8', /not a CIDR/],
    ['1.2.3.4.5/32', /not a CIDR/],
    ['example.com/32', /not a CIDR/],
    ['', /not a CIDR/],
    ['/8', /not a CIDR/],
    [' 10.0.0.0/8', /not a CIDR/],
    ['10.0.0.0/8 ', /prefix length "8 "/],
    ['[::1]/128', /not a CIDR/],
    ['[::1]', /not a CIDR/],
    ['fe80::1%eth0/128', /not an IPv6 address/],
    ['：：１/128', /write it in ASCII, e\.g\. ::1/],
    ['1::2::3/64', /not an IPv6 address/],
    ['::ffff:10.0.0.0/104', /IPv4-mapped range.*write 10\.0\.0\.0\/8/],
    ['::ffff:0:0/96', /IPv4-mapped range.*write 0\.0\.0\.0\/0/],
    ['::ffff:10.0.0.1/128', /IPv4-mapped range.*write 10\.0\.0\.1\/32/],
  ];
  it.each(cases)('%j', (input, message) => {
    expect(() => parseCidr(input)).toThrow(RangeError);
    expect(() => parseCidr(input)).toThrow(message);
  });
});

describe('cidrContains', () => {
  const cases: ReadonlyArray<readonly [cidr: string, address: string, contained: boolean]> = [
    ['10.0.0.0/8', '10.0.0.0', true],
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['10.0.0.0/8', '012.1', true], // octal 10.0.0.1
    ['10.0.0.0/8', '167772161', true],
    // IPv4-mapped addresses are matched as IPv4 (allow and deny rules alike).
    ['10.0.0.0/8', '::ffff:10.0.0.1', true],
    ['10.0.0.0/8', '[::ffff:a00:1]', true],
    ['10.0.0.0/8', '::ffff:11.0.0.1', false],
    ['::/0', '::ffff:10.0.0.1', false],
    ['0.0.0.0/0', '::ffff:10.0.0.1', true],
    // Other IPv6 forms of an IPv4 address are IPv6 addresses of their own.
    ['10.0.0.0/8', '::10.0.0.1', false],
    ['10.0.0.0/8', '64:ff9b::10.0.0.1', false],
    ['10.0.0.0/8', '2002:a00:1::', false],
    ['0.0.0.0/0', '::1', false],
    ['::/0', '10.0.0.1', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['::/0', '2001:db8::1', true],
    ['192.168.1.128/25', '192.168.1.127', false],
    ['192.168.1.128/25', '192.168.1.128', true],
    ['192.168.1.128/25', '192.168.1.255', true],
    ['2001:db8::8000/113', '2001:db8::7fff', false],
    ['2001:db8::8000/113', '2001:db8::ffff', true],
    ['fe80::/10', 'febf:ffff::1', true],
    ['fe80::/10', 'fec0::', false],
    ['::1/128', '::1', true],
    ['::1/128', '::2', false],
    ['169.254.169.254/32', '169.254.169.254', true],
    ['169.254.169.254/32', '169.254.169.253', false],
  ];
  it.each(cases)('%s contains %s: %s', (cidr, address, contained) => {
    expect(cidrContains(parseCidr(cidr), parseIpLiteral(address)!)).toBe(contained);
  });

  it('refuses a malformed hand-built Cidr instead of guessing', () => {
    const bad: Cidr = { family: 4, bytes: new Uint8Array(16), prefix: 8, text: 'bad' };
    expect(() => cidrContains(bad, parseIpLiteral('10.0.0.1')!)).toThrow(RangeError);
    const badPrefix: Cidr = { family: 4, bytes: new Uint8Array(4), prefix: 33, text: 'bad' };
    expect(() => cidrContains(badPrefix, parseIpLiteral('10.0.0.1')!)).toThrow(RangeError);
  });
});
