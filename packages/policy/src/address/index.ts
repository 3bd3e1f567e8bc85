/**
 * Address handling shared by the SDK and the edge: IP literals in every spelling a client accepts,
 * CIDR ranges and a fast range index, and the IANA special-purpose registries.
 */
export { type Cidr, CidrIndex, cidrContains, parseCidr } from './cidr.js';
export { embeddedIpv4 } from './embedded-ipv4.js';
export { endsInNumber, formatIp, type IpAddress, parseIpLiteral, unmapIpv4 } from './ip-literal.js';
export { isSpecialPurpose, type SpecialRange, specialPurposeRange } from './special-purpose.js';
