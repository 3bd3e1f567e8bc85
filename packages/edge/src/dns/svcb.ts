/**
 * HTTPS and SVCB records (RFC 9460) as the guard passes them on: without the `ech` parameter (key 5),
 * since the edge refuses Encrypted Client Hello and a client told to use it would fail, and with the
 * addresses of `ipv4hint`/`ipv6hint` read out, since a client may dial them like A and AAAA answers.
 * `ech` is also taken out of a `mandatory` list. dns-packet 5 has no codec for these types: their
 * RDATA arrives as bytes and is read here, bounded by its length.
 */
import { formatIp } from '@egress-guard/policy';

const KEY_MANDATORY = 0;
const KEY_IPV4HINT = 4;
const KEY_ECH = 5;
const KEY_IPV6HINT = 6;

/** An HTTPS/SVCB RDATA with `ech` removed, and the hint addresses it carries. */
export interface ServiceBinding {
  rdata: Buffer;
  /** Addresses from ipv4hint and ipv6hint, canonical. */
  hints: string[];
  /** Whether an `ech` parameter was removed. */
  echRemoved: boolean;
}

/** Reads and rewrites one RDATA; undefined when it is malformed (the record is then dropped). */
export function stripEch(rdata: Buffer): ServiceBinding | undefined {
  if (rdata.length < 3) return undefined;
  let offset = 2;
  // TargetName: uncompressed labels (RFC 9460 2.2).
  for (;;) {
    if (offset >= rdata.length) return undefined;
    const len = rdata[offset]!;
    offset++;
    if (len === 0) break;
    if (len > 63 || offset + len > rdata.length) return undefined;
    offset += len;
  }
  const head = rdata.subarray(0, offset);
  const kept: Buffer[] = [head];
  const hints: string[] = [];
  let echRemoved = false;
  let previousKey = -1;
  while (offset < rdata.length) {
    if (offset + 4 > rdata.length) return undefined;
    const key = rdata.readUInt16BE(offset);
    const length = rdata.readUInt16BE(offset + 2);
    const end = offset + 4 + length;
    if (end > rdata.length || key <= previousKey) return undefined;
    previousKey = key;
    const value = rdata.subarray(offset + 4, end);
    if (key === KEY_ECH) {
      echRemoved = true;
    } else if (key === KEY_MANDATORY) {
      if (length % 2 !== 0) return undefined;
      const keys: number[] = [];
      for (let i = 0; i < length; i += 2) keys.push(value.readUInt16BE(i));
      const rest = keys.filter((k) => k !== KEY_ECH);
      if (rest.length !== keys.length) echRemoved = true;
      if (rest.length > 0) {
        const param = Buffer.alloc(4 + rest.length * 2);
        param.writeUInt16BE(KEY_MANDATORY, 0);
        param.writeUInt16BE(rest.length * 2, 2);
        for (const [i, k] of rest.entries()) param.writeUInt16BE(k, 4 + i * 2);
        kept.push(param);
      }
    } else {
      if (key === KEY_IPV4HINT || key === KEY_IPV6HINT) {
        const size = key === KEY_IPV4HINT ? 4 : 16;
        if (length === 0 || length % size !== 0) return undefined;
        for (let i = 0; i < length; i += size) hints.push(formatIp(value.subarray(i, i + size)));
      }
      kept.push(rdata.subarray(offset, end));
    }
    offset = end;
  }
  return { rdata: Buffer.concat(kept), hints, echRemoved };
}
