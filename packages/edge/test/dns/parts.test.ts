/** The DNS guard's parts on their own: the query reader, SVCB rewriting, bindings, signals, rate limit. */
import { describe, expect, it } from 'vitest';
import { DnsBindings } from '../../src/dns/bindings.js';
import { ExfiltrationTracker, shannonEntropy } from '../../src/dns/exfiltration.js';
import { readQuery } from '../../src/dns/query.js';
import { SourceRateLimiter } from '../../src/dns/rate-limit.js';
import { stripEch } from '../../src/dns/svcb.js';
import { answersQuery, buildUpstreamQuery, parseServer } from '../../src/dns/upstream.js';
import { query } from './dns-kit.js';

describe('readQuery', () => {
  it('reads a query with EDNS, keeping the case of the labels and lower-casing the name', () => {
    const q = readQuery(query('Api.Example.COM', 'AAAA', 7, true));
    expect(q).toMatchObject({
      id: 7,
      labels: ['Api', 'Example', 'COM'],
      name: 'api.example.com',
      plainName: true,
      qtype: 28,
      qclass: 1,
      edns: { payload: 1232, dnssecOk: false, version: 0 },
    });
  });

  it('escapes a label with a dot or a control byte so it can never match a rule', () => {
    const message = Buffer.from([
      0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 0x61, 0x70, 0x69, 0x2e, 0x63, 0x6f, 0x6d, 0, 0, 1, 0, 1,
    ]);
    expect(readQuery(message)).toMatchObject({ name: 'api\\.com', plainName: false });
  });

  it('refuses two questions, records in the answer section, trailing bytes and labels over 63 bytes', () => {
    const two = query('a.example', 'A');
    two.writeUInt16BE(2, 4);
    expect(readQuery(two)).toMatchObject({ kind: 'answer', rcode: 1 });
    const answers = query('a.example', 'A');
    answers.writeUInt16BE(1, 6);
    expect(readQuery(answers)).toMatchObject({ kind: 'answer', rcode: 1 });
    expect(readQuery(Buffer.concat([query('a.example', 'A'), Buffer.from([0])]))).toMatchObject({
      why: 'bytes after the last record',
    });
    const long = Buffer.concat([
      query('a.example', 'A').subarray(0, 12),
      Buffer.from([64]),
      Buffer.alloc(64, 0x61),
    ]);
    expect(readQuery(long)).toMatchObject({ kind: 'answer', rcode: 1, why: 'a label over 63 bytes' });
    expect(readQuery(Buffer.alloc(5))).toMatchObject({ kind: 'drop' });
  });
});

describe('the upstream query', () => {
  it('is built from the labels, with its own OPT record, and answers are matched by ID and question', () => {
    const sent = buildUpstreamQuery(0x1234, {
      labels: ['Api', 'example', 'com'],
      qtype: 1,
      qclass: 1,
      checkingDisabled: false,
      dnssecOk: true,
    });
    expect(sent.readUInt16BE(0)).toBe(0x1234);
    expect(sent.readUInt16BE(10)).toBe(1);
    const answer = Buffer.from(sent.subarray(0, sent.length - 11));
    answer.writeUInt16BE(0x8180, 2);
    answer.writeUInt16BE(0, 10);
    expect(answersQuery(answer, sent)).toBe(true);
    answer[13] = 0x41; // 'A' for 'A': case may differ
    expect(answersQuery(answer, sent)).toBe(true);
    answer[13] = 0x42;
    expect(answersQuery(answer, sent)).toBe(false);
    expect(parseServer('[fd00::53]:5353')).toEqual({ host: 'fd00::53', port: 5353 });
    expect(parseServer('10.0.0.2')).toEqual({ host: '10.0.0.2', port: 53 });
    expect(() => parseServer('resolver.example')).toThrow(/not a resolver address/);
  });
});

describe('stripEch', () => {
  it('removes ech from the parameters and from mandatory, and reads the hints', () => {
    const rdata = Buffer.from([
      0,
      1,
      0, // priority 1, target "."
      0,
      0,
      0,
      4,
      0,
      4,
      0,
      5, // mandatory: ipv4hint, ech
      0,
      4,
      0,
      4,
      192,
      0,
      2,
      1, // ipv4hint 192.0.2.1
      0,
      5,
      0,
      2,
      0xab,
      0xcd, // ech
      0,
      6,
      0,
      16,
      0x20,
      0x01,
      0x0d,
      0xb8,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1, // ipv6hint 2001:db8::1
    ]);
    const out = stripEch(rdata)!;
    expect(out.echRemoved).toBe(true);
    expect(out.hints).toEqual(['192.0.2.1', '2001:db8::1']);
    expect([...out.rdata.subarray(0, 9)]).toEqual([0, 1, 0, 0, 0, 0, 2, 0, 4]);
    expect(out.rdata.includes(Buffer.from([0, 5, 0, 2]))).toBe(false);
    expect(stripEch(Buffer.from([0, 1, 0, 0, 5, 0, 9]))).toBeUndefined();
    // Keys out of order are malformed (RFC 9460 2.2).
    expect(stripEch(Buffer.from([0, 1, 0, 0, 3, 0, 2, 1, 187, 0, 1, 0, 0]))).toBeUndefined();
  });
});

describe('DnsBindings', () => {
  it('keeps an address at least for the floor, and for longer TTLs as given', () => {
    let now = 0;
    const b = new DnsBindings({ minTtlMs: 300_000, now: () => now });
    b.bind('a.example', '192.0.2.1', 5);
    b.bind('b.example', '192.0.2.2', 3600);
    now = 299_000;
    expect(b.holds('a.example', '192.0.2.1')).toBe(true);
    now = 301_000;
    expect(b.holds('a.example', '192.0.2.1')).toBe(false);
    expect(b.holds('b.example', '192.0.2.2')).toBe(true);
    expect(b.holds('b.example', '192.0.2.3')).toBe(false);
  });
});

describe('exfiltration signals', () => {
  it('measure label length, entropy and distinct names per parent in the window', () => {
    let now = 0;
    const t = new ExfiltrationTracker({ windowMs: 60_000, now: () => now });
    expect(t.observe('www.example.co.uk')).toMatchObject({ parent: 'example.co.uk', parentDistinctNames: 1 });
    for (let i = 0; i < 20; i++) t.observe(`chunk${i}x9f2kq.t.example`);
    const s = t.observe('mzxw6ytboi2dkmzq.t.example');
    expect(s).toMatchObject({ parent: 't.example', parentDistinctNames: 21, labelMaxLength: 16 });
    expect(s.entropy).toBeGreaterThan(3);
    now = 61_000;
    expect(t.observe('again.t.example').parentDistinctNames).toBe(1);
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
  });
});

describe('SourceRateLimiter', () => {
  it('lets a burst through, then the sustained rate, per source', () => {
    let now = 0;
    const r = new SourceRateLimiter({ perSecond: 10, burst: 5, now: () => now });
    const burst = Array.from({ length: 8 }, () => r.take('10.0.0.1'));
    expect(burst.filter(Boolean)).toHaveLength(5);
    expect(r.take('10.0.0.2')).toBe(true);
    now = 200; // two tokens later
    expect([r.take('10.0.0.1'), r.take('10.0.0.1'), r.take('10.0.0.1')]).toEqual([true, true, false]);
  });
});
