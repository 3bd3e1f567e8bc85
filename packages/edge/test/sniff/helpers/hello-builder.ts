/** Hand-built TLS messages for cases real clients will not produce. */

const u8 = (n: number) => Buffer.from([n & 0xff]);
const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
/** A vector with an 8-bit length prefix. */
export const vec8 = (b: Buffer) => Buffer.concat([u8(b.length), b]);
/** A vector with a 16-bit length prefix. */
export const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
export { u8, u16, u24 };

/** One extension: type, then its data with a 16-bit length. */
export const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), vec16(data)]);

/** server_name with the given host_name entries (raw strings, latin1). */
export const sniExt = (...names: string[]) =>
  ext(0, vec16(Buffer.concat(names.map((n) => Buffer.concat([u8(0), vec16(Buffer.from(n, 'latin1'))])))));

export const alpnExt = (...protocols: string[]) =>
  ext(0x10, vec16(Buffer.concat(protocols.map((p) => vec8(Buffer.from(p, 'latin1'))))));

export const supportedVersionsExt = (...versions: number[]) =>
  ext(0x2b, vec8(Buffer.concat(versions.map((v) => u16(v)))));

/** key_share with one entry of `size` bytes for `group` (0x11ec is X25519MLKEM768, 1216 bytes). */
export const keyShareExt = (group: number, size: number) =>
  ext(0x33, vec16(Buffer.concat([u16(group), vec16(Buffer.alloc(size, 0x42))])));

export const supportedGroupsExt = (...groups: number[]) =>
  ext(0x0a, vec16(Buffer.concat(groups.map((g) => u16(g)))));

export const sigAlgsExt = () =>
  ext(0x0d, vec16(Buffer.concat([0x0403, 0x0804, 0x0401, 0x0503].map((a) => u16(a)))));

export interface HelloOptions {
  legacyVersion?: number;
  sessionId?: Buffer;
  cipherSuites?: number[];
  compression?: number[];
  /** Raw extension blocks (use the helpers above); `null` omits the extensions vector entirely. */
  extensions?: Buffer[] | null;
}

/** A ClientHello handshake message (type, 24-bit length, body). */
export function buildClientHello(options: HelloOptions = {}): Buffer {
  const body = Buffer.concat([
    u16(options.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0x11),
    vec8(options.sessionId ?? Buffer.alloc(32, 0x22)),
    vec16(Buffer.concat((options.cipherSuites ?? [0x1301, 0x1302, 0xc02f]).map((c) => u16(c)))),
    vec8(Buffer.from(options.compression ?? [0])),
    options.extensions === null ? Buffer.alloc(0) : vec16(Buffer.concat(options.extensions ?? [])),
  ]);
  return Buffer.concat([u8(1), u24(body.length), body]);
}

/** A typical TLS 1.3 hello, optionally with more extensions appended. */
export function modernHello(sni: string | undefined, extra: Buffer[] = []): Buffer {
  return buildClientHello({
    extensions: [
      ...(sni === undefined ? [] : [sniExt(sni)]),
      alpnExt('h2', 'http/1.1'),
      supportedGroupsExt(0x1d, 0x17),
      sigAlgsExt(),
      supportedVersionsExt(0x0304, 0x0303),
      keyShareExt(0x1d, 32),
      ...extra,
    ],
  });
}

/** Wraps a handshake message in records of the given fragment sizes (the last one takes the rest). */
export function frame(
  message: Buffer,
  sizes: number[] = [],
  recordVersion = 0x0301,
  contentType = 22,
): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (const size of sizes) {
    if (off >= message.length) break;
    const piece = message.subarray(off, Math.min(message.length, off + size));
    out.push(record(contentType, recordVersion, piece));
    off += piece.length;
  }
  while (off < message.length) {
    const piece = message.subarray(off, Math.min(message.length, off + 16384));
    out.push(record(contentType, recordVersion, piece));
    off += piece.length;
  }
  return Buffer.concat(out);
}

/** One TLS record. */
export function record(contentType: number, version: number, fragment: Buffer): Buffer {
  return Buffer.concat([u8(contentType), u16(version), vec16(fragment)]);
}

/** Splits a stream of records back into the handshake bytes they carry (test-side, trusting input). */
export function unframe(bytes: Buffer): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  while (off + 5 <= bytes.length) {
    const len = bytes.readUInt16BE(off + 3);
    out.push(bytes.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return Buffer.concat(out);
}
