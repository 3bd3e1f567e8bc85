/** What the first bytes of a client connection look like. */
export type DetectedProtocol = 'tls' | 'http' | 'ssh' | 'unknown' | 'need-more';

const SSH_PREFIX = Buffer.from('SSH-', 'latin1');
/** Longer than any registered method, short enough to give up on garbage quickly. */
const MAX_METHOD = 20;

/**
 * Routes a connection to the right parser from its first bytes, without deciding anything: the parser
 * chosen still validates everything. `tls` is a handshake record (0x16 0x03) or an SSLv2-format hello
 * (so the TLS parser can deny it by name); `ssh` is `SSH-`; `http` is an upper-case method token
 * followed by a space; `need-more` while the bytes are a prefix of one of those.
 */
export function detectProtocol(firstBytes: Buffer): DetectedProtocol {
  const first = firstBytes[0];
  if (first === undefined) return 'need-more';

  if (first === 0x16) {
    const major = firstBytes[1];
    if (major === undefined) return 'need-more';
    return major === 0x03 ? 'tls' : 'unknown';
  }
  if (first & 0x80) {
    // SSLv2 record header: 2-byte length with the top bit set, then CLIENT-HELLO (1).
    const msgType = firstBytes[2];
    if (msgType === undefined) return 'need-more';
    return msgType === 1 ? 'tls' : 'unknown';
  }

  const sshLength = Math.min(firstBytes.length, SSH_PREFIX.length);
  if (firstBytes.compare(SSH_PREFIX, 0, sshLength, 0, sshLength) === 0) {
    // "S" and "SS" are also prefixes of a method; "SSH" followed by a space would be a (silly) method.
    if (sshLength === SSH_PREFIX.length) return 'ssh';
    if (sshLength < 3) return 'need-more';
  }

  for (let i = 0; i < firstBytes.length && i <= MAX_METHOD; i++) {
    const c = firstBytes[i]!;
    if (c === 0x20) return i > 0 ? 'http' : 'unknown';
    if (c < 0x41 || c > 0x5a) return 'unknown';
  }
  return firstBytes.length > MAX_METHOD ? 'unknown' : 'need-more';
}
