import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  type IpAddress,
  isSpecialPurpose,
  parseCidr,
  parseIpLiteral,
  specialPurposeRange,
} from '../../src/address/index.js';

/** The registry as this test expects it: every range, the most specific one naming an address. */
const REGISTRY: ReadonlyArray<readonly [cidr: string, name: string]> = [
  ['0.0.0.0/8', 'this-network'],
  ['0.0.0.0/32', 'unspecified'],
  ['10.0.0.0/8', 'private-use'],
  ['100.64.0.0/10', 'shared-address-space (cgnat)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['169.254.169.254/32', 'link-local (cloud metadata)'],
  ['172.16.0.0/12', 'private-use'],
  ['192.0.0.0/24', 'ietf-protocol-assignments'],
  ['192.0.0.0/29', 'ipv4-service-continuity (ds-lite)'],
  ['192.0.0.8/32', 'ipv4-dummy-address'],
  ['192.0.0.9/32', 'port-control-protocol-anycast'],
  ['192.0.0.10/32', 'traversal-using-relays-anycast'],
  ['192.0.0.170/31', 'nat64-discovery'],
  ['192.0.2.0/24', 'documentation (test-net-1)'],
  ['192.31.196.0/24', 'as112-v4'],
  ['192.52.193.0/24', 'amt'],
  ['192.88.99.0/24', 'deprecated-6to4-relay-anycast'],
  ['192.168.0.0/16', 'private-use'],
  ['192.175.48.0/24', 'direct-delegation-as112'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (test-net-2)'],
  ['203.0.113.0/24', 'documentation (test-net-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['255.255.255.255/32', 'limited-broadcast'],
  ['::/3', 'reserved'],
  ['4000::/2', 'reserved'],
  ['8000::/1', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'ipv4-compatible'],
  ['64:ff9b::/96', 'nat64'],
  ['64:ff9b:1::/48', 'nat64-local-use'],
  ['100::/64', 'discard-only'],
  ['100:0:0:1::/64', 'dummy-ipv6-prefix'],
  ['2001::/23', 'ietf-protocol-assignments'],
  ['2001::/32', 'teredo'],
  ['2001:1::1/128', 'port-control-protocol-anycast'],
  ['2001:1::2/128', 'traversal-using-relays-anycast'],
  ['2001:1::3/128', 'dns-sd-service-registration-anycast'],
  ['2001:2::/48', 'benchmarking'],
  ['2001:3::/32', 'amt'],
  ['2001:4:112::/48', 'as112-v6'],
  ['2001:10::/28', 'deprecated-orchid'],
  ['2001:20::/28', 'orchid-v2'],
  ['2001:30::/28', 'drone-remote-id'],
  ['2001:db8::/32', 'documentation'],
  ['2002::/16', '6to4'],
  ['2620:4f:8000::/48', 'direct-delegation-as112'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'segment-routing-sids'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'deprecated-site-local'],
  ['ff00::/8', 'multicast'],
];

function ip(text: string): IpAddress {
  const parsed = parseIpLiteral(text);
  if (parsed === undefined) throw new Error(`test bug: ${text}`);
  return parsed;
}

function fromBytes(bytes: Uint8Array): IpAddress {
  return ip(
    bytes.length === 4
      ? [...bytes].join('.')
      : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(
          ':',
        ),
  );
}

function isMapped(address: IpAddress): boolean {
  return address.family === 6 && address.bytes.slice(0, 12).every((b, i) => (i < 10 ? b === 0 : b === 0xff));
}

/** Brute force over the expected registry: the most specific containing range. */
function expectedRange(address: IpAddress): string | undefined {
  if (isMapped(address)) return '::ffff:0:0/96';
  let best: { text: string; prefix: number } | undefined;
  for (const [text] of REGISTRY) {
    const cidr = parseCidr(text);
    if (cidrContains(cidr, address) && (best === undefined || cidr.prefix > best.prefix)) best = cidr;
  }
  return best?.text;
}

/** `bytes` plus `delta` (±1) as a big-endian number, or undefined on wrap-around. */
function step(bytes: Uint8Array, delta: 1 | -1): Uint8Array | undefined {
  const out = bytes.slice();
  for (let i = out.length - 1; i >= 0; i -= 1) {
    const v = out[i]! + delta;
    out[i] = v & 0xff;
    if (v >= 0 && v <= 0xff) return out;
  }
  return undefined;
}

function edges(text: string): { first: Uint8Array; last: Uint8Array } {
  const cidr = parseCidr(text);
  const last = cidr.bytes.slice();
  for (let i = 0; i < last.length; i += 1) {
    const keep = cidr.prefix - i * 8;
    if (keep < 8) last[i] = last[i]! | (keep <= 0 ? 0xff : 0xff >> keep);
  }
  return { first: cidr.bytes, last };
}

describe('specialPurposeRange: every range, first and last address in, neighbours just outside', () => {
  it.each(REGISTRY)('%s (%s)', (text, name) => {
    const { first, last } = edges(text);
    for (const inside of [first, last]) {
      const address = fromBytes(inside);
      const range = specialPurposeRange(address);
      expect(isSpecialPurpose(address)).toBe(true);
      // The address is in this range, or in a more specific one inside it.
      expect(cidrContains(parseCidr(range!.cidr), address)).toBe(true);
      expect(range!.cidr).toBe(expectedRange(address));
      expect(parseCidr(range!.cidr).prefix).toBeGreaterThanOrEqual(parseCidr(text).prefix);
      // Ranges that carry IPv4 name it in brackets after the range's name.
      if (range!.cidr === text) {
        expect(range!.name === name || range!.name.startsWith(`${name} (`), range!.name).toBe(true);
      }
    }
    for (const outside of [step(first, -1), step(last, 1)]) {
      if (outside === undefined) continue;
      const address = fromBytes(outside);
      const range = specialPurposeRange(address);
      expect(range?.cidr).toBe(expectedRange(address));
      expect(range?.cidr).not.toBe(text);
    }
  });
});

describe('specialPurposeRange: named addresses', () => {
  const cases: ReadonlyArray<readonly [address: string, cidr: string, name: string]> = [
    ['0', '0.0.0.0/32', 'unspecified'],
    ['0.0.0.0', '0.0.0.0/32', 'unspecified'],
    ['0.1.2.3', '0.0.0.0/8', 'this-network'],
    ['::', '::/128', 'unspecified'],
    ['127.1', '127.0.0.0/8', 'loopback'],
    ['0x7f.1', '127.0.0.0/8', 'loopback'],
    ['2130706433', '127.0.0.0/8', 'loopback'],
    ['017700000001', '127.0.0.0/8', 'loopback'],
    ['::1', '::1/128', 'loopback'],
    ['169.254.169.254', '169.254.169.254/32', 'link-local (cloud metadata)'],
    ['0xa9fea9fe', '169.254.169.254/32', 'link-local (cloud metadata)'],
    ['169.254.0.1', '169.254.0.0/16', 'link-local'],
    ['100.100.100.200', '100.64.0.0/10', 'shared-address-space (cgnat)'],
    ['fd00:ec2::254', 'fc00::/7', 'unique-local'],
    ['fe80::1%eth0', 'fe80::/10', 'link-local'],
    ['::ffff:127.0.0.1', '::ffff:0:0/96', 'ipv4-mapped (127.0.0.1)'],
    ['::ffff:7f00:1', '::ffff:0:0/96', 'ipv4-mapped (127.0.0.1)'],
    ['[::ffff:7f00:1]', '::ffff:0:0/96', 'ipv4-mapped (127.0.0.1)'],
    ['::ffff:8.8.8.8', '::ffff:0:0/96', 'ipv4-mapped (8.8.8.8)'],
    ['::ffff:0:0', '::ffff:0:0/96', 'ipv4-mapped (0.0.0.0)'],
    ['::ffff:255.255.255.255', '::ffff:0:0/96', 'ipv4-mapped (255.255.255.255)'],
    ['::fffe:ffff:ffff', '::/3', 'reserved'],
    ['::1:0:0:0', '::/3', 'reserved'],
    ['::7f00:1', '::/96', 'ipv4-compatible (127.0.0.1)'],
    ['64:ff9b::7f00:1', '64:ff9b::/96', 'nat64 (127.0.0.1)'],
    ['64:ff9b::8.8.8.8', '64:ff9b::/96', 'nat64 (8.8.8.8)'],
    ['64:ff9b:1::1', '64:ff9b:1::/48', 'nat64-local-use'],
    ['2002:7f00:1::', '2002::/16', '6to4 (127.0.0.1)'],
    ['2002:a9fe:a9fe::1', '2002::/16', '6to4 (169.254.169.254)'],
    // RFC 4380 section 4's example: server 65.54.227.120, client 192.0.2.45 (stored inverted).
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001::/32', 'teredo (server 65.54.227.120, client 192.0.2.45)'],
    ['2001:db8::1', '2001:db8::/32', 'documentation'],
    ['2001:10::1', '2001:10::/28', 'deprecated-orchid'],
    ['2001:20::1', '2001:20::/28', 'orchid-v2'],
    ['2001:1ff::1', '2001::/23', 'ietf-protocol-assignments'],
    ['100::1', '100::/64', 'discard-only'],
    ['ff02::1', 'ff00::/8', 'multicast'],
    ['fec0::1', 'fec0::/10', 'deprecated-site-local'],
    ['1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::/3', 'reserved'],
    ['4000::', '4000::/2', 'reserved'],
    ['e000::1', '8000::/1', 'reserved'],
    ['0:0:0:0:1:ffff:a00:1', '::/3', 'reserved'],
    ['224.0.0.1', '224.0.0.0/4', 'multicast'],
    ['255.255.255.255', '255.255.255.255/32', 'limited-broadcast'],
    ['255.255.255.254', '240.0.0.0/4', 'reserved'],
  ];
  it.each(cases)('%s is %s %s', (address, cidr, name) => {
    expect(specialPurposeRange(ip(address))).toEqual({ cidr, name });
    expect(isSpecialPurpose(ip(address))).toBe(true);
  });
});

describe('specialPurposeRange: public addresses are not special', () => {
  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '9.255.255.255',
    '11.0.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '169.253.255.255',
    '169.255.0.0',
    '172.15.255.255',
    '172.32.0.0',
    '192.0.1.0',
    '192.167.255.255',
    '192.169.0.0',
    '198.17.255.255',
    '198.20.0.0',
    '223.255.255.255',
    '2606:4700::1111',
    '2001:4860:4860::8888',
    '2000::',
    '2001:200::',
    '2003::1',
    '3ffe::1',
    '3fff:1000::',
  ])('%s', (address) => {
    expect(specialPurposeRange(ip(address))).toBeUndefined();
    expect(isSpecialPurpose(ip(address))).toBe(false);
  });
});
