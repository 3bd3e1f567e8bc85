import { type HostPort, parseAuthority } from './host-syntax.js';

/** Outcome of {@link parseHttpHead}. */
export type HttpHeadParse =
  | { status: 'need-more' }
  | {
      status: 'ok';
      method: string;
      /** The request-target exactly as sent. */
      target: string;
      /** The Host header's value as sent, without surrounding whitespace; undefined when absent. */
      host: string | undefined;
      /** The Host header split into host and port (IPv6 brackets removed), when present. */
      hostHeader?: HostPort;
      /**
       * For absolute-form targets (`GET http://h:p/x`). Reported alongside `host` so the caller can
       * compare them: a proxy routes on this, a server on Host. Scheme is lower-cased; host is as sent,
       * without IPv6 brackets; path is everything after the authority, `/` if empty.
       */
      absoluteUrl?: { scheme: string; host: string; port: number | undefined; path: string };
      /** For CONNECT: the authority-form target. */
      authorityForm?: { host: string; port: number };
      /** `HTTP/1.0` or `HTTP/1.1`. */
      version: string;
      /** Bytes of the head, through the blank line that ends it; the body (or tunnel) starts here. */
      headerBytes: number;
    }
  | { status: 'error'; reason: 'not_http' | 'malformed' | 'too_large'; detail: string };

type Failure = Extract<HttpHeadParse, { status: 'error' }>;
type Ok = Extract<HttpHeadParse, { status: 'ok' }>;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

/**
 * Parses an HTTP/1.x request head strictly enough that the filter and the upstream cannot read it
 * differently. Lines must end in CRLF (a bare LF or CR is `malformed`: some servers accept bare LF and
 * some do not, which is exactly the disagreement smuggling relies on). A request line is `method SP
 * target SP HTTP/1.x`; header names are tokens with no whitespace before the colon; obs-fold, control
 * characters, a second Host header, an invalid Host and userinfo in a target are `malformed`. An
 * HTTP/1.1 origin-form request must carry Host. Never throws.
 *
 * @param buf All bytes received from the client so far.
 * @param maxBytes Cap on the size of the head; beyond it the result is `too_large`.
 */
export function parseHttpHead(buf: Buffer, maxBytes = 16384): HttpHeadParse {
  if (buf.length === 0) return { status: 'need-more' };
  const limit = Math.min(buf.length, maxBytes);
  let request: RequestLine | undefined;
  let host: string | undefined;
  let hostHeader: HostPort | undefined;
  let pos = 0;

  for (;;) {
    const lf = buf.indexOf(LF, pos);
    if (lf < 0 || lf >= limit) {
      if (request === undefined) {
        const early = checkPartialRequestLine(buf.subarray(0, limit));
        if (early) return early;
      }
      if (buf.length >= maxBytes)
        return fail('too_large', `request head not complete within ${maxBytes} bytes`);
      return { status: 'need-more' };
    }
    if (lf === pos || buf[lf - 1] !== CR) return fail('malformed', `bare LF at byte ${lf}`);
    const line = buf.subarray(pos, lf - 1);
    const cr = line.indexOf(CR);
    if (cr >= 0) return fail('malformed', `bare CR at byte ${pos + cr}`);
    pos = lf + 1;

    if (request === undefined) {
      const parsed = parseRequestLine(line);
      if ('status' in parsed) return parsed;
      request = parsed;
      continue;
    }
    if (line.length === 0) break;

    const field = parseFieldLine(line);
    if ('status' in field) return field;
    if (field.name.toLowerCase() === 'host') {
      if (host !== undefined) return fail('malformed', 'more than one Host header');
      const authority = parseAuthority(field.value);
      if (typeof authority === 'string') return fail('malformed', `Host: ${authority}`);
      host = field.value;
      hostHeader = authority;
    }
  }

  if (host === undefined && request.version === 'HTTP/1.1' && request.form === 'origin') {
    return fail('malformed', 'HTTP/1.1 request without Host');
  }
  const ok: Ok = {
    status: 'ok',
    method: request.method,
    target: request.target,
    host,
    version: request.version,
    headerBytes: pos,
  };
  if (hostHeader) ok.hostHeader = hostHeader;
  if (request.absoluteUrl) ok.absoluteUrl = request.absoluteUrl;
  if (request.authorityForm) ok.authorityForm = request.authorityForm;
  return ok;
}

interface RequestLine {
  method: string;
  target: string;
  version: string;
  form: 'origin' | 'absolute' | 'authority' | 'asterisk';
  absoluteUrl?: Ok['absoluteUrl'];
  authorityForm?: Ok['authorityForm'];
}

/** Refuses a request line that cannot become HTTP before it is complete, so garbage fails fast. */
function checkPartialRequestLine(partial: Buffer): Failure | undefined {
  for (let i = 0; i < partial.length; i++) {
    const c = partial[i]!;
    if (c === SP) return i === 0 ? fail('not_http', 'request line starts with a space') : undefined;
    if (!isTchar(c)) return fail('not_http', `byte 0x${c.toString(16).padStart(2, '0')} in the method`);
  }
  return undefined;
}

function parseRequestLine(line: Buffer): RequestLine | Failure {
  const text = line.toString('latin1');
  const parts = text.split(' ');
  const [method = '', target = '', version = ''] = parts;
  if (method === '' || ![...method].every((ch) => isTchar(ch.charCodeAt(0)))) {
    return fail('not_http', 'request line does not start with a method token');
  }
  if (parts.length !== 3 || target === '') {
    return text.includes(' HTTP/')
      ? fail('malformed', 'request line is not "method SP target SP version"')
      : fail('not_http', 'no HTTP version in the request line');
  }
  if (!version.startsWith('HTTP/')) return fail('not_http', 'no HTTP version in the request line');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    return fail('malformed', `unsupported version "${version}"`);
  }
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    // Fragments never belong on the wire, and a backslash is read as "/" by WHATWG URL parsers only.
    if (c <= SP || c >= 0x7f || c === 0x23 || c === 0x5c) {
      return fail('malformed', `character 0x${c.toString(16)} in the request-target`);
    }
  }

  if (method === 'CONNECT') {
    const authority = parseAuthority(target);
    if (typeof authority === 'string') return fail('malformed', `CONNECT target: ${authority}`);
    if (authority.port === undefined) return fail('malformed', 'CONNECT target without a port');
    return {
      method,
      target,
      version,
      form: 'authority',
      authorityForm: { host: authority.host, port: authority.port },
    };
  }
  if (target === '*') {
    if (method !== 'OPTIONS') return fail('malformed', `asterisk-form target with ${method}`);
    return { method, target, version, form: 'asterisk' };
  }
  if (target.startsWith('/')) return { method, target, version, form: 'origin' };

  const url = parseAbsoluteForm(target);
  if (typeof url === 'string') return fail('malformed', url);
  return { method, target, version, form: 'absolute', absoluteUrl: url };
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;

function parseAbsoluteForm(target: string): NonNullable<Ok['absoluteUrl']> | string {
  const sep = target.indexOf('://');
  if (sep < 0) return 'request-target is neither origin-form nor absolute-form';
  const scheme = target.slice(0, sep);
  if (!SCHEME.test(scheme)) return `invalid scheme "${scheme}"`;
  const rest = target.slice(sep + 3);
  let cut = rest.length;
  for (const stop of ['/', '?']) {
    const at = rest.indexOf(stop);
    if (at >= 0 && at < cut) cut = at;
  }
  const authority = parseAuthority(rest.slice(0, cut));
  if (typeof authority === 'string') return `absolute-form target: ${authority}`;
  const path = rest.slice(cut);
  return {
    scheme: scheme.toLowerCase(),
    host: authority.host,
    port: authority.port,
    path: path === '' ? '/' : path,
  };
}

function parseFieldLine(line: Buffer): { name: string; value: string } | Failure {
  const first = line[0];
  if (first === SP || first === HTAB)
    return fail('malformed', 'obs-fold (header line starting with whitespace)');
  const colon = line.indexOf(0x3a);
  if (colon <= 0) return fail('malformed', 'header line without a field name and colon');
  for (let i = 0; i < colon; i++) {
    // This also refuses whitespace before the colon ("Host : x"), which some servers tolerate.
    if (!isTchar(line[i]!)) return fail('malformed', 'invalid character in a header name');
  }
  let start = colon + 1;
  let end = line.length;
  while (start < end && isOws(line[start]!)) start++;
  while (end > start && isOws(line[end - 1]!)) end--;
  for (let i = start; i < end; i++) {
    const c = line[i]!;
    if ((c < SP && c !== HTAB) || c === 0x7f) return fail('malformed', 'control character in a header value');
  }
  return {
    name: line.subarray(0, colon).toString('latin1'),
    value: line.subarray(start, end).toString('latin1'),
  };
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/** RFC 9110 tchar: the characters allowed in a method and a field name. */
function isTchar(c: number): boolean {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return true;
  // ! # $ % & ' * + - . ^ _ ` | ~
  return (
    c === 0x21 ||
    (c >= 0x23 && c <= 0x27) ||
    c === 0x2a ||
    c === 0x2b ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5e ||
    c === 0x5f ||
    c === 0x60 ||
    c === 0x7c ||
    c === 0x7e
  );
}

function fail(reason: Failure['reason'], detail: string): Failure {
  return { status: 'error', reason, detail };
}
