import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSshBanner } from '../../src/sniff/index.js';

const client = (s: string | Buffer, maxBytes?: number) =>
  parseSshBanner(typeof s === 'string' ? Buffer.from(s, 'latin1') : s, maxBytes, { role: 'client' });
const server = (s: string | Buffer, maxBytes?: number) =>
  parseSshBanner(typeof s === 'string' ? Buffer.from(s, 'latin1') : s, maxBytes, { role: 'server' });
const reasonOf = (r: ReturnType<typeof client>) => (r.status === 'error' ? r.reason : r.status);

describe('parseSshBanner: accepted', () => {
  it.each([
    ['SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n', '2.0', 'OpenSSH_9.6p1', 'Ubuntu-3ubuntu13.5'],
    ['SSH-2.0-Go\r\n', '2.0', 'Go', undefined],
    ['SSH-2.0-PuTTY_Release_0.81\r\n', '2.0', 'PuTTY_Release_0.81', undefined],
    ['SSH-2.0-dropbear_2022.83\r\n', '2.0', 'dropbear_2022.83', undefined],
    ['SSH-2.0-JSCH-0.1.54\r\n', '2.0', 'JSCH-0.1.54', undefined],
    ['SSH-1.99-Cisco-1.25\r\n', '1.99', 'Cisco-1.25', undefined],
    ['SSH-2.0-x a comment with spaces\r\n', '2.0', 'x', 'a comment with spaces'],
  ])('%s', (line, protoVersion, softwareVersion, comments) => {
    const r = client(line);
    expect(r).toEqual({
      status: 'ok',
      protoVersion,
      softwareVersion,
      ...(comments === undefined ? {} : { comments }),
      bannerBytes: line.length,
    });
  });

  it('a server may send lines before its banner; bannerBytes counts them; binary after the CRLF is ignored', () => {
    const pre = 'Welcome to host\r\nauthorised use only\n';
    const bytes = Buffer.concat([Buffer.from(`${pre}SSH-2.0-OpenSSH_9.6\r\n`), Buffer.from([0, 0, 1, 0x14])]);
    expect(server(bytes)).toMatchObject({
      status: 'ok',
      softwareVersion: 'OpenSSH_9.6',
      bannerBytes: bytes.length - 4,
    });
  });

  it('a pre-banner line that starts like the prefix ("SSHX...") is still just a line', () => {
    expect(server('SSHX hello\r\nSSH-2.0-x\r\n')).toMatchObject({ status: 'ok', softwareVersion: 'x' });
  });

  it('trickled one byte at a time: need-more until the CRLF, then ok, from both roles', () => {
    const bytes = Buffer.from('SSH-2.0-OpenSSH_9.6p1 Debian-5\r\n');
    for (let k = 0; k < bytes.length; k++) {
      expect(client(bytes.subarray(0, k)).status).toBe('need-more');
      expect(server(bytes.subarray(0, k)).status).toBe('need-more');
    }
    expect(client(bytes).status).toBe('ok');
    const withPre = Buffer.from('banner text\r\nSSH-2.0-x\r\n');
    for (let k = 0; k < withPre.length; k++) expect(server(withPre.subarray(0, k)).status).toBe('need-more');
    expect(server(withPre).status).toBe('ok');
  });

  it('an identification line of exactly 255 bytes', () => {
    const line = `SSH-2.0-${'a'.repeat(255 - 10)}\r\n`;
    expect(line.length).toBe(255);
    expect(client(line).status).toBe('ok');
    expect(reasonOf(client(`SSH-2.0-${'a'.repeat(246)}\r\n`))).toBe('malformed');
  });
});

describe('parseSshBanner: refused', () => {
  it.each([
    ['SSH-1.5-OpenSSH_1.2.3\r\n', 'ssh1'],
    ['SSH-1.0-x\r\n', 'ssh1'],
    ['SSH-3.0-x\r\n', 'malformed'],
    ['SSH-2.1-x\r\n', 'malformed'],
    ['SSH-2.0\r\n', 'malformed'],
    ['SSH--x\r\n', 'malformed'],
    ['SSH-2.0-\r\n', 'malformed'],
    ['SSH-2.0-x \r\n', 'malformed'],
    ['SSH-2.0-x\n', 'malformed'],
    ['SSH-2.0-x\0y\r\n', 'malformed'],
    ['SSH-2.0-x\ty\r\n', 'malformed'],
    ['SSH-2.0-caf\xe9\r\n', 'malformed'],
    ['SSH-2.0-x\r\r\n', 'malformed'],
    ['GET / HTTP/1.1\r\n', 'not_ssh'],
    ['\x16\x03\x01', 'not_ssh'],
    ['ssh-2.0-x\r\n', 'not_ssh'],
    ['SSh', 'not_ssh'],
    ['banner first\r\nSSH-2.0-x\r\n', 'not_ssh'],
  ])('client %j → %s', (line, reason) => {
    expect(reasonOf(client(line))).toBe(reason);
  });

  it.each([
    ['hello\r\nSSH-1.5-x\r\n', 'ssh1'],
    ['line with NUL \0\r\nSSH-2.0-x\r\n', 'malformed'],
    ['SSH-2.0-x\n', 'malformed'],
  ])('server %j → %s', (line, reason) => {
    expect(reasonOf(server(line))).toBe(reason);
  });

  it('an identification line over 255 bytes is refused before its end arrives', () => {
    expect(reasonOf(client(`SSH-2.0-${'a'.repeat(300)}`))).toBe('malformed');
  });

  it('too_large: a server that talks forever without a banner, or a cap smaller than the banner', () => {
    const chatter = Buffer.from('hello there\r\n'.repeat(1000));
    expect(reasonOf(server(chatter))).toBe('too_large');
    expect(reasonOf(server(chatter.subarray(0, 4000)))).toBe('need-more');
    expect(reasonOf(client('SSH-2.0-OpenSSH_9.6\r\n', 10))).toBe('too_large');
  });

  it('defaults to the stricter client rules', () => {
    expect(reasonOf(parseSshBanner(Buffer.from('hi\r\nSSH-2.0-x\r\n')))).toBe('not_ssh');
  });
});

describe('parseSshBanner never throws and fails closed', () => {
  const check = (buf: Buffer, role: 'client' | 'server', maxBytes?: number) => {
    const r = parseSshBanner(buf, maxBytes, { role });
    if (r.status === 'error') expect(['not_ssh', 'ssh1', 'malformed', 'too_large']).toContain(r.reason);
    if (r.status === 'ok') {
      expect(parseSshBanner(buf.subarray(0, r.bannerBytes), maxBytes, { role })).toEqual(r);
      expect(parseSshBanner(buf.subarray(0, r.bannerBytes - 1), maxBytes, { role }).status).not.toBe('ok');
      expect(['2.0', '1.99']).toContain(r.protoVersion);
      expect(r.softwareVersion).toMatch(/^[\x21-\x7e]+$/);
    }
  };

  it('random bytes, random text and mutated banners, both roles', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (b, isServer) =>
        check(Buffer.from(b), isServer ? 'server' : 'client'),
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('S', 'H', '-', '2', '.', '0', '1', '9', ' ', '\r', '\n', 'x') }),
        fc.boolean(),
        fc.integer({ min: 1, max: 400 }),
        (s, isServer, maxBytes) => check(Buffer.from(s, 'latin1'), isServer ? 'server' : 'client', maxBytes),
      ),
      { numRuns: 2000 },
    );
    const seed = Buffer.from('pre\r\nSSH-2.0-OpenSSH_9.6p1 Debian-5\r\n');
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }), (edits) => {
        const b = Buffer.from(seed);
        for (const [pos, value] of edits) b[pos % b.length] = value;
        check(b, 'server');
        check(b.subarray(5), 'client');
      }),
      { numRuns: 2000 },
    );
  });
});
