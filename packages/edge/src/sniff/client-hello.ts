import { CONTENT_HANDSHAKE, hex2, hex4, reassembleFirstHandshake } from './handshake-records.js';
import { hostNameProblem } from './host-syntax.js';

/** What the filter needs from a ClientHello. Values are as sent; GREASE values are kept. */
export interface ClientHelloInfo {
  /** The first host_name entry of server_name, exactly as sent (lower-casing is the caller's). */
  serverName: string | undefined;
  /** How many host_name entries server_name carried; more than one is legal on the wire but suspicious. */
  serverNameCount: number;
  /** Every host_name entry of server_name, in order, as sent (RFC 6066 allows one; the edge refuses more). */
  serverNames: string[];
  /** ALPN protocol names in the client's order, decoded byte for byte (latin1). */
  alpn: string[];
  /** The supported_versions extension's list (e.g. 0x0304), empty when the extension is absent. */
  supportedVersions: number[];
  /** client_version in the hello body (0x0303 for TLS 1.2 and 1.3 clients). */
  legacyVersion: number;
  /** Version field of the first record that carried the hello. */
  recordVersion: number;
  /** Whether the encrypted_client_hello extension (0xfe0d) is present: the SNI is then the outer name. */
  hasEch: boolean;
  /** Extension types in the order sent. */
  extensionTypes: number[];
  /** Cipher suites in the order sent. */
  cipherSuites: number[];
  /** How many TLS records carried the hello (more than one means record fragmentation). */
  records: number;
  /** The 24-bit length from the handshake header: bytes of the hello body, without its 4-byte header. */
  helloLength: number;
}

/** Outcome of {@link parseClientHello}. */
export type HelloParse =
  | { status: 'need-more' }
  | {
      status: 'ok';
      hello: ClientHelloInfo;
      /** Bytes of the records that carried the hello; anything after is the client's next data. */
      consumed: number;
    }
  | {
      status: 'error';
      reason: 'not_tls' | 'malformed' | 'too_large' | 'unsupported_version';
      detail: string;
    };

const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const EXT_PRE_SHARED_KEY = 0x0029;
const EXT_ECH = 0xfe0d;
const NAME_TYPE_HOST = 0;
const TLS13 = 0x0304;

/**
 * Parses the TLS ClientHello at the start of everything the client has sent so far, reassembling it
 * across TCP segments and across handshake records (record fragmentation is a known evasion). Pure,
 * synchronous and total: it never throws, and it reports `ok` only when every length in the hello,
 * down to each extension's framing and the server_name, ALPN and supported_versions contents, is
 * consistent.
 *
 * @param buf All bytes received from the client so far.
 * @param maxBytes Cap on the bytes of the records carrying the hello; beyond it the result is `too_large`.
 */
export function parseClientHello(buf: Buffer, maxBytes = 16384): HelloParse {
  const first = buf[0];
  if (first === undefined) return { status: 'need-more' };
  if (first !== CONTENT_HANDSHAKE) return notTlsOrSslv2(buf, first);

  const framed = reassembleFirstHandshake(buf, maxBytes, {
    msgType: 1,
    allowTrailing: false,
    allowAlert: false,
  });
  if (framed.status === 'need-more') return framed;
  if (framed.status === 'error') {
    // allowAlert is off, so 'alert' cannot come back; map it defensively rather than widen the type.
    if (framed.reason === 'alert') return { status: 'error', reason: 'malformed', detail: framed.detail };
    return { status: 'error', reason: framed.reason, detail: framed.detail };
  }

  const body = parseHelloBody(framed.body);
  if ('reason' in body) return { status: 'error', reason: body.reason, detail: body.detail };
  return {
    status: 'ok',
    hello: {
      ...body,
      recordVersion: framed.recordVersion,
      records: framed.records,
      helloLength: framed.bodyLength,
    },
    consumed: framed.consumed,
  };
}

/**
 * The highest TLS version the client offers: the largest real TLS version in supported_versions when
 * the extension is present (GREASE and non-TLS values ignored, 0 if none is left, since such a client
 * offers nothing usable), else the legacy client_version. Compare it with the policy's TLS floor.
 */
export function effectiveMaxVersion(hello: ClientHelloInfo): number {
  if (hello.supportedVersions.length === 0) return hello.legacyVersion;
  let max = 0;
  for (const v of hello.supportedVersions) if (v >> 8 === 3 && v > max) max = v;
  return max;
}

function notTlsOrSslv2(buf: Buffer, first: number): HelloParse {
  // An SSLv2-format hello has a 2-byte length with the high bit set, then message type 1.
  if (first & 0x80) {
    const msgType = buf[2];
    if (msgType === undefined) return { status: 'need-more' };
    if (msgType === 1) {
      return { status: 'error', reason: 'unsupported_version', detail: 'SSLv2-compatible ClientHello' };
    }
  }
  return { status: 'error', reason: 'not_tls', detail: `first byte 0x${hex2(first)} is not a TLS handshake` };
}

type BodyFields = Omit<ClientHelloInfo, 'recordVersion' | 'records' | 'helloLength'>;
type BodyError = { reason: 'malformed' | 'unsupported_version'; detail: string };

function parseHelloBody(body: Buffer): BodyFields | BodyError {
  const end = body.length;
  let p = 0;

  if (p + 2 > end) return bad('hello too short for client_version');
  const legacyVersion = body.readUInt16BE(p);
  p += 2;
  if (legacyVersion >> 8 !== 3) return bad(`client_version 0x${hex4(legacyVersion)} is not TLS`);
  if (legacyVersion === 0x0300) {
    return { reason: 'unsupported_version', detail: 'SSL 3.0 client_version 0x0300' };
  }

  p += 32; // random
  if (p + 1 > end) return bad('hello too short for session_id');
  const sessionIdLength = body[p]!;
  p += 1;
  if (sessionIdLength > 32) return bad(`session_id length ${sessionIdLength} exceeds 32`);
  p += sessionIdLength;

  if (p + 2 > end) return bad('hello too short for cipher_suites');
  const suitesLength = body.readUInt16BE(p);
  p += 2;
  if (suitesLength === 0 || suitesLength % 2 !== 0) return bad(`cipher_suites length ${suitesLength}`);
  if (p + suitesLength > end) return bad('cipher_suites overrun the hello');
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesLength; i += 2) cipherSuites.push(body.readUInt16BE(p + i));
  p += suitesLength;

  if (p + 1 > end) return bad('hello too short for compression_methods');
  const compressionLength = body[p]!;
  p += 1;
  if (compressionLength === 0 || p + compressionLength > end) return bad('bad compression_methods length');
  const compression = body.subarray(p, p + compressionLength);
  if (!compression.includes(0)) return bad('compression_methods lacks the null method');
  p += compressionLength;

  const fields: BodyFields = {
    serverName: undefined,
    serverNameCount: 0,
    serverNames: [],
    alpn: [],
    supportedVersions: [],
    legacyVersion,
    hasEch: false,
    extensionTypes: [],
    cipherSuites,
  };
  // Pre-TLS 1.2 clients may omit the extensions block entirely.
  if (p === end) return fields;

  if (p + 2 > end) return bad('hello too short for the extensions length');
  const extensionsLength = body.readUInt16BE(p);
  p += 2;
  if (p + extensionsLength !== end) return bad('extensions length does not match the hello length');

  const seen = new Set<number>();
  while (p < end) {
    if (p + 4 > end) return bad('truncated extension header');
    const type = body.readUInt16BE(p);
    const len = body.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return bad(`extension 0x${hex4(type)} overruns the hello`);
    // A duplicate lets the filter read one copy and the server the other.
    if (seen.has(type)) return bad(`duplicate extension 0x${hex4(type)}`);
    seen.add(type);
    fields.extensionTypes.push(type);
    const data = body.subarray(p, p + len);
    p += len;

    const problem = readExtension(type, data, fields);
    if (problem) return bad(problem);
  }

  if (seen.has(EXT_PRE_SHARED_KEY) && fields.extensionTypes.at(-1) !== EXT_PRE_SHARED_KEY) {
    return bad('pre_shared_key is not the last extension');
  }
  if (fields.supportedVersions.includes(TLS13) && (compressionLength !== 1 || compression[0] !== 0)) {
    return bad('TLS 1.3 hello with compression methods other than exactly null');
  }
  return fields;
}

/** Reads the extensions the filter decides on into `fields`; returns a problem or undefined. */
function readExtension(type: number, data: Buffer, fields: BodyFields): string | undefined {
  switch (type) {
    case EXT_SERVER_NAME:
      return readServerName(data, fields);
    case EXT_ALPN:
      return readAlpn(data, fields);
    case EXT_SUPPORTED_VERSIONS:
      return readSupportedVersions(data, fields);
    case EXT_ECH:
      // The payload is encrypted; its presence is what matters (the outer SNI is a public name).
      fields.hasEch = true;
      return undefined;
    default:
      return undefined;
  }
}

function readServerName(data: Buffer, fields: BodyFields): string | undefined {
  if (data.length < 2) return 'server_name too short';
  const listLength = data.readUInt16BE(0);
  if (listLength !== data.length - 2) return 'server_name list length does not match the extension';
  if (listLength === 0) return 'empty server_name list';
  let p = 2;
  while (p < data.length) {
    if (p + 3 > data.length) return 'truncated server_name entry';
    const nameType = data[p]!;
    const nameLength = data.readUInt16BE(p + 1);
    p += 3;
    if (p + nameLength > data.length) return 'server_name entry overruns the list';
    const raw = data.subarray(p, p + nameLength);
    p += nameLength;
    // Other name types are undefined but length-framed, so they can be skipped exactly.
    if (nameType !== NAME_TYPE_HOST) continue;
    const name = raw.toString('latin1');
    const problem = hostNameProblem(name);
    if (problem) return `server_name: ${problem}`;
    fields.serverNameCount += 1;
    fields.serverNames.push(name);
    if (fields.serverName === undefined) fields.serverName = name;
  }
  return undefined;
}

function readAlpn(data: Buffer, fields: BodyFields): string | undefined {
  if (data.length < 2) return 'ALPN too short';
  const listLength = data.readUInt16BE(0);
  if (listLength !== data.length - 2) return 'ALPN list length does not match the extension';
  if (listLength === 0) return 'empty ALPN list';
  let p = 2;
  while (p < data.length) {
    const nameLength = data[p]!;
    p += 1;
    if (nameLength === 0) return 'empty ALPN protocol name';
    if (p + nameLength > data.length) return 'ALPN protocol name overruns the list';
    fields.alpn.push(data.subarray(p, p + nameLength).toString('latin1'));
    p += nameLength;
  }
  return undefined;
}

function readSupportedVersions(data: Buffer, fields: BodyFields): string | undefined {
  const listLength = data[0];
  if (listLength === undefined || listLength !== data.length - 1) {
    return 'supported_versions list length does not match the extension';
  }
  if (listLength === 0 || listLength % 2 !== 0) return `supported_versions list length ${listLength}`;
  for (let i = 1; i < data.length; i += 2) fields.supportedVersions.push(data.readUInt16BE(i));
  return undefined;
}

function bad(detail: string): BodyError {
  return { reason: 'malformed', detail };
}
