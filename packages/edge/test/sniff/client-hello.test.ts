import { describe, expect, it } from 'vitest';
import { type ClientHelloInfo, effectiveMaxVersion, parseClientHello } from '../../src/sniff/index.js';
import {
  alpnExt,
  buildClientHello,
  ext,
  frame,
  keyShareExt,
  modernHello,
  record,
  sniExt,
  supportedVersionsExt,
  u8,
  u16,
  vec8,
  vec16,
} from './helpers/hello-builder.js';
import { referenceParse } from './helpers/reference.js';

function ok(bytes: Buffer, maxBytes?: number): ClientHelloInfo {
  const r = parseClientHello(bytes, maxBytes);
  if (r.status !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.hello;
}

function reason(bytes: Buffer, maxBytes?: number): string {
  const r = parseClientHello(bytes, maxBytes);
  return r.status === 'error' ? r.reason : r.status;
}

const ECH_PAYLOAD = Buffer.concat([
  u8(0),
  u16(1),
  u16(1),
  u8(7),
  vec16(Buffer.alloc(32, 9)),
  vec16(Buffer.alloc(180, 3)),
]);

describe('parseClientHello: hand-built hellos', () => {
  it('ECH: extension 0xfe0d sets hasEch, and the SNI is the outer (public) name', () => {
    const hello = ok(frame(modernHello('public.ech.example', [ext(0xfe0d, ECH_PAYLOAD)])));
    expect(hello.hasEch).toBe(true);
    expect(hello.serverName).toBe('public.ech.example');
    expect(hello.extensionTypes.at(-1)).toBe(0xfe0d);
  });

  it('no server_name: ok with serverName undefined', () => {
    const hello = ok(frame(modernHello(undefined)));
    expect(hello.serverName).toBeUndefined();
    expect(hello.serverNameCount).toBe(0);
    expect(hello.alpn).toEqual(['h2', 'http/1.1']);
  });

  it('keeps the SNI exactly as sent (case, trailing dot, underscore)', () => {
    expect(ok(frame(modernHello('API.Example.COM.'))).serverName).toBe('API.Example.COM.');
    expect(ok(frame(modernHello('_dmarc.example.com'))).serverName).toBe('_dmarc.example.com');
  });

  it('two host_name entries: ok, the first is reported and counted', async () => {
    const bytes = frame(modernHello(undefined, [sniExt('allowed.example', 'evil.example')]));
    const hello = ok(bytes);
    expect(hello.serverName).toBe('allowed.example');
    expect(hello.serverNameCount).toBe(2);
    // Divergence: read-tls-client-hello misreads a multi-entry list and reports no SNI at all.
    const ref = await referenceParse(bytes);
    expect(ref.ok && ref.serverName).toBeUndefined();
  });

  it('skips a non-host_name entry by its length', () => {
    const list = Buffer.concat([
      u8(7),
      vec16(Buffer.from('whatever')),
      u8(0),
      vec16(Buffer.from('a.example')),
    ]);
    const hello = ok(frame(modernHello(undefined, [ext(0, vec16(list))])));
    expect(hello.serverName).toBe('a.example');
    expect(hello.serverNameCount).toBe(1);
  });

  it('TLS 1.0/1.1-only client (no supported_versions): effectiveMaxVersion is client_version', () => {
    const bytes = frame(
      buildClientHello({
        legacyVersion: 0x0302,
        cipherSuites: [0xc014, 0x002f],
        extensions: [sniExt('old.example')],
      }),
    );
    const hello = ok(bytes);
    expect(hello.legacyVersion).toBe(0x0302);
    expect(effectiveMaxVersion(hello)).toBe(0x0302);
    const tls10 = ok(frame(buildClientHello({ legacyVersion: 0x0301, extensions: null })));
    expect(effectiveMaxVersion(tls10)).toBe(0x0301);
    expect(tls10.extensionTypes).toEqual([]);
  });

  it('the downgrade cases of effectiveMaxVersion', () => {
    const withVersions = (...v: number[]) =>
      ok(frame(buildClientHello({ extensions: [sniExt('a.example'), supportedVersionsExt(...v)] })));
    expect(effectiveMaxVersion(withVersions(0x7a7a, 0x0303, 0x0302))).toBe(0x0303);
    expect(effectiveMaxVersion(withVersions(0x0302, 0x0304))).toBe(0x0304);
    expect(effectiveMaxVersion(withVersions(0x1a1a))).toBe(0);
    expect(effectiveMaxVersion(withVersions(0x7f1c))).toBe(0);
  });

  it('post-quantum-sized hello (1216-byte X25519MLKEM768 key share) across TCP segments', () => {
    const pq = buildClientHello({
      extensions: [
        sniExt('pq.example'),
        alpnExt('h2'),
        supportedVersionsExt(0x0304),
        keyShareExt(0x11ec, 1216),
        ext(0x15, Buffer.alloc(200)),
      ],
    });
    const bytes = frame(pq);
    expect(bytes.length).toBeGreaterThan(1500);
    for (let k = 0; k < bytes.length; k += 536)
      expect(parseClientHello(bytes.subarray(0, k)).status).toBe('need-more');
    const hello = ok(bytes);
    expect(hello.serverName).toBe('pq.example');
    expect(hello.helloLength).toBe(pq.length - 4);
  });

  it('a hello with no extensions block at all', () => {
    const hello = ok(frame(buildClientHello({ extensions: null })));
    expect(hello.serverName).toBeUndefined();
    expect(hello.alpn).toEqual([]);
  });
});

describe('parseClientHello: what must be refused', () => {
  const good = modernHello('a.example');
  const goodBody = good.subarray(4);
  const withExtensions = (...exts: Buffer[]) => frame(buildClientHello({ extensions: exts }));
  const bodyBytes = (body: Buffer) => frame(Buffer.concat([u8(1), u8(0), u16(body.length), body]));

  const cases: [string, Buffer, string][] = [
    ['HTTP bytes', Buffer.from('GET / HTTP/1.1\r\n'), 'not_tls'],
    ['SSH banner', Buffer.from('SSH-2.0-x\r\n'), 'not_tls'],
    ['SSLv2-compatible hello', Buffer.from('802e0103010015000000100000', 'hex'), 'unsupported_version'],
    ['high bit set but not a hello', Buffer.from('80ff0203', 'hex'), 'not_tls'],
    ['record version 0x0300 (SSL 3.0)', frame(good, [], 0x0300), 'unsupported_version'],
    ['record version 0x0200', frame(good, [], 0x0200), 'not_tls'],
    ['record version 0x0305', frame(good, [], 0x0305), 'not_tls'],
    [
      'client_version 0x0300',
      frame(buildClientHello({ legacyVersion: 0x0300, extensions: null })),
      'unsupported_version',
    ],
    ['client_version 0x0200', frame(buildClientHello({ legacyVersion: 0x0200 })), 'malformed'],
    [
      'empty first handshake record',
      Buffer.concat([record(22, 0x0301, Buffer.alloc(0)), frame(good)]),
      'malformed',
    ],
    [
      'empty handshake record between fragments',
      Buffer.concat([
        frame(good.subarray(0, 50)),
        record(22, 0x0301, Buffer.alloc(0)),
        frame(good.subarray(50)),
      ]),
      'malformed',
    ],
    [
      'ChangeCipherSpec interleaved before the hello completes',
      Buffer.concat([
        frame(good.subarray(0, 50)),
        record(20, 0x0301, Buffer.from([1])),
        frame(good.subarray(50)),
      ]),
      'malformed',
    ],
    [
      'alert interleaved before the hello completes',
      Buffer.concat([
        frame(good.subarray(0, 50)),
        record(21, 0x0301, Buffer.from([1, 0])),
        frame(good.subarray(50)),
      ]),
      'malformed',
    ],
    [
      'application data interleaved',
      Buffer.concat([
        frame(good.subarray(0, 3)),
        record(23, 0x0301, Buffer.from([1])),
        frame(good.subarray(3)),
      ]),
      'malformed',
    ],
    [
      'fragments with different record versions',
      Buffer.concat([frame(good.subarray(0, 50), [], 0x0301), frame(good.subarray(50), [], 0x0303)]),
      'malformed',
    ],
    ['record longer than 2^14', Buffer.from('1603014001', 'hex'), 'malformed'],
    [
      'handshake type 2 (ServerHello) from a client',
      frame(Buffer.concat([u8(2), good.subarray(1)])),
      'malformed',
    ],
    ['handshake type 2 seen in a 1-byte partial record', Buffer.from('160301000502', 'hex'), 'malformed'],
    ['declared hello longer than the cap', Buffer.from('1603010200010100ff', 'hex'), 'too_large'],
    [
      'trailing handshake bytes in the last record',
      frame(Buffer.concat([good, Buffer.from([0x14, 0, 0, 0])])),
      'malformed',
    ],
    ['session_id of 33 bytes', frame(buildClientHello({ sessionId: Buffer.alloc(33) })), 'malformed'],
    [
      'odd cipher_suites length',
      bodyBytes(Buffer.concat([goodBody.subarray(0, 67), u16(3), Buffer.alloc(3)])),
      'malformed',
    ],
    ['no cipher suites', frame(buildClientHello({ cipherSuites: [] })), 'malformed'],
    ['compression without null', frame(buildClientHello({ compression: [1] })), 'malformed'],
    [
      'TLS 1.3 hello with compression [1, 0]',
      frame(buildClientHello({ compression: [1, 0], extensions: [supportedVersionsExt(0x0304)] })),
      'malformed',
    ],
    ['body truncated inside random', bodyBytes(goodBody.subarray(0, 20)), 'malformed'],
    ['extensions length one short', bodyBytes(Buffer.concat([goodBody, Buffer.from([0])])), 'malformed'],
    [
      'duplicate extension',
      withExtensions(sniExt('a.example'), alpnExt('h2'), alpnExt('http/1.1')),
      'malformed',
    ],
    ['duplicate server_name', withExtensions(sniExt('a.example'), sniExt('b.example')), 'malformed'],
    ['pre_shared_key not last', withExtensions(ext(0x29, Buffer.alloc(8)), sniExt('a.example')), 'malformed'],
    [
      'extension overruns the hello',
      withExtensions(Buffer.concat([u16(0x15), u16(100), Buffer.alloc(10)])),
      'malformed',
    ],
    [
      'server_name list length mismatch',
      withExtensions(ext(0, Buffer.concat([u16(20), u8(0), vec16(Buffer.from('a.b'))]))),
      'malformed',
    ],
    [
      'server_name entry overruns',
      withExtensions(ext(0, vec16(Buffer.concat([u8(0), u16(50), Buffer.from('a.b')])))),
      'malformed',
    ],
    ['empty server_name list', withExtensions(ext(0, vec16(Buffer.alloc(0)))), 'malformed'],
    ['empty server_name extension', withExtensions(ext(0, Buffer.alloc(0))), 'malformed'],
    ['empty host name', withExtensions(sniExt('')), 'malformed'],
    ['host name with a space', withExtensions(sniExt('a.example .evil')), 'malformed'],
    ['host name with NUL', withExtensions(sniExt('allowed.example\0.evil.io')), 'malformed'],
    ['host name with a high-bit byte', withExtensions(sniExt('allowed.ex\xe1mple')), 'malformed'],
    ['host name with %', withExtensions(sniExt('a%2eexample')), 'malformed'],
    ['host name with @', withExtensions(sniExt('user@a.example')), 'malformed'],
    ['host name with :port', withExtensions(sniExt('a.example:443')), 'malformed'],
    ['host name with an empty label', withExtensions(sniExt('a..example')), 'malformed'],
    ['host name with a leading dot', withExtensions(sniExt('.a.example')), 'malformed'],
    ['label of 64 characters', withExtensions(sniExt(`${'a'.repeat(64)}.example`)), 'malformed'],
    ['name of 254 characters', withExtensions(sniExt(`${'a.'.repeat(126)}ab`)), 'malformed'],
    [
      'ALPN list length mismatch',
      withExtensions(ext(0x10, Buffer.concat([u16(9), vec8(Buffer.from('h2'))]))),
      'malformed',
    ],
    ['empty ALPN list', withExtensions(ext(0x10, vec16(Buffer.alloc(0)))), 'malformed'],
    ['empty ALPN protocol', withExtensions(alpnExt('h2', '')), 'malformed'],
    [
      'ALPN name overruns',
      withExtensions(ext(0x10, vec16(Buffer.concat([u8(9), Buffer.from('h2')])))),
      'malformed',
    ],
    ['supported_versions odd', withExtensions(ext(0x2b, vec8(Buffer.from([3, 4, 3])))), 'malformed'],
    ['supported_versions length mismatch', withExtensions(ext(0x2b, Buffer.from([4, 3, 4]))), 'malformed'],
    ['empty supported_versions', withExtensions(ext(0x2b, vec8(Buffer.alloc(0)))), 'malformed'],
  ];

  it.each(cases.map(([name, bytes, want]) => ({ name, bytes, want })))('$name → $want', ({ bytes, want }) => {
    expect(reason(bytes)).toBe(want);
  });

  it('accepts a name of exactly 253 characters plus a trailing dot, and labels of 63', () => {
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(name.length).toBe(253);
    expect(ok(withExtensions(sniExt(name))).serverName).toBe(name);
    expect(ok(withExtensions(sniExt(`${name}.`))).serverName).toBe(`${name}.`);
  });

  it('too_large: beyond maxBytes, and a trickle of tiny records that never completes', () => {
    const bytes = frame(good);
    expect(reason(bytes, bytes.length - 1)).toBe('too_large');
    expect(reason(bytes, bytes.length)).toBe('ok');
    // The header declares a normal length but the records never finish the message under the cap.
    const oneByteRecords = frame(
      modernHello('a.example', [ext(0x15, Buffer.alloc(4000))]),
      new Array(5000).fill(1),
    );
    // Six bytes per record: after 2729 records (16374 bytes) one more still fits under 16384 ...
    expect(reason(oneByteRecords.subarray(0, 16374))).toBe('need-more');
    // ... after 2730 it cannot, so waiting is pointless even before the cap's worth of bytes arrived.
    expect(reason(oneByteRecords.subarray(0, 16380))).toBe('too_large');
    expect(reason(oneByteRecords.subarray(0, 16384))).toBe('too_large');
    expect(reason(oneByteRecords)).toBe('too_large');
  });

  it('refuses a declared 16 MiB hello after 9 bytes, without waiting', () => {
    expect(reason(Buffer.from('160301000401ffffff', 'hex'))).toBe('too_large');
  });

  it('need-more for the first bytes, and for an SSLv2 header without its type byte', () => {
    expect(reason(Buffer.alloc(0))).toBe('need-more');
    expect(reason(Buffer.from([0x16]))).toBe('need-more');
    expect(reason(Buffer.from([0x16, 3, 1, 0]))).toBe('need-more');
    expect(reason(Buffer.from([0x80, 0x2e]))).toBe('need-more');
  });
});
