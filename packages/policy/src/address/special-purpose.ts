import { CidrIndex, parseCidr } from './cidr.js';
import { formatIp, type IpAddress, unmapIpv4 } from './ip-literal.js';

/** The special-purpose range an address falls in: its CIDR and a short name for messages and events. */
export interface SpecialRange {
  readonly cidr: string;
  readonly name: string;
}

/** How to name an address that carries an IPv4 address inside an IPv6 one. */
type Embedding = 'mapped' | 'compatible' | 'nat64' | '6to4' | 'teredo';

interface RangeEntry {
  readonly prefix: number;
  readonly range: SpecialRange;
  readonly embedding?: Embedding;
}

/**
 * The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and later updates), plus the
 * cloud metadata address. All of it, including the few entries IANA marks globally reachable (AS112,
 * AMT, anycast): no legitimate egress destination lives there, and denying is the safe side. The most
 * specific range wins, so nested entries name the address precisely.
 */
const RANGES: ReadonlyArray<readonly [cidr: string, name: string, embedding?: Embedding]> = [
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

  // IPv6: everything outside global unicast 2000::/3 is reserved unless listed more specifically.
  ['::/3', 'reserved'],
  ['4000::/2', 'reserved'],
  ['8000::/1', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'ipv4-compatible', 'compatible'],
  ['::ffff:0:0/96', 'ipv4-mapped', 'mapped'],
  ['64:ff9b::/96', 'nat64', 'nat64'],
  ['64:ff9b:1::/48', 'nat64-local-use'],
  ['100::/64', 'discard-only'],
  ['100:0:0:1::/64', 'dummy-ipv6-prefix'],
  ['2001::/23', 'ietf-protocol-assignments'],
  ['2001::/32', 'teredo', 'teredo'],
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
  ['2002::/16', '6to4', '6to4'],
  ['2620:4f:8000::/48', 'direct-delegation-as112'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'segment-routing-sids'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'deprecated-site-local'],
  ['ff00::/8', 'multicast'],
];

const INDEX = buildIndex();

function buildIndex(): CidrIndex<RangeEntry> {
  const index = new CidrIndex<RangeEntry>();
  for (const [text, name, embedding] of RANGES) {
    // The mapped range cannot be indexed (lookups unmap first); it is handled before the lookup.
    if (embedding === 'mapped') continue;
    const cidr = parseCidr(text);
    const range: SpecialRange = Object.freeze({ cidr: cidr.text, name });
    index.add(cidr, { prefix: cidr.prefix, range, embedding });
  }
  return index;
}

const MAPPED: SpecialRange = Object.freeze({ cidr: '::ffff:0:0/96', name: 'ipv4-mapped' });

/**
 * The most specific special-purpose range containing `ip`, or undefined for an ordinary global unicast
 * address (8.8.8.8, 2606:4700::1111).
 *
 * Pass the address as it will be dialled, not unmapped: an IPv4-mapped address (`::ffff:a.b.c.d`) is
 * always special-purpose, whatever it embeds, and is named with the embedded address
 * (`ipv4-mapped (127.0.0.1)`). NAT64, 6to4, Teredo and IPv4-compatible addresses name theirs too
 * (`nat64 (127.0.0.1)`, `teredo (server 65.54.227.120, client 192.0.2.45)`), since those reach IPv4 hosts through a gateway.
 */
export function specialPurposeRange(ip: IpAddress): SpecialRange | undefined {
  if (ip.family === 6 && unmapIpv4(ip) !== ip) {
    return { cidr: MAPPED.cidr, name: `${MAPPED.name} (${formatIp(ip.bytes.subarray(12, 16))})` };
  }
  let best: RangeEntry | undefined;
  for (const entry of INDEX.lookup(ip)) if (best === undefined || entry.prefix > best.prefix) best = entry;
  if (best === undefined) return undefined;
  if (best.embedding === undefined) return best.range;
  return {
    cidr: best.range.cidr,
    name: `${best.range.name} (${describeEmbedded(ip.bytes, best.embedding)})`,
  };
}

/** True when `ip` is in any special-purpose range; see {@link specialPurposeRange}. */
export function isSpecialPurpose(ip: IpAddress): boolean {
  return specialPurposeRange(ip) !== undefined;
}

function describeEmbedded(bytes: Uint8Array, embedding: Embedding): string {
  switch (embedding) {
    case '6to4':
      // 2002:AABB:CCDD::/48 is the 6to4 site of IPv4 AA.BB.CC.DD (RFC 3056).
      return formatIp(bytes.subarray(2, 6));
    case 'teredo': {
      // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, the client address stored inverted (RFC 4380).
      const client = bytes.slice(12, 16).map((b) => b ^ 0xff);
      return `server ${formatIp(bytes.subarray(4, 8))}, client ${formatIp(client)}`;
    }
    default:
      // Mapped, IPv4-compatible and NAT64 /96 all keep the IPv4 address in the last 32 bits.
      return formatIp(bytes.subarray(12, 16));
  }
}
