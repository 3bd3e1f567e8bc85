import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectProtocol, parseClientHello, parseHttpHead, parseSshBanner } from '../../src/sniff/index.js';
import { frame, modernHello } from './helpers/hello-builder.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const text = (s: string) => Buffer.from(s, 'latin1');

describe('detectProtocol', () => {
  it.each([
    ['empty', Buffer.alloc(0), 'need-more'],
    ['0x16 alone', hex('16'), 'need-more'],
    ['TLS record header', hex('160301'), 'tls'],
    ['0x16 then not 3', hex('1604'), 'unknown'],
    ['SSLv2 hello', hex('802e01'), 'tls'],
    ['SSLv2 header, not a hello', hex('802e02'), 'unknown'],
    ['high bit, waiting for type', hex('80'), 'need-more'],
    ['SSH-', text('SSH-'), 'ssh'],
    ['S', text('S'), 'need-more'],
    ['SS', text('SS'), 'need-more'],
    ['SSH', text('SSH'), 'need-more'],
    ['SSH_', text('SSH_'), 'unknown'],
    ['GET', text('GET'), 'need-more'],
    ['GET ', text('GET /'), 'http'],
    ['CONNECT ', text('CONNECT a:443'), 'http'],
    ['lower-case get', text('get /'), 'unknown'],
    ['space first', text(' GET'), 'unknown'],
    ['21 letters', text('A'.repeat(21)), 'unknown'],
    ['20 letters', text('A'.repeat(20)), 'need-more'],
    ['NUL', hex('00'), 'unknown'],
    ['alert record', hex('150301'), 'unknown'],
  ])('%s → %s', (_name, bytes, want) => {
    expect(detectProtocol(bytes)).toBe(want);
  });

  it('agrees with the parsers: whatever they accept, it routes to them', () => {
    expect(detectProtocol(frame(modernHello('a.example')))).toBe('tls');
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom('', 'SSH-2.0-x\r\n', 'GET / HTTP/1.0\r\n\r\n'),
        (b, prefix) => {
          const buf = Buffer.concat([Buffer.from(prefix), Buffer.from(b)]);
          const d = detectProtocol(buf);
          expect(['tls', 'http', 'ssh', 'unknown', 'need-more']).toContain(d);
          if (parseClientHello(buf).status === 'ok') expect(d).toBe('tls');
          if (parseSshBanner(buf).status === 'ok') expect(d).toBe('ssh');
          const h = parseHttpHead(buf);
          if (h.status === 'ok' && /^[A-Z]+$/.test(h.method)) expect(d).toBe('http');
          // need-more must be honest: some extension of the bytes must be able to change the answer.
          if (d === 'need-more') expect(buf.length).toBeLessThanOrEqual(20);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
