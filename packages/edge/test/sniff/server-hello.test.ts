import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerHello } from '../../src/sniff/index.js';
import { type Capture, captureRealHellos } from './helpers/capture.js';
import {
  alpnExt,
  buildClientHello,
  ext,
  frame,
  record,
  sigAlgsExt,
  sniExt,
  supportedGroupsExt,
  supportedVersionsExt,
  u8,
  u16,
  u24,
  vec8,
  vec16,
} from './helpers/hello-builder.js';
import { exchange, selfSignedCert, startTlsServer } from './helpers/tls-server.js';

const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');
const ALERT_PROTOCOL_VERSION = 70;

let captures: Map<string, Capture>;
let servers: Record<'tls13' | 'tls12' | 'tls13only', { port: number; close: () => void }>;
const responses = new Map<string, Buffer>();

beforeAll(async () => {
  const [cert, caps] = await Promise.all([selfSignedCert(), captureRealHellos()]);
  captures = caps;
  const [tls13, tls12, tls13only] = await Promise.all([
    startTlsServer({ ...cert }),
    startTlsServer({ ...cert, maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] }),
    startTlsServer({ ...cert, minVersion: 'TLSv1.3' }),
  ]);
  servers = { tls13, tls12, tls13only };
});

afterAll(() => {
  for (const s of Object.values(servers ?? {})) s.close();
});

function hello(name: string): Buffer {
  const c = captures.get(name);
  if (!c) throw new Error(`no capture from ${name}`);
  return c.bytes;
}

async function respond(server: keyof typeof servers, clientHello: Buffer): Promise<Buffer> {
  const bytes = await exchange(servers[server].port, clientHello);
  responses.set(`${server}:${responses.size}`, bytes);
  return bytes;
}

/** A ServerHello handshake message. */
function serverHello(options: {
  version?: number;
  random?: Buffer;
  sessionId?: Buffer;
  cipher?: number;
  compression?: number;
  extensions?: Buffer[] | null;
}): Buffer {
  const body = Buffer.concat([
    u16(options.version ?? 0x0303),
    options.random ?? Buffer.alloc(32, 7),
    vec8(options.sessionId ?? Buffer.alloc(32, 1)),
    u16(options.cipher ?? 0x1301),
    u8(options.compression ?? 0),
    options.extensions === null ? Buffer.alloc(0) : vec16(Buffer.concat(options.extensions ?? [])),
  ]);
  return Buffer.concat([u8(2), u24(body.length), body]);
}

const serverVersion = (v: number) => ext(0x2b, u16(v));

describe('parseServerHello against a real Node TLS server', () => {
  it('TLS 1.3 server: selectedVersion 0x0304 from supported_versions, for curl, openssl and Node hellos', async () => {
    for (const name of ['curl', 'openssl-default', 'node']) {
      const answer = await respond('tls13', hello(name));
      const r = parseServerHello(answer);
      expect(r, name).toMatchObject({ status: 'ok', selectedVersion: 0x0304 });
      if (r.status === 'ok') expect([0x1301, 0x1302, 0x1303]).toContain(r.cipherSuite);
      // In TLS 1.3 ALPN travels in EncryptedExtensions, so the ServerHello cannot show it.
      expect(r.status === 'ok' && r.alpn).toBeUndefined();
    }
  });

  it('maxVersion TLSv1.2 server: selectedVersion 0x0303, and the selected ALPN is visible', async () => {
    const r = parseServerHello(await respond('tls12', hello('curl')));
    expect(r).toMatchObject({ status: 'ok', selectedVersion: 0x0303, alpn: 'http/1.1' });
  });

  it('a TLS 1.2-only client against a TLS 1.3-only server gets an alert (protocol_version)', async () => {
    const r = parseServerHello(await respond('tls13only', hello('openssl-tls1_2')));
    expect(r).toMatchObject({ status: 'error', reason: 'alert' });
    expect(r.status === 'error' && r.detail).toContain(`description=${ALERT_PROTOCOL_VERSION}`);
  });

  it('a TLS 1.1 client against a default Node server gets an alert', async () => {
    const old = captures.get('openssl-tls1_1')?.bytes ?? frame(buildClientHello({ legacyVersion: 0x0302 }));
    const r = parseServerHello(await respond('tls13', old));
    expect(r).toMatchObject({ status: 'error', reason: 'alert' });
  });

  it('HelloRetryRequest from a real server: ok with selectedVersion 0x0304', async () => {
    // An empty key_share makes the server ask again for a group it supports.
    const clientHello = frame(
      buildClientHello({
        extensions: [
          sniExt('hrr.example'),
          supportedGroupsExt(0x1d, 0x17),
          sigAlgsExt(),
          supportedVersionsExt(0x0304),
          ext(0x33, vec16(Buffer.alloc(0))),
        ],
      }),
    );
    const r = parseServerHello(await respond('tls13', clientHello));
    expect(r).toMatchObject({ status: 'ok', selectedVersion: 0x0304, helloRetryRequest: true });
  });

  it('every strict prefix of a real answer, up to the end of the ServerHello record, is need-more', async () => {
    for (const server of ['tls13', 'tls12'] as const) {
      const answer = await respond(server, hello('curl'));
      const firstRecordEnd = 5 + answer.readUInt16BE(3);
      for (let k = 0; k < firstRecordEnd; k++) {
        expect(parseServerHello(answer.subarray(0, k)).status, `${server} prefix ${k}`).toBe('need-more');
      }
      expect(parseServerHello(answer.subarray(0, firstRecordEnd)).status).toBe('ok');
    }
  });
});

describe('parseServerHello: hand-built answers', () => {
  const tls13 = serverHello({ extensions: [serverVersion(0x0304), ext(0x33, Buffer.alloc(36))] });

  it('TLS 1.2 ServerHello without supported_versions: server_version', () => {
    const r = parseServerHello(
      frame(serverHello({ cipher: 0xc02f, extensions: [alpnExt('h2')] }), [], 0x0303),
    );
    expect(r).toEqual({ status: 'ok', selectedVersion: 0x0303, cipherSuite: 0xc02f, alpn: 'h2' });
  });

  it('TLS 1.0 server and a ServerHello with no extensions block', () => {
    const r = parseServerHello(frame(serverHello({ version: 0x0301, cipher: 0x002f, extensions: null })));
    expect(r).toEqual({ status: 'ok', selectedVersion: 0x0301, cipherSuite: 0x002f });
  });

  it('a ServerHello fragmented over records and followed by other handshake messages', () => {
    const coalesced = Buffer.concat([tls13, Buffer.from([11, 0, 0, 3, 0, 0, 0])]);
    const r = parseServerHello(frame(coalesced, [10, 20], 0x0303));
    expect(r).toMatchObject({ status: 'ok', selectedVersion: 0x0304 });
  });

  it('a hand-built HelloRetryRequest', () => {
    const hrr = serverHello({
      random: HRR_RANDOM,
      extensions: [serverVersion(0x0304), ext(0x33, u16(0x1d))],
    });
    expect(parseServerHello(frame(hrr, [], 0x0303))).toEqual({
      status: 'ok',
      selectedVersion: 0x0304,
      cipherSuite: 0x1301,
      helloRetryRequest: true,
    });
  });

  const alert = (level: number, description: number) => record(21, 0x0303, Buffer.from([level, description]));
  const cases: { name: string; bytes: Buffer; reason: string }[] = [
    { name: 'HTTP answer', bytes: Buffer.from('HTTP/1.1 400 Bad Request\r\n'), reason: 'not_tls' },
    { name: 'SSH banner', bytes: Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), reason: 'not_tls' },
    { name: 'alert first', bytes: alert(2, 40), reason: 'alert' },
    {
      name: 'alert between fragments',
      bytes: Buffer.concat([
        frame(tls13.subarray(0, 10), [], 0x0303),
        alert(2, 80),
        frame(tls13.subarray(10), [], 0x0303),
      ]),
      reason: 'alert',
    },
    { name: 'alert of length 3', bytes: record(21, 0x0303, Buffer.from([2, 40, 0])), reason: 'malformed' },
    { name: 'record version 0x0300', bytes: frame(tls13, [], 0x0300), reason: 'malformed' },
    {
      name: 'Certificate before ServerHello',
      bytes: frame(Buffer.from([11, 0, 0, 3, 0, 0, 0])),
      reason: 'malformed',
    },
    { name: 'empty handshake record', bytes: record(22, 0x0303, Buffer.alloc(0)), reason: 'malformed' },
    {
      name: 'CCS between fragments',
      bytes: Buffer.concat([
        frame(tls13.subarray(0, 10), [], 0x0303),
        record(20, 0x0303, u8(1)),
        frame(tls13.subarray(10), [], 0x0303),
      ]),
      reason: 'malformed',
    },
    { name: 'declared too large', bytes: Buffer.from('160303000402ffffff', 'hex'), reason: 'too_large' },
    { name: 'compression 1', bytes: frame(serverHello({ compression: 1 })), reason: 'malformed' },
    {
      name: 'session_id 33',
      bytes: frame(serverHello({ sessionId: Buffer.alloc(33) })),
      reason: 'malformed',
    },
    { name: 'server_version 0x0200', bytes: frame(serverHello({ version: 0x0200 })), reason: 'malformed' },
    {
      name: 'supported_versions of 3 bytes',
      bytes: frame(serverHello({ extensions: [ext(0x2b, Buffer.from([3, 4, 0]))] })),
      reason: 'malformed',
    },
    {
      name: 'supported_versions selecting TLS 1.2',
      bytes: frame(serverHello({ extensions: [serverVersion(0x0303)] })),
      reason: 'malformed',
    },
    {
      name: 'supported_versions selecting GREASE',
      bytes: frame(serverHello({ extensions: [serverVersion(0x7a7a)] })),
      reason: 'malformed',
    },
    {
      name: 'ALPN with two protocols',
      bytes: frame(serverHello({ extensions: [alpnExt('h2', 'http/1.1')] })),
      reason: 'malformed',
    },
    {
      name: 'empty ALPN',
      bytes: frame(serverHello({ extensions: [ext(0x10, vec16(u8(0)))] })),
      reason: 'malformed',
    },
    {
      name: 'duplicate supported_versions',
      bytes: frame(serverHello({ extensions: [serverVersion(0x0304), serverVersion(0x0303)] })),
      reason: 'malformed',
    },
    {
      name: 'HelloRetryRequest without supported_versions',
      bytes: frame(serverHello({ random: HRR_RANDOM, extensions: [ext(0x33, u16(0x1d))] })),
      reason: 'malformed',
    },
    {
      name: 'extensions overrun',
      bytes: frame(serverHello({ extensions: [Buffer.concat([u16(0x2b), u16(40), u16(0x0304)])] })),
      reason: 'malformed',
    },
    { name: 'body too short', bytes: frame(Buffer.from([2, 0, 0, 4, 3, 3, 0, 0])), reason: 'malformed' },
  ];

  it.each(cases)('$name → $reason', ({ bytes, reason }) => {
    const r = parseServerHello(bytes);
    expect(r.status === 'error' ? r.reason : r.status).toBe(reason);
  });

  it('the alert detail carries the description code', () => {
    expect(parseServerHello(alert(2, 112))).toEqual({
      status: 'error',
      reason: 'alert',
      detail: 'description=112 level=2',
    });
  });

  it('too_large beyond maxBytes; need-more for short input', () => {
    const bytes = frame(tls13);
    expect(parseServerHello(bytes, bytes.length - 1)).toMatchObject({ reason: 'too_large' });
    expect(parseServerHello(Buffer.alloc(0)).status).toBe('need-more');
    expect(parseServerHello(alert(2, 40).subarray(0, 6)).status).toBe('need-more');
  });
});

describe('parseServerHello never throws and fails closed', () => {
  const check = (buf: Buffer, maxBytes?: number) => {
    const r = parseServerHello(buf, maxBytes);
    expect(['need-more', 'ok', 'error']).toContain(r.status);
    if (r.status === 'error') expect(['not_tls', 'malformed', 'too_large', 'alert']).toContain(r.reason);
    if (r.status === 'ok') {
      expect(parseServerHello(buf, maxBytes)).toEqual(r);
      expect(r.selectedVersion >> 8).toBe(3);
      if (r.helloRetryRequest) expect(r.selectedVersion).toBe(0x0304);
      // Cutting inside the first record can never be ok: the hello is read from whole records.
      if (buf.length >= 5) {
        const firstEnd = 5 + buf.readUInt16BE(3);
        expect(
          parseServerHello(buf.subarray(0, Math.min(firstEnd, buf.length) - 1), maxBytes).status,
        ).not.toBe('ok');
      }
    }
  };

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => check(Buffer.from(b))),
      { numRuns: 2000 },
    );
  });

  it('mutated real and hand-built answers', () => {
    const seeds = [...responses.values(), frame(tls13Seed(), [9, 30], 0x0303)].filter((b) => b.length > 0);
    expect(seeds.length).toBeGreaterThan(3);
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (pick, edits, cut) => {
          const b = Buffer.from(seeds[pick % seeds.length]!);
          for (const [pos, value] of edits) b[pos % b.length] = value;
          check(b.subarray(0, b.length - (cut % 4 === 0 ? cut % b.length : 0)));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

function tls13Seed(): Buffer {
  return serverHello({ extensions: [serverVersion(0x0304), ext(0x33, Buffer.alloc(36))] });
}
