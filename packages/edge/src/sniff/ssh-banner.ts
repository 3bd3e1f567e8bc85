/** Outcome of {@link parseSshBanner}. */
export type SshBannerParse =
  | { status: 'need-more' }
  | {
      status: 'ok';
      /** `2.0`, or `1.99` for a peer that also speaks SSH 1 but can do 2.0. */
      protoVersion: string;
      softwareVersion: string;
      comments?: string;
      /** Bytes through the CRLF of the identification line, including any server pre-banner lines. */
      bannerBytes: number;
    }
  | { status: 'error'; reason: 'not_ssh' | 'ssh1' | 'malformed' | 'too_large'; detail: string };

/** Which side sent the bytes: only a server may send lines before its identification line. */
export interface SshBannerOptions {
  role: 'client' | 'server';
}

type Failure = Extract<SshBannerParse, { status: 'error' }>;

const PREFIX = Buffer.from('SSH-', 'latin1');
/** RFC 4253 4.2: the identification line, CR LF included, is at most 255 characters. */
const MAX_IDENT = 255;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Parses the SSH identification exchange (RFC 4253 4.2) at the start of a stream. The line must be
 * `SSH-protoversion-softwareversion[ SP comments]` CR LF, at most 255 bytes; bare LF is `malformed`
 * (every maintained implementation sends CR LF). `SSH-1.x` other than 1.99 is `ssh1`. A server may
 * send other lines first (they must not start with `SSH-`); a client may not. The RFC forbids `-` in
 * softwareversion, but JSch (`JSCH-0.1.54`) and Cisco (`Cisco-1.25`) send it, so it is accepted; the
 * software version is otherwise printable ASCII without spaces. Never throws.
 *
 * @param buf All bytes received from that side so far.
 * @param maxBytes Cap on the bytes before the end of the identification line.
 * @param options Which side sent `buf`; defaults to the stricter client rules.
 */
export function parseSshBanner(
  buf: Buffer,
  maxBytes = 8192,
  options: SshBannerOptions = { role: 'client' },
): SshBannerParse {
  const limit = Math.min(buf.length, maxBytes);
  let pos = 0;
  for (;;) {
    const available = limit - pos;
    const prefixLength = Math.min(available, PREFIX.length);
    const startsLikeIdent = buf.compare(PREFIX, 0, prefixLength, pos, pos + prefixLength) === 0;

    if (available > 0 && !startsLikeIdent) {
      if (options.role === 'client') return fail('not_ssh', 'client data does not start with "SSH-"');
      const lf = buf.indexOf(LF, pos);
      if (lf < 0 || lf >= limit) return needMore(buf, maxBytes);
      const line = buf.subarray(pos, lf);
      // Pre-banner text is free-form, but a NUL there is no banner a human would read.
      if (line.includes(0)) return fail('malformed', 'NUL in a line before the identification');
      pos = lf + 1;
      continue;
    }
    if (available < PREFIX.length) return needMore(buf, maxBytes);

    const lf = buf.indexOf(LF, pos);
    if (lf < 0 || lf >= limit) {
      if (available >= MAX_IDENT)
        return fail('malformed', `identification line longer than ${MAX_IDENT} bytes`);
      return needMore(buf, maxBytes);
    }
    if (lf + 1 - pos > MAX_IDENT)
      return fail('malformed', `identification line longer than ${MAX_IDENT} bytes`);
    if (lf === pos || buf[lf - 1] !== CR)
      return fail('malformed', 'identification line does not end in CR LF');
    return parseIdentification(buf.subarray(pos + PREFIX.length, lf - 1), lf + 1);
  }
}

function parseIdentification(line: Buffer, bannerBytes: number): SshBannerParse {
  for (const c of line) {
    if (c < 0x20 || c > 0x7e) return fail('malformed', `byte 0x${c.toString(16)} in the identification line`);
  }
  const text = line.toString('latin1');
  const dash = text.indexOf('-');
  if (dash <= 0) return fail('malformed', 'no protoversion-softwareversion in the identification line');
  const protoVersion = text.slice(0, dash);
  if (protoVersion !== '2.0' && protoVersion !== '1.99') {
    if (/^1\.\d+$/.test(protoVersion)) return fail('ssh1', `SSH protocol version ${protoVersion}`);
    return fail('malformed', `unknown SSH protocol version "${protoVersion}"`);
  }
  const rest = text.slice(dash + 1);
  const space = rest.indexOf(' ');
  const softwareVersion = space < 0 ? rest : rest.slice(0, space);
  if (softwareVersion === '') return fail('malformed', 'empty softwareversion');
  if (space < 0) return { status: 'ok', protoVersion, softwareVersion, bannerBytes };
  const comments = rest.slice(space + 1);
  if (comments === '') return fail('malformed', 'a space but no comments after softwareversion');
  return { status: 'ok', protoVersion, softwareVersion, comments, bannerBytes };
}

function needMore(buf: Buffer, maxBytes: number): SshBannerParse {
  if (buf.length >= maxBytes) return fail('too_large', `no SSH identification within ${maxBytes} bytes`);
  return { status: 'need-more' };
}

function fail(reason: Failure['reason'], detail: string): Failure {
  return { status: 'error', reason, detail };
}
