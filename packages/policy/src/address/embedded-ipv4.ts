import { type IpAddress, parseIpLiteral } from './ip-literal.js';

/**
 * The IPv4 addresses an IPv6 address carries and reaches through a gateway: NAT64 (64:ff9b::/96, the
 * last 32 bits), 6to4 (2002:AABB:CCDD::/48) and Teredo (2001:0::/32: the server, and the client stored
 * inverted). Deny rules written for IPv4 ranges must cover these spellings too.
 */
export function embeddedIpv4(ip: IpAddress): IpAddress[] {
  if (ip.family !== 6) return [];
  const b = ip.bytes;
  const v4 = (bytes: ArrayLike<number>) => parseIpLiteral(Array.from(bytes).join('.'))!;
  if (
    b[0] === 0x00 &&
    b[1] === 0x64 &&
    b[2] === 0xff &&
    b[3] === 0x9b &&
    b.subarray(4, 12).every((x) => x === 0)
  ) {
    return [v4(b.subarray(12, 16))];
  }
  if (b[0] === 0x20 && b[1] === 0x02) return [v4(b.subarray(2, 6))];
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x00 && b[3] === 0x00) {
    return [v4(b.subarray(4, 8)), v4(Array.from(b.subarray(12, 16), (x) => x ^ 0xff))];
  }
  return [];
}
