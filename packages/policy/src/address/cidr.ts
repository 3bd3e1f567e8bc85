import { formatIp, type IpAddress, parseIpLiteral, unmapIpv4 } from './ip-literal.js';

/**
 * An address range from a policy file: `family`, the network `bytes` (host bits zero), the `prefix`
 * length, and `text`, its canonical spelling (`10.0.0.0/8`, `2001:db8::/32`), always with a prefix.
 */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
  readonly text: string;
}

const CANONICAL_IPV4 = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;
const IPV6_TEXT = /^[0-9A-Fa-f:.]+$/;
const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Parses a CIDR written in a policy file: `10.0.0.0/8`, `2001:db8::/32`, or a bare address meaning `/32`
 * or `/128`. Strict, because people write these and a misread range is a hole: it throws `RangeError`,
 * with a message saying what to write instead, for
 *
 * - a prefix out of range (`10.0.0.0/33`) or not plain decimal (`/08`, `/+8`);
 * - host bits set (`10.0.0.1/8`: "did you mean 10.0.0.0/8?");
 * - IPv4 not written as four decimal numbers without leading zeros (`10.1/8`, `010.0.0.0/8`, `0xa.0.0.0/8`),
 *   which network software reads in surprising ways (`010` is octal 8);
 * - brackets, zone ids, whitespace or anything else that is not an address;
 * - an IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`): mapped addresses are matched as IPv4, so write
 *   the IPv4 range (`10.0.0.0/8`), which covers both.
 */
export function parseCidr(input: string): Cidr {
  const slash = input.indexOf('/');
  const addressText = slash === -1 ? input : input.slice(0, slash);
  const prefixText = slash === -1 ? undefined : input.slice(slash + 1);
  const quoted = JSON.stringify(input);

  let ip: IpAddress | undefined;
  if (addressText.includes(':')) {
    // Any valid IPv6 spelling is unambiguous, so accept it (upper case, leading zeros, embedded IPv4).
    ip = IPV6_TEXT.test(addressText) ? parseIpLiteral(addressText) : undefined;
    if (ip === undefined) {
      throw new RangeError(`${quoted} is not a CIDR: ${JSON.stringify(addressText)} is not an IPv6 address`);
    }
  } else {
    ip = parseIpLiteral(addressText);
    if (ip?.family === 6) {
      // Only a Unicode spelling (`：：１`) gets here: ASCII IPv6 always contains `:`.
      throw new RangeError(
        `${quoted} spells an IPv6 address unusually: write it in ASCII, e.g. ${ip.canonical}`,
      );
    }
    if (ip === undefined) {
      throw new RangeError(
        `${quoted} is not a CIDR: expected an IPv4 or IPv6 address such as 10.0.0.0/8 or 2001:db8::/32`,
      );
    }
    if (!CANONICAL_IPV4.test(addressText) || !hasOctetsInRange(addressText)) {
      throw new RangeError(
        `${quoted} spells an IPv4 address unusually: network software reads ${JSON.stringify(addressText)} as ` +
          `${ip.canonical}; write four decimal numbers without leading zeros, e.g. ${ip.canonical}` +
          (prefixText === undefined ? '' : `/${prefixText}`),
      );
    }
  }

  const maxPrefix = ip.family === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (prefixText !== undefined) {
    if (!PREFIX.test(prefixText) || Number(prefixText) > maxPrefix) {
      throw new RangeError(
        `${quoted} has an invalid prefix length ${JSON.stringify(prefixText)}: ` +
          `an IPv${ip.family} prefix is a whole number from 0 to ${maxPrefix}`,
      );
    }
    prefix = Number(prefixText);
  }

  if (ip.family === 6 && unmapIpv4(ip) !== ip && prefix >= 96) {
    const v4 = formatIp(maskBytes(ip.bytes.slice(12, 16), prefix - 96));
    throw new RangeError(
      `${quoted} is an IPv4-mapped range; mapped addresses are matched as IPv4, ` +
        `so write ${v4}/${prefix - 96} (it also covers the mapped addresses)`,
    );
  }

  const network = maskBytes(ip.bytes, prefix);
  const text = `${formatIp(network)}/${prefix}`;
  if (!bytesEqual(network, ip.bytes)) {
    throw new RangeError(
      `${quoted} has host bits set: did you mean ${text} (the network) or ${ip.canonical}/${maxPrefix} ` +
        `(the single address)?`,
    );
  }
  return { family: ip.family, bytes: network, prefix, text };
}

/**
 * True when `ip` lies in `cidr`. An IPv4-mapped IPv6 address is matched as its IPv4 address (a socket
 * given one talks IPv4), so `10.0.0.0/8` contains `::ffff:10.0.0.1`. An IPv4 range never contains any
 * other IPv6 address (NAT64, 6to4: those are special-purpose addresses in their own right).
 */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  assertCidr(cidr);
  const address = unmapIpv4(assertIp(ip));
  if (address.family !== cidr.family) return false;
  const whole = cidr.prefix >>> 3;
  for (let i = 0; i < whole; i += 1) if (address.bytes[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address.bytes[whole]! & mask) === cidr.bytes[whole];
}

interface Entry<T> {
  readonly seq: number;
  readonly value: T;
}

/** The ranges of one prefix length, keyed by their network: a masked number for IPv4, `v6Key` for IPv6. */
interface Level<K, T> {
  readonly prefix: number;
  readonly buckets: Map<K, Entry<T>[]>;
  /** IPv6 prefixes over 32 bits: the networks' first 32 bits, so most misses cost no string key. */
  readonly heads: Set<number>;
}

/**
 * Maps address ranges to values, answering "which values' ranges contain this address" in time
 * proportional to the number of distinct prefix lengths used, not the number of ranges: per family, one
 * Map per prefix length, keyed by the masked address, probed from the longest prefix to the shortest.
 * Built once per policy, queried on every request.
 */
export class CidrIndex<T> {
  // Levels sorted by prefix length, longest first.
  private v4: Level<number, T>[] = [];
  private v6: Level<number | string, T>[] = [];
  private count = 0;

  /**
   * Adds `value` under `cidr`. Throws `RangeError` for a malformed `Cidr` (wrong byte length, prefix out
   * of range, host bits set, an IPv4-mapped range): one would silently never match, which for a deny
   * rule is a hole.
   */
  add(cidr: Cidr, value: T): void {
    assertCidr(cidr);
    if (!bytesEqual(maskBytes(cidr.bytes, cidr.prefix), cidr.bytes)) {
      throw new RangeError(`CIDR ${cidr.text} has host bits set`);
    }
    if (cidr.family === 6 && cidr.prefix >= 96 && isMappedPrefix(cidr.bytes)) {
      throw new RangeError(`CIDR ${cidr.text} is IPv4-mapped: index the IPv4 range instead`);
    }
    const entry: Entry<T> = { seq: this.count, value };
    this.count += 1;
    const head = bytesToUint32(cidr.bytes);
    if (cidr.family === 4) {
      this.v4 = withLevel(this.v4, cidr.prefix);
      pushEntry(findLevel(this.v4, cidr.prefix), head, entry);
    } else {
      this.v6 = withLevel(this.v6, cidr.prefix);
      const level = findLevel(this.v6, cidr.prefix);
      level.heads.add(head);
      pushEntry(level, v6Key(cidr.bytes, cidr.prefix), entry);
    }
  }

  /**
   * Every value whose range contains `ip`, in the order they were added (an IPv4-mapped address is
   * looked up as its IPv4 address). Empty when none does.
   */
  lookup(ip: IpAddress): T[] {
    const address = unmapIpv4(assertIp(ip));
    const head = bytesToUint32(address.bytes);
    let first: Entry<T>[] | undefined;
    let all: Entry<T>[] | undefined;
    const levels: ReadonlyArray<Level<number | string, T>> = address.family === 4 ? this.v4 : this.v6;
    for (const level of levels) {
      const prefix = level.prefix;
      let hit: Entry<T>[] | undefined;
      if (address.family === 4 || prefix <= 32) hit = level.buckets.get(maskUint32(head, prefix));
      else if (level.heads.has(head)) hit = level.buckets.get(v6Key(address.bytes, prefix));
      if (hit === undefined) continue;
      if (first === undefined) {
        first = hit;
      } else {
        // Several buckets hit: gather their entries and restore insertion order below.
        all ??= first.slice();
        for (const entry of hit) all.push(entry);
      }
    }
    if (first === undefined) return [];
    const entries = all === undefined ? first : all.sort((x, y) => x.seq - y.seq);
    return entries.map((entry) => entry.value);
  }

  /** How many ranges have been added (each `add` counts, duplicates included). */
  get size(): number {
    return this.count;
  }
}

/** `levels` with a level for `prefix`, still sorted longest first (a new array only when one is added). */
function withLevel<K, T>(levels: Level<K, T>[], prefix: number): Level<K, T>[] {
  if (levels.some((level) => level.prefix === prefix)) return levels;
  return [...levels, { prefix, buckets: new Map<K, Entry<T>[]>(), heads: new Set<number>() }].sort(
    (a, b) => b.prefix - a.prefix,
  );
}

function findLevel<K, T>(levels: Level<K, T>[], prefix: number): Level<K, T> {
  return levels.find((level) => level.prefix === prefix)!;
}

function pushEntry<K, T>(level: Level<K, T>, key: K, entry: Entry<T>): void {
  const bucket = level.buckets.get(key);
  if (bucket === undefined) level.buckets.set(key, [entry]);
  else bucket.push(entry);
}

/** Rejects hand-built `Cidr` objects that would otherwise compare wrongly. */
function assertCidr(cidr: Cidr): void {
  const length = cidr.family === 4 ? 4 : cidr.family === 6 ? 16 : -1;
  if (cidr.bytes.length !== length) {
    throw new RangeError(`CIDR ${cidr.text} has ${cidr.bytes.length} bytes for IPv${cidr.family}`);
  }
  if (!Number.isInteger(cidr.prefix) || cidr.prefix < 0 || cidr.prefix > length * 8) {
    throw new RangeError(`CIDR ${cidr.text} has an invalid prefix length ${cidr.prefix}`);
  }
}

/** Rejects a hand-built `IpAddress` whose bytes do not fit its family: a silent miss could skip a deny. */
function assertIp(ip: IpAddress): IpAddress {
  if (ip.bytes.length !== (ip.family === 4 ? 4 : ip.family === 6 ? 16 : -1)) {
    throw new RangeError(`IP address ${ip.canonical} has ${ip.bytes.length} bytes for IPv${ip.family}`);
  }
  return ip;
}

function isMappedPrefix(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i += 1) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function hasOctetsInRange(text: string): boolean {
  return text.split('.').every((octet) => Number(octet) <= 255);
}

/** A copy of `bytes` with every bit after the first `prefix` bits cleared. */
function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i += 1) {
    const keep = prefix - i * 8;
    if (keep >= 8) continue;
    out[i] = keep <= 0 ? 0 : out[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

function bytesToUint32(bytes: Uint8Array): number {
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

function maskUint32(n: number, prefix: number): number {
  // A shift by 32 is a shift by 0 in JavaScript, so /0 needs its own case.
  return prefix === 0 ? 0 : (n & (0xffffffff << (32 - prefix))) >>> 0;
}

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The key of an IPv6 network: its first 32 bits masked as a number up to /32 (no string to build),
 * otherwise the hex of the bytes the prefix covers, the last one masked.
 */
function v6Key(bytes: Uint8Array, prefix: number): number | string {
  if (prefix <= 32) return maskUint32(bytesToUint32(bytes), prefix);
  const whole = prefix >>> 3;
  let key = '';
  for (let i = 0; i < whole; i += 1) key += HEX_BYTES[bytes[i]!]!;
  const rest = prefix & 7;
  if (rest !== 0) key += HEX_BYTES[bytes[whole]! & ((0xff << (8 - rest)) & 0xff)]!;
  return key;
}
