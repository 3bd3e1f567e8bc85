import {
  CONTENT_ALERT,
  CONTENT_HANDSHAKE,
  hex2,
  hex4,
  reassembleFirstHandshake,
} from './handshake-records.js';

/** Outcome of {@link parseServerHello}. */
export type ServerHelloParse =
  | { status: 'need-more' }
  | {
      status: 'ok';
      /** From the supported_versions extension when present (how TLS 1.3 is signalled), else server_version. */
      selectedVersion: number;
      cipherSuite: number;
      /** The ALPN protocol the server selected, if any. */
      alpn?: string;
      /**
       * True for a HelloRetryRequest (TLS 1.3 only): the client will send a second ClientHello, which
       * the filter should check like the first.
       */
      helloRetryRequest?: boolean;
    }
  | { status: 'error'; reason: 'not_tls' | 'malformed' | 'too_large' | 'alert'; detail: string };

const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const TLS13 = 0x0304;

/** RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello whose random is SHA-256("HelloRetryRequest"). */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

/**
 * Parses the ServerHello at the start of everything the server has sent so far, reassembled across
 * records and TCP segments, so the edge can enforce the TLS version floor on the version actually
 * negotiated. An alert instead of a hello is reported as `alert` with `description=<code> level=<level>`
 * in `detail`. Handshake messages after the ServerHello in the same record (TLS 1.2 servers send
 * Certificate and friends there) are ignored. Never throws.
 *
 * @param buf All bytes received from the server so far.
 * @param maxBytes Cap on the bytes of the records carrying the ServerHello.
 */
export function parseServerHello(buf: Buffer, maxBytes = 16384): ServerHelloParse {
  const first = buf[0];
  if (first === undefined) return { status: 'need-more' };
  if (first !== CONTENT_HANDSHAKE && first !== CONTENT_ALERT) {
    return {
      status: 'error',
      reason: 'not_tls',
      detail: `first byte 0x${hex2(first)} is not a TLS handshake`,
    };
  }
  const framed = reassembleFirstHandshake(buf, maxBytes, {
    msgType: 2,
    allowTrailing: true,
    allowAlert: true,
  });
  if (framed.status === 'need-more') return framed;
  if (framed.status === 'error') {
    // A server answering with SSL 3.0 is below any floor; report it as unparseable rather than widen the type.
    const reason = framed.reason === 'unsupported_version' ? 'malformed' : framed.reason;
    return { status: 'error', reason, detail: framed.detail };
  }
  return parseBody(framed.body);
}

function parseBody(body: Buffer): ServerHelloParse {
  const end = body.length;
  let p = 0;
  if (p + 2 + 32 + 1 > end) return bad('ServerHello too short');
  const serverVersion = body.readUInt16BE(p);
  p += 2;
  if (serverVersion >> 8 !== 3) return bad(`server_version 0x${hex4(serverVersion)} is not TLS`);
  const hrr = body.subarray(p, p + 32).equals(HRR_RANDOM);
  p += 32;
  const sessionIdLength = body[p]!;
  p += 1;
  if (sessionIdLength > 32) return bad(`session_id length ${sessionIdLength} exceeds 32`);
  p += sessionIdLength;
  if (p + 3 > end) return bad('ServerHello too short for cipher_suite and compression_method');
  const cipherSuite = body.readUInt16BE(p);
  const compression = body[p + 2]!;
  p += 3;
  if (compression !== 0) return bad(`compression_method ${compression} is not null`);

  let selectedVersion = serverVersion;
  let alpn: string | undefined;
  if (p < end) {
    if (p + 2 > end) return bad('ServerHello too short for the extensions length');
    const extensionsLength = body.readUInt16BE(p);
    p += 2;
    if (p + extensionsLength !== end) return bad('extensions length does not match the ServerHello length');
    const seen = new Set<number>();
    while (p < end) {
      if (p + 4 > end) return bad('truncated extension header');
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      p += 4;
      if (p + len > end) return bad(`extension 0x${hex4(type)} overruns the ServerHello`);
      if (seen.has(type)) return bad(`duplicate extension 0x${hex4(type)}`);
      seen.add(type);
      const data = body.subarray(p, p + len);
      p += len;
      if (type === EXT_SUPPORTED_VERSIONS) {
        if (len !== 2) return bad(`supported_versions of length ${len} in ServerHello`);
        selectedVersion = data.readUInt16BE(0);
        // The extension only ever negotiates TLS 1.3 or later (RFC 8446 4.2.1); anything else is forged.
        if (selectedVersion >> 8 !== 3 || selectedVersion < TLS13) {
          return bad(`supported_versions selects 0x${hex4(selectedVersion)}`);
        }
      } else if (type === EXT_ALPN) {
        // The server selects exactly one protocol: list length, name length, name.
        if (len < 4 || data.readUInt16BE(0) !== len - 2 || data[2] !== len - 3) {
          return bad('ALPN in ServerHello is not exactly one protocol');
        }
        alpn = data.subarray(3).toString('latin1');
      }
    }
  }
  if (hrr && selectedVersion !== TLS13) return bad('HelloRetryRequest without TLS 1.3 in supported_versions');

  const result: ServerHelloParse = { status: 'ok', selectedVersion, cipherSuite };
  if (alpn !== undefined) result.alpn = alpn;
  if (hrr) result.helloRetryRequest = true;
  return result;
}

function bad(detail: string): ServerHelloParse {
  return { status: 'error', reason: 'malformed', detail };
}
