import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseHttpHead } from '../../src/sniff/index.js';

const head = (...lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

describe('parseHttpHead: accepted', () => {
  it('origin-form with Host', () => {
    const bytes = head('GET /path?q=1 HTTP/1.1', 'Host: api.example.com', 'Accept: */*');
    expect(parseHttpHead(bytes)).toEqual({
      status: 'ok',
      method: 'GET',
      target: '/path?q=1',
      host: 'api.example.com',
      hostHeader: { host: 'api.example.com', port: undefined },
      version: 'HTTP/1.1',
      headerBytes: bytes.length,
    });
  });

  it('absolute-form (proxy request) reports the URL and Host separately, even when they disagree', () => {
    const r = parseHttpHead(head('GET http://allowed.example:8080/x?y HTTP/1.1', 'Host: evil.example'));
    expect(r).toMatchObject({
      status: 'ok',
      host: 'evil.example',
      absoluteUrl: { scheme: 'http', host: 'allowed.example', port: 8080, path: '/x?y' },
    });
  });

  it('absolute-form without a path or port, upper-case scheme', () => {
    const r = parseHttpHead(head('GET HTTP://a.example HTTP/1.1', 'Host: a.example'));
    expect(r).toMatchObject({
      absoluteUrl: { scheme: 'http', host: 'a.example', port: undefined, path: '/' },
    });
    const q = parseHttpHead(head('GET http://a.example?x HTTP/1.1', 'Host: a.example'));
    expect(q).toMatchObject({ absoluteUrl: { host: 'a.example', path: '?x' } });
  });

  it('CONNECT authority-form, with and without Host', () => {
    expect(
      parseHttpHead(head('CONNECT api.example.com:443 HTTP/1.1', 'Host: api.example.com:443')),
    ).toMatchObject({
      status: 'ok',
      method: 'CONNECT',
      authorityForm: { host: 'api.example.com', port: 443 },
      host: 'api.example.com:443',
      hostHeader: { host: 'api.example.com', port: 443 },
    });
    expect(parseHttpHead(head('CONNECT api.example.com:443 HTTP/1.1'))).toMatchObject({
      status: 'ok',
      host: undefined,
      authorityForm: { host: 'api.example.com', port: 443 },
    });
  });

  it('IPv6 literals in brackets: CONNECT, absolute-form and Host', () => {
    expect(
      parseHttpHead(head('CONNECT [2001:db8::1]:443 HTTP/1.1', 'Host: [2001:db8::1]:443')),
    ).toMatchObject({
      authorityForm: { host: '2001:db8::1', port: 443 },
      hostHeader: { host: '2001:db8::1', port: 443 },
    });
    expect(parseHttpHead(head('GET http://[::ffff:127.0.0.1]/ HTTP/1.1', 'Host: [::1]'))).toMatchObject({
      absoluteUrl: { host: '::ffff:127.0.0.1', port: undefined },
      hostHeader: { host: '::1', port: undefined },
    });
  });

  it('HTTP/1.0 without Host; OPTIONS *; tabs and trailing spaces around a value; body bytes not counted', () => {
    expect(parseHttpHead(head('GET / HTTP/1.0'))).toMatchObject({
      status: 'ok',
      host: undefined,
      version: 'HTTP/1.0',
    });
    expect(parseHttpHead(head('OPTIONS * HTTP/1.1', 'Host: a.example'))).toMatchObject({
      status: 'ok',
      target: '*',
    });
    expect(parseHttpHead(head('GET / HTTP/1.1', 'Host:\ta.example \t'))).toMatchObject({ host: 'a.example' });
    const bytes = Buffer.concat([
      head('POST / HTTP/1.1', 'Host: a.example', 'Content-Length: 5'),
      Buffer.from('hello'),
    ]);
    expect(parseHttpHead(bytes)).toMatchObject({ status: 'ok', headerBytes: bytes.length - 5 });
  });

  it('the Host value is reported as sent (case, port, trailing dot); numeric spellings are the policy’s job', () => {
    expect(parseHttpHead(head('GET / HTTP/1.1', 'HOST: API.Example.com.:8443'))).toMatchObject({
      host: 'API.Example.com.:8443',
      hostHeader: { host: 'API.Example.com.', port: 8443 },
    });
    expect(parseHttpHead(head('GET / HTTP/1.1', 'Host: 0x7f.1'))).toMatchObject({ host: '0x7f.1' });
  });

  it('trickled one byte at a time: need-more until the blank line, then ok', () => {
    const bytes = head('GET http://a.example/ HTTP/1.1', 'Host: a.example', 'User-Agent: x');
    for (let k = 0; k < bytes.length; k++)
      expect(parseHttpHead(bytes.subarray(0, k)).status).toBe('need-more');
    expect(parseHttpHead(bytes).status).toBe('ok');
  });
});

describe('parseHttpHead: refused', () => {
  const cases: [string, Buffer | string, string][] = [
    ['TLS bytes', Buffer.from('160301020001', 'hex'), 'not_http'],
    ['SSH banner', 'SSH-2.0-OpenSSH_9.6\r\n', 'not_http'],
    ['leading space', ' GET / HTTP/1.1\r\n', 'not_http'],
    ['lower-case garbage with a control byte', 'get\x01 / HTTP/1.1\r\n', 'not_http'],
    ['HTTP/0.9 request', 'GET /\r\n\r\n', 'not_http'],
    ['no version', 'GET / FOO/1.1\r\n\r\n', 'not_http'],
    ['HTTP/2 prior knowledge preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'malformed'],
    ['HTTP/1.2', head('GET / HTTP/1.2', 'Host: a'), 'malformed'],
    ['lower-case version', head('GET / http/1.1', 'Host: a'), 'not_http'],
    ['two spaces', head('GET  / HTTP/1.1', 'Host: a'), 'malformed'],
    ['trailing space after version', head('GET / HTTP/1.1 ', 'Host: a'), 'malformed'],
    ['bare LF line ends', 'GET / HTTP/1.1\nHost: a.example\n\n', 'malformed'],
    ['bare LF in the header block', 'GET / HTTP/1.1\r\nHost: a.example\n\r\n', 'malformed'],
    ['bare CR inside a header', 'GET / HTTP/1.1\r\nHost: a.example\rX: y\r\n\r\n', 'malformed'],
    [
      'two Host headers (smuggling)',
      head('GET / HTTP/1.1', 'Host: a.example', 'Host: evil.example'),
      'malformed',
    ],
    [
      'two Host headers, different case',
      head('GET / HTTP/1.1', 'host: a.example', 'HOST: a.example'),
      'malformed',
    ],
    ['whitespace before the colon', head('GET / HTTP/1.1', 'Host : evil.example'), 'malformed'],
    ['tab before the colon', head('GET / HTTP/1.1', 'Host\t: evil.example'), 'malformed'],
    ['header line starting with a space', head('GET / HTTP/1.1', ' Host: evil.example'), 'malformed'],
    ['obs-fold', head('GET / HTTP/1.1', 'Host: a.example', 'X-A: b', ' continued'), 'malformed'],
    ['whitespace inside the Host value', head('GET / HTTP/1.1', 'Host: a.example evil.example'), 'malformed'],
    ['comma list in Host', head('GET / HTTP/1.1', 'Host: a.example,evil.example'), 'malformed'],
    ['empty Host', head('GET / HTTP/1.1', 'Host:'), 'malformed'],
    ['userinfo in Host', head('GET / HTTP/1.1', 'Host: a.example@evil.example'), 'malformed'],
    ['Host with a path', head('GET / HTTP/1.1', 'Host: a.example/x'), 'malformed'],
    ['Host with a backslash', head('GET / HTTP/1.1', 'Host: a.example\\@evil.example'), 'malformed'],
    ['Host with a bad port', head('GET / HTTP/1.1', 'Host: a.example:99999'), 'malformed'],
    ['Host with an empty port', head('GET / HTTP/1.1', 'Host: a.example:'), 'malformed'],
    ['Host with a percent escape', head('GET / HTTP/1.1', 'Host: a%2eexample'), 'malformed'],
    ['Host IPv6 with a zone id', head('GET / HTTP/1.1', 'Host: [fe80::1%eth0]'), 'malformed'],
    ['Host IPv6 unbracketed', head('GET / HTTP/1.1', 'Host: ::1'), 'malformed'],
    ['NUL in a header value', head('GET / HTTP/1.1', 'Host: a.example', 'X: a\0b'), 'malformed'],
    ['header without a colon', head('GET / HTTP/1.1', 'Host: a.example', 'Nonsense'), 'malformed'],
    ['empty header name', head('GET / HTTP/1.1', ': x', 'Host: a'), 'malformed'],
    ['HTTP/1.1 origin-form without Host', head('GET / HTTP/1.1', 'Accept: */*'), 'malformed'],
    [
      'userinfo in absolute-form',
      head('GET http://a.example@evil.example/ HTTP/1.1', 'Host: a.example'),
      'malformed',
    ],
    [
      'backslash in target',
      head('GET http://evil.example\\@a.example/ HTTP/1.1', 'Host: a.example'),
      'malformed',
    ],
    ['fragment in target', head('GET /#x HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['non-ASCII in target', head('GET /\xe9 HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['absolute-form without //', head('GET http:a.example/ HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['relative target', head('GET a.example/ HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['absolute-form with an empty host', head('GET http:///x HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['CONNECT without a port', head('CONNECT a.example HTTP/1.1', 'Host: a.example'), 'malformed'],
    ['CONNECT to port 0', head('CONNECT a.example:0 HTTP/1.1'), 'malformed'],
    ['CONNECT with a path', head('CONNECT a.example:443/x HTTP/1.1'), 'malformed'],
    ['CONNECT with a URL', head('CONNECT http://a.example:443 HTTP/1.1'), 'malformed'],
    ['CONNECT with userinfo', head('CONNECT u@a.example:443 HTTP/1.1'), 'malformed'],
    ['CONNECT with a signed port', head('CONNECT a.example:+443 HTTP/1.1'), 'malformed'],
    ['asterisk-form with GET', head('GET * HTTP/1.1', 'Host: a'), 'malformed'],
  ];

  it.each(cases.map(([name, bytes, reason]) => ({ name, bytes, reason })))(
    '$name → $reason',
    ({ bytes, reason }) => {
      const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
      const r = parseHttpHead(buf);
      expect(r.status === 'error' ? r.reason : r.status).toBe(reason);
    },
  );

  it('too_large: a head that does not end within maxBytes', () => {
    const bytes = head('GET / HTTP/1.1', 'Host: a.example', `X-Pad: ${'a'.repeat(200)}`);
    expect(parseHttpHead(bytes, bytes.length)).toMatchObject({ status: 'ok' });
    expect(parseHttpHead(bytes, bytes.length - 1)).toMatchObject({ reason: 'too_large' });
    const endless = Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(20000)}`);
    expect(parseHttpHead(endless)).toMatchObject({ reason: 'too_large' });
    expect(parseHttpHead(endless.subarray(0, 1000)).status).toBe('need-more');
  });

  it('garbage is refused from the first bytes, not after the cap', () => {
    expect(parseHttpHead(Buffer.from([0x16])).status).toBe('error');
    expect(parseHttpHead(Buffer.from('GE\x00')).status).toBe('error');
  });
});

describe('parseHttpHead never throws and fails closed', () => {
  const check = (buf: Buffer, maxBytes?: number) => {
    const r = parseHttpHead(buf, maxBytes);
    if (r.status === 'error') expect(['not_http', 'malformed', 'too_large']).toContain(r.reason);
    if (r.status === 'ok') {
      expect(parseHttpHead(buf, maxBytes)).toEqual(r);
      expect(parseHttpHead(buf.subarray(0, r.headerBytes), maxBytes)).toEqual(r);
      expect(parseHttpHead(buf.subarray(0, r.headerBytes - 1), maxBytes).status).not.toBe('ok');
      expect(buf.subarray(r.headerBytes - 4, r.headerBytes).toString('latin1')).toBe('\r\n\r\n');
    }
  };
  const seeds = [
    head('GET http://a.example:8080/x HTTP/1.1', 'Host: a.example', 'Accept: */*'),
    head('CONNECT [::1]:443 HTTP/1.1', 'Host: [::1]:443', 'Proxy-Authorization: Basic eA=='),
    head('POST /p HTTP/1.0', 'Content-Length: 0'),
  ];

  it('random bytes and random text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1000 }), (b) => check(Buffer.from(b))),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom('G', 'E', 'T', ' ', '/', ':', '\r', '\n', 'H', '1', '.', 'a', '[', ']', '@'),
        }),
        (s) => check(Buffer.from(s, 'latin1')),
      ),
      { numRuns: 2000 },
    );
  });

  it('mutated valid heads', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(
          fc.tuple(fc.nat(), fc.constantFrom(0x20, 0x09, 0x0d, 0x0a, 0x3a, 0x00, 0x40, 0x5c, 0x41, 0xff)),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
        (pick, edits) => {
          const b = Buffer.from(seeds[pick % seeds.length]!);
          for (const [pos, value] of edits) b[pos % b.length] = value;
          check(b);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
