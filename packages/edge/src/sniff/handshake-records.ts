/** TLS record content types this sniffer cares about. */
export const CONTENT_ALERT = 21;
/** Handshake content type: the only one allowed to carry a hello. */
export const CONTENT_HANDSHAKE = 22;

/** RFC 8446 5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 16384;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;

/** What the record walk found: one whole handshake message, a reason to stop, or a request for bytes. */
export type HandshakeReassembly =
  | { status: 'need-more' }
  | {
      status: 'ok';
      /** The handshake body, without its 4-byte header, reassembled across records. */
      body: Buffer;
      /** The 24-bit length from the handshake header (equals body.length). */
      bodyLength: number;
      /** Version field of the first record. */
      recordVersion: number;
      /** How many records carried the message. */
      records: number;
      /** Bytes of `buf` taken by those records, headers included. */
      consumed: number;
    }
  | {
      status: 'error';
      reason: 'not_tls' | 'malformed' | 'too_large' | 'unsupported_version' | 'alert';
      detail: string;
    };

/** How the walk treats the two directions. */
export interface ReassemblyOptions {
  /** Handshake message type expected first: 1 ClientHello, 2 ServerHello. */
  msgType: number;
  /**
   * Whether more handshake bytes may follow the message inside its last record. Servers coalesce
   * ServerHello with Certificate and friends; a client has nothing to send after its hello until the
   * server answers, so trailing bytes there are refused.
   */
  allowTrailing: boolean;
  /** Whether an alert record is a legitimate answer (the server side) rather than garbage. */
  allowAlert: boolean;
}

/**
 * Walks TLS records from the start of `buf` and reassembles the first handshake message, which may be
 * split over several records and arrive in any number of TCP segments. Never throws; every length is
 * checked against both the buffer and `maxBytes` before use, and the loop advances by at least six bytes
 * per record, so it terminates.
 */
export function reassembleFirstHandshake(
  buf: Buffer,
  maxBytes: number,
  options: ReassemblyOptions,
): HandshakeReassembly {
  const chunks: Buffer[] = [];
  let have = 0;
  // Full message size (header + body) once the 4-byte handshake header has arrived; -1 until then.
  let need = -1;
  let off = 0;
  let records = 0;
  let recordVersion = 0;

  for (;;) {
    if (off + RECORD_HEADER > buf.length) {
      return incomplete(buf, off, chunks, have, maxBytes, options, undefined);
    }
    const type = buf[off]!;
    const version = buf.readUInt16BE(off + 1);
    const len = buf.readUInt16BE(off + 3);

    if (records === 0) {
      const first = checkFirstHeader(type, version, options);
      if (first) return first;
      recordVersion = version;
    } else if (type !== CONTENT_HANDSHAKE && !(type === CONTENT_ALERT && options.allowAlert)) {
      // Anything interleaved before the hello completes is an evasion attempt or a broken peer.
      return malformed(`record ${records + 1} has content type ${type} before the hello is complete`);
    } else if (version !== recordVersion) {
      return malformed(
        `record ${records + 1} version 0x${hex4(version)} differs from the first record's 0x${hex4(recordVersion)}`,
      );
    }

    if (type === CONTENT_ALERT) return alert(buf, off, len);
    if (len === 0) return malformed(`record ${records + 1} is an empty handshake record`);
    if (len > MAX_FRAGMENT) return malformed(`record ${records + 1} length ${len} exceeds 2^14`);
    if (off + RECORD_HEADER + len > maxBytes) {
      return tooLarge(`records up to ${off + RECORD_HEADER + len} bytes exceed the ${maxBytes}-byte cap`);
    }
    if (off + RECORD_HEADER + len > buf.length) {
      const partial = buf.subarray(off + RECORD_HEADER);
      return incomplete(buf, off, chunks, have, maxBytes, options, partial);
    }

    chunks.push(buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len));
    have += len;
    off += RECORD_HEADER + len;
    records += 1;

    if (need < 0 && have >= HANDSHAKE_HEADER) {
      const header = peek(chunks, HANDSHAKE_HEADER);
      const early = checkHandshakeHeader(header, maxBytes, options);
      if (early) return early;
      need = HANDSHAKE_HEADER + readUint24(header, 1);
    }
    if (need >= 0 && have >= need) {
      if (have > need && !options.allowTrailing) {
        return malformed(`${have - need} handshake bytes follow the hello in its last record`);
      }
      const message = Buffer.concat(chunks, have);
      return {
        status: 'ok',
        body: message.subarray(HANDSHAKE_HEADER, need),
        bodyLength: need - HANDSHAKE_HEADER,
        recordVersion,
        records,
        consumed: off,
      };
    }
  }
}

function checkFirstHeader(
  type: number,
  version: number,
  options: ReassemblyOptions,
): HandshakeReassembly | undefined {
  if (type !== CONTENT_HANDSHAKE && !(type === CONTENT_ALERT && options.allowAlert)) {
    return {
      status: 'error',
      reason: 'not_tls',
      detail: `first byte 0x${hex2(type)} is not a TLS handshake`,
    };
  }
  if (version >> 8 !== 3) {
    return { status: 'error', reason: 'not_tls', detail: `record version 0x${hex4(version)} is not TLS` };
  }
  const minor = version & 0xff;
  if (minor === 0) {
    return { status: 'error', reason: 'unsupported_version', detail: 'SSL 3.0 record version 0x0300' };
  }
  if (minor > 4) {
    return { status: 'error', reason: 'not_tls', detail: `record version 0x${hex4(version)} is not TLS` };
  }
  return undefined;
}

function checkHandshakeHeader(
  header: Buffer,
  maxBytes: number,
  options: ReassemblyOptions,
): HandshakeReassembly | undefined {
  const msgType = header[0];
  if (msgType !== undefined && msgType !== options.msgType) {
    return malformed(`first handshake message has type ${msgType}, expected ${options.msgType}`);
  }
  if (header.length < HANDSHAKE_HEADER) return undefined;
  const bodyLength = readUint24(header, 1);
  // Each record adds at least a 5-byte header, so a message this long cannot fit under the cap.
  if (HANDSHAKE_HEADER + bodyLength + RECORD_HEADER > maxBytes) {
    return tooLarge(`handshake message of ${bodyLength} bytes cannot fit in the ${maxBytes}-byte cap`);
  }
  return undefined;
}

/**
 * The records so far do not finish the message. Still check what has arrived (message type, declared
 * length) so garbage and oversized hellos are refused now rather than after the time limit.
 */
function incomplete(
  buf: Buffer,
  off: number,
  chunks: Buffer[],
  have: number,
  maxBytes: number,
  options: ReassemblyOptions,
  partial: Buffer | undefined,
): HandshakeReassembly {
  if (have < HANDSHAKE_HEADER) {
    const all = partial ? [...chunks, partial] : chunks;
    const header = peek(all, HANDSHAKE_HEADER);
    const early = checkHandshakeHeader(header, maxBytes, options);
    if (early) return early;
  }
  // A next record header plus at least one byte must still fit under the cap.
  if (partial === undefined && off + RECORD_HEADER + 1 > maxBytes) {
    return tooLarge(`hello not complete within the ${maxBytes}-byte cap`);
  }
  if (buf.length >= maxBytes) return tooLarge(`hello not complete within the ${maxBytes}-byte cap`);
  return { status: 'need-more' };
}

function alert(buf: Buffer, off: number, len: number): HandshakeReassembly {
  // An alert is exactly level + description; anything else is not a real alert.
  if (len !== 2) return malformed(`alert record of length ${len}`);
  if (off + RECORD_HEADER + 2 > buf.length) return { status: 'need-more' };
  const level = buf[off + RECORD_HEADER]!;
  const description = buf[off + RECORD_HEADER + 1]!;
  return { status: 'error', reason: 'alert', detail: `description=${description} level=${level}` };
}

/** Copies up to `n` leading bytes out of a list of chunks. */
function peek(chunks: Buffer[], n: number): Buffer {
  const out: number[] = [];
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length && out.length < n; i++) out.push(chunk[i]!);
    if (out.length >= n) break;
  }
  return Buffer.from(out);
}

/** Reads a big-endian 24-bit integer; the caller guarantees three bytes at `at`. */
export function readUint24(buf: Buffer, at: number): number {
  return (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
}

function malformed(detail: string): HandshakeReassembly {
  return { status: 'error', reason: 'malformed', detail };
}

function tooLarge(detail: string): HandshakeReassembly {
  return { status: 'error', reason: 'too_large', detail };
}

/** Two hex digits, for messages. */
export function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Four hex digits, for messages. */
export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
