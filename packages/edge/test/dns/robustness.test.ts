/**
 * Malformed, oversized, compression-loop and random packets, to the guard and from the upstream: never a
 * throw or a hang, always FORMERR (or another code) with the client's ID, or nothing; and the upstream
 * only ever receives a well-formed query for a name the policy allows.
 */
import { createEventEmitter, parsePolicy } from '@egress-guard/policy';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filterAnswer } from '../../src/dns/answer.js';
import { DnsBindings } from '../../src/dns/bindings.js';
import { DnsGuard } from '../../src/dns/dns-guard.js';
import { DnsMetrics } from '../../src/dns/dns-metrics.js';
import { ExfiltrationTracker } from '../../src/dns/exfiltration.js';
import { readQuery } from '../../src/dns/query.js';
import { SourceRateLimiter } from '../../src/dns/rate-limit.js';
import { UpstreamClient } from '../../src/dns/upstream.js';
import { query, type RawUpstream, rcodeOf, reply, startRawUpstream } from './dns-kit.js';

const policy = parsePolicy(`
version: 1
allow:
  - name: api
    hosts: [api.allowed.test]
`);

let upstream: RawUpstream;
let guard: DnsGuard;
const events: string[] = [];

beforeAll(async () => {
  upstream = await startRawUpstream((q) =>
    reply(q, [{ type: 'A', name: q.questions?.[0]?.name ?? '.', ttl: 5, data: '93.184.216.34' }]),
  );
  guard = new DnsGuard({
    policy: () => policy,
    events: createEventEmitter({ destination: { write: (line: string) => events.push(line) } }),
    metrics: new DnsMetrics(new Registry()),
    bindings: new DnsBindings(),
    exfiltration: new ExfiltrationTracker(),
    rateLimiter: new SourceRateLimiter({ perSecond: 1e9 }),
    upstream: new UpstreamClient([{ host: '127.0.0.1', port: upstream.port }], 500),
    servers: [{ host: '127.0.0.1', port: upstream.port }],
    timeoutMs: 500,
    refusal: 'refused',
    nextId: (() => {
      let n = 0;
      return () => `dns-${++n}`;
    })(),
  });
});
afterAll(() => upstream.close());

/** The reply is nothing, or a response to the same ID with a defined code. */
function checkReply(message: Buffer, answer: Buffer | undefined): void {
  if (answer === undefined) return;
  expect(answer.length).toBeGreaterThanOrEqual(12);
  expect(answer.readUInt16BE(0)).toBe(message.readUInt16BE(0));
  expect(answer.readUInt16BE(2) & 0x8000).toBe(0x8000);
  expect([0, 1, 2, 3, 4, 5]).toContain(rcodeOf(answer));
}

function checkUpstreamSawOnlyAllowedQuestions(): void {
  for (const { packet } of upstream.received) {
    expect(packet).toBeDefined();
    expect(packet!.questions).toHaveLength(1);
    expect(packet!.questions![0]!.name.toLowerCase()).toBe('api.allowed.test');
    expect(packet!.answers).toEqual([]);
    expect(packet!.authorities).toEqual([]);
  }
}

describe('the guard under hostile input', () => {
  it('answers random bytes with FORMERR or nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 700 }), async (bytes) => {
        const message = Buffer.from(bytes);
        checkReply(message, await guard.answer(message, '127.0.0.1', 'udp'));
      }),
      { numRuns: 400 },
    );
    checkUpstreamSawOnlyAllowedQuestions();
  });

  it('answers mutations of a valid query without crashing, and forwards only the allowed question', async () => {
    const base = query('api.allowed.test', 'A', 99, true);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: -8, max: 8 }),
        async (flips, resize) => {
          const message = Buffer.from(base);
          for (const [at, value] of flips) message[at] = value;
          const sized =
            resize < 0
              ? message.subarray(0, Math.max(0, message.length + resize))
              : Buffer.concat([message, Buffer.alloc(resize)]);
          checkReply(sized, await guard.answer(sized, '127.0.0.1', sized.length % 2 ? 'udp' : 'tcp'));
        },
      ),
      { numRuns: 300 },
    );
    checkUpstreamSawOnlyAllowedQuestions();
  });

  it('answers FORMERR to compression in the question (a pointer loop cannot be followed)', async () => {
    // Header (1 question), then a name that is a pointer to itself at offset 12.
    const loop = Buffer.from([0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]);
    const answer = await guard.answer(loop, '127.0.0.1', 'udp');
    expect(answer && rcodeOf(answer)).toBe(1);
    expect(readQuery(loop)).toMatchObject({
      kind: 'answer',
      rcode: 1,
      why: 'a compression pointer in the question',
    });
  });

  it('drops oversized messages and responses, and answers NOTIMP to other opcodes', async () => {
    expect(await guard.answer(Buffer.alloc(5000, 1), '127.0.0.1', 'udp')).toBeUndefined();
    const response = query('api.allowed.test', 'A');
    response[2]! |= 0x80;
    expect(await guard.answer(response, '127.0.0.1', 'udp')).toBeUndefined();
    const notify = query('api.allowed.test', 'A');
    notify[2] = (notify[2]! & 0x87) | (4 << 3);
    const answer = await guard.answer(notify, '127.0.0.1', 'udp');
    expect(answer && rcodeOf(answer)).toBe(4);
  });

  it('answers BADVERS to an EDNS version it does not speak', async () => {
    const message = query('api.allowed.test', 'A', 5, true);
    message[message.length - 11 + 6] = 1; // the OPT record's version byte
    const answer = await guard.answer(message, '127.0.0.1', 'udp');
    const decoded = dnsPacket.decode(answer!);
    expect(decoded.additionals?.[0]).toMatchObject({ type: 'OPT', extendedRcode: 1 });
  });
});

describe('upstream answers under hostile input', () => {
  it('never throws on random or mutated answers', () => {
    const good = reply(dnsPacket.decode(query('api.allowed.test', 'A')), [
      { type: 'CNAME', name: 'api.allowed.test', ttl: 5, data: 'a.example' },
      { type: 'A', name: 'a.example', ttl: 5, data: '93.184.216.34' },
    ]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
          fc
            .array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
            .map((flips) => {
              const m = Buffer.from(good);
              for (const [at, v] of flips) m[at] = v;
              return m;
            }),
        ),
        (message) => {
          const filtered = filterAnswer(message, 'api.allowed.test', 1);
          if (filtered) expect(filtered.chain[0]).toBe('api.allowed.test');
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('reads a worst-case pointer chain within the size limit, and refuses larger answers unread', () => {
    // 8000 pointers, each to the one before it, then 500 records whose owner is the last pointer.
    const header = Buffer.from([0, 1, 0x81, 0x80, 0, 0, 1, 0xf4, 0, 0, 0, 0]);
    const chain = Buffer.alloc(2 + 2 * 4000);
    chain[0] = 1;
    chain[1] = 0x61; // label "a" at offset 12 ...
    for (let i = 1; i < 4000; i++) chain.writeUInt16BE(0xc000 | (12 + 2 * (i - 1)), 2 * i);
    const last = 12 + 2 * 3999;
    const records: Buffer[] = [];
    for (let i = 0; i < 500; i++) {
      const r = Buffer.alloc(2 + 10 + 4);
      r.writeUInt16BE(0xc000 | last, 0);
      r.writeUInt16BE(1, 2);
      r.writeUInt16BE(1, 4);
      r.writeUInt16BE(4, 10);
      records.push(r);
    }
    const bomb = Buffer.concat([header, chain, ...records]);
    expect(bomb.length).toBeLessThanOrEqual(16_384);
    expect(() => filterAnswer(bomb, 'api.allowed.test', 1)).not.toThrow();
    expect(filterAnswer(Buffer.concat([bomb, Buffer.alloc(16_384)]), 'api.allowed.test', 1)).toBeUndefined();
  });
});
