/**
 * The few TLS wire facts the edge needs besides the sniffers: version numbers and names, and the alert
 * it sends before closing a refused handshake (so a client reports "access denied" or "protocol
 * version", not a bare reset).
 */
import type { TlsVersion } from '@egress-guard/policy';

/** Wire value of each TLS version. */
export const TLS_VERSION_NUMBERS: Readonly<Record<TlsVersion, number>> = {
  'TLSv1.2': 0x0303,
  'TLSv1.3': 0x0304,
};

/** `TLSv1.3`-style name of a wire version (as Node's `getProtocol()` writes it), or hex for others. */
export function tlsVersionName(version: number): string {
  switch (version) {
    case 0x0300:
      return 'SSLv3';
    case 0x0301:
      return 'TLSv1';
    case 0x0302:
      return 'TLSv1.1';
    case 0x0303:
      return 'TLSv1.2';
    case 0x0304:
      return 'TLSv1.3';
    default:
      return `0x${version.toString(16).padStart(4, '0')}`;
  }
}

/** Alert descriptions (RFC 8446 6.2) the edge sends. */
export const ALERT = {
  handshakeFailure: 40,
  accessDenied: 49,
  protocolVersion: 70,
  internalError: 80,
  unrecognizedName: 112,
} as const;

/** A fatal alert record; `recordVersion` should echo the client's record version (old clients care). */
export function fatalAlert(description: number, recordVersion = 0x0303): Buffer {
  return Buffer.from([0x15, recordVersion >> 8, recordVersion & 0xff, 0x00, 0x02, 0x02, description]);
}

/** The ChangeCipherSpec record a TLS 1.3 client in middlebox-compatibility mode sends after a HelloRetryRequest. */
const CCS_RECORD = Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);

/** Bytes of leading ChangeCipherSpec records (compat-mode CCS) in `buf`; -1 while one is incomplete. */
export function leadingChangeCipherSpec(buf: Buffer): number {
  let off = 0;
  while (buf[off] === 0x14) {
    if (buf.length < off + CCS_RECORD.length) return -1;
    if (!buf.subarray(off, off + CCS_RECORD.length).equals(CCS_RECORD)) return off;
    off += CCS_RECORD.length;
  }
  return off;
}
