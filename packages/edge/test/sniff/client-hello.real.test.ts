import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ClientHelloInfo, effectiveMaxVersion, parseClientHello } from '../../src/sniff/index.js';
import { type Capture, captureRealHellos } from './helpers/capture.js';
import { frame, unframe } from './helpers/hello-builder.js';
import { referenceParse } from './helpers/reference.js';

let captures: Map<string, Capture>;

beforeAll(async () => {
  captures = await captureRealHellos();
});

function capture(name: string): Buffer {
  const c = captures.get(name);
  if (!c) throw new Error(`no capture from ${name}`);
  return c.bytes;
}

function okHello(bytes: Buffer): ClientHelloInfo & { consumed: number } {
  const r = parseClientHello(bytes);
  if (r.status !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return { ...r.hello, consumed: r.consumed };
}

/** The handshake message (type, length, body) carried by a captured single-record hello. */
function handshakeMessage(bytes: Buffer): Buffer {
  const hs = unframe(bytes);
  return hs.subarray(0, 4 + hs.readUIntBE(1, 3));
}

/** Fields that must not change when the same hello is framed differently. */
function content(h: ClientHelloInfo & { consumed?: number }) {
  const { records: _r, recordVersion: _v, consumed: _c, ...rest } = h;
  return rest;
}

const EXPECTED: Record<string, { sni: string | undefined; alpn: string[]; max: number }> = {
  curl: { sni: 'some.name.test', alpn: ['h2', 'http/1.1'], max: 0x0304 },
  'openssl-default': { sni: 'x.example.test', alpn: ['h2', 'http/1.1'], max: 0x0304 },
  'openssl-tls1_2': { sni: 'x.example.test', alpn: ['h2', 'http/1.1'], max: 0x0303 },
  'openssl-no_tls1_3': { sni: 'x.example.test', alpn: ['h2', 'http/1.1'], max: 0x0303 },
  'openssl-noservername': { sni: undefined, alpn: ['http/1.1'], max: 0x0304 },
  node: { sni: 'node.example.test', alpn: ['h2', 'http/1.1'], max: 0x0304 },
};

describe('ClientHellos captured from real clients', () => {
  it('captured every required client', () => {
    for (const name of Object.keys(EXPECTED))
      expect(captures.get(name)?.bytes.length ?? 0).toBeGreaterThan(100);
  });

  it.each(Object.entries(EXPECTED))('%s: SNI, ALPN and version', (name, want) => {
    const bytes = capture(name);
    const hello = okHello(bytes);
    expect(hello.serverName).toBe(want.sni);
    expect(hello.serverNameCount).toBe(want.sni === undefined ? 0 : 1);
    expect(hello.alpn).toEqual(want.alpn);
    expect(effectiveMaxVersion(hello)).toBe(want.max);
    expect(hello.legacyVersion).toBe(0x0303);
    expect(hello.hasEch).toBe(false);
    expect(hello.records).toBe(1);
    expect(hello.consumed).toBe(bytes.length);
    expect(hello.helloLength).toBe(bytes.length - 9);
    expect(hello.extensionTypes.includes(0)).toBe(want.sni !== undefined);
    expect(hello.cipherSuites.length).toBeGreaterThan(5);
  });

  it('openssl -tls1_1 (SECLEVEL=0): a TLS 1.0/1.1-only client has effectiveMaxVersion 0x0302', () => {
    // Debian's OpenSSL 3.0 sends a TLS 1.1 hello at SECLEVEL=0; CI installs that openssl.
    const c = captures.get('openssl-tls1_1');
    expect(c, 'openssl sent no TLS 1.1 hello').toBeDefined();
    if (!c) return;
    const hello = okHello(c.bytes);
    expect(hello.serverName).toBe('old.example.test');
    expect(hello.legacyVersion).toBe(0x0302);
    expect(hello.supportedVersions).toEqual([]);
    expect(effectiveMaxVersion(hello)).toBe(0x0302);
  });

  it('every strict prefix of every capture is need-more, and trailing data is not consumed', () => {
    for (const { bytes } of captures.values()) {
      for (let k = 0; k < bytes.length; k++) {
        expect(parseClientHello(bytes.subarray(0, k)).status, `prefix ${k}`).toBe('need-more');
      }
      const withTrailer = Buffer.concat([bytes, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x01, 0xff])]);
      const r = parseClientHello(withTrailer);
      expect(r.status === 'ok' && r.consumed).toBe(bytes.length);
    }
  });

  it('differential: read-tls-client-hello reads the same SNI and ALPN from every capture', async () => {
    for (const [name, { bytes }] of captures) {
      const ref = await referenceParse(bytes);
      expect(ref.ok, name).toBe(true);
      if (!ref.ok) continue;
      const hello = okHello(bytes);
      expect(hello.serverName, name).toBe(ref.serverName);
      expect(hello.alpn, name).toEqual(ref.alpn);
    }
  });
});

describe('record fragmentation and TCP segmentation of real hellos', () => {
  const names = () => [...captures.keys()];

  it('re-framed into N records of random sizes: same hello, records = N', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 600 }), { maxLength: 40 }),
        fc.constantFrom(0x0301, 0x0303),
        (pick, sizes, recordVersion) => {
          const all = names();
          const original = capture(all[pick % all.length]!);
          const message = handshakeMessage(original);
          const framed = frame(message, sizes, recordVersion);
          const expectedRecords = unframeCount(framed);
          const r = parseClientHello(framed);
          expect(r.status).toBe('ok');
          if (r.status !== 'ok') return;
          expect(r.hello.records).toBe(expectedRecords);
          expect(r.hello.recordVersion).toBe(recordVersion);
          expect(r.consumed).toBe(framed.length);
          expect(content(r.hello)).toEqual(content(okHello(original)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('one record per byte (the most fragmented form) still parses under the default cap', () => {
    const message = handshakeMessage(capture('curl'));
    const framed = frame(message, new Array(message.length).fill(1));
    expect(framed.length).toBe(message.length * 6);
    const hello = okHello(framed);
    expect(hello.records).toBe(message.length);
    expect(hello.serverName).toBe('some.name.test');
  });

  it('fragmented and fed in random TCP-sized slices: need-more until the last byte, then the same result', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 1460 }), { minLength: 1, maxLength: 30 }),
        (pick, sizes, slices) => {
          const all = names();
          const original = capture(all[pick % all.length]!);
          const framed = frame(handshakeMessage(original), sizes);
          let received = 0;
          for (const slice of [...slices, framed.length]) {
            received = Math.min(framed.length, received + slice);
            const r = parseClientHello(framed.subarray(0, received));
            if (received < framed.length) {
              expect(r.status).toBe('need-more');
            } else {
              expect(r.status).toBe('ok');
              if (r.status === 'ok') expect(content(r.hello)).toEqual(content(okHello(original)));
              break;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('divergence: read-tls-client-hello reads only the first record, so a fragmented hello defeats it', async () => {
    const message = handshakeMessage(capture('curl'));
    const framed = frame(message, [40]);
    expect(okHello(framed).serverName).toBe('some.name.test');
    const ref = await referenceParse(framed);
    expect(ref.ok).toBe(false);
  });
});

function unframeCount(bytes: Buffer): number {
  let n = 0;
  for (let off = 0; off + 5 <= bytes.length; off += 5 + bytes.readUInt16BE(off + 3)) n++;
  return n;
}
