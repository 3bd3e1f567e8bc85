import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { z } from 'zod';
import {
  AllowedTrafficSummary,
  type CompletionEvent,
  createEventEmitter,
  LatencyHistogram,
  type SummarisedDecision,
  type SummaryEvent,
  type summaryEventSchema,
} from '../src/index.js';

const HASH = 'a'.repeat(64);
const T0 = Date.parse('2026-01-31T10:00:30.000Z');

const allowed = (host = 'api.stripe.com', port = 443): SummarisedDecision => ({
  result: 'allowed',
  scheme: 'https',
  host,
  port,
});

let seq = 0;
const completion = (fields: Partial<CompletionEvent> = {}): CompletionEvent => ({
  'event.name': 'egress.completion',
  'egress.schema': 1,
  'egress.source': 'sdk',
  'service.name': 'payments',
  'egress.id': `c-${++seq}`,
  'egress.hook': 'fetch',
  'egress.rule': 'stripe',
  'egress.policy.hash': HASH,
  'egress.outcome': 'ok',
  'egress.duration_ms': 10,
  'server.address': 'api.stripe.com',
  'server.port': 443,
  'http.response.status_code': 200,
  'egress.bytes.sent': 100,
  'egress.bytes.received': 1000,
  ...fields,
});

/** A number within 2% of `value` (the histogram's accuracy). */
const within2 = (value: number) => expect.closeTo(value, -Math.log10(0.04 * value));

function summary(options: { intervalMs?: number; maxKeys?: number } = {}) {
  const emitted: SummaryEvent[] = [];
  const s = new AllowedTrafficSummary({ emit: (e) => emitted.push(e), source: 'sdk', ...options });
  return { s, emitted };
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('AllowedTrafficSummary', () => {
  it('writes one event per rule, origin and outcome when the interval ends, with count, bytes and quantiles', () => {
    const { s, emitted } = summary();
    for (let i = 1; i <= 100; i++) {
      expect(s.record(completion({ 'egress.duration_ms': i }), allowed())).toBe(true);
    }
    s.record(
      completion({
        'egress.rule': 'github',
        'server.address': 'api.github.com',
        'egress.outcome': 'timeout',
        'error.type': 'EgressTimeoutError',
        'egress.duration_ms': 30_000,
        'egress.bytes.received': undefined,
      }),
      allowed('api.github.com'),
    );
    expect(s.size).toBe(2);
    vi.advanceTimersByTime(29_999);
    expect(emitted).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(emitted).toHaveLength(2);
    expect(emitted[0]).toEqual({
      'event.name': 'egress.summary',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': 'payments',
      'egress.rule': 'stripe',
      'egress.policy.hash': HASH,
      'egress.outcome': 'ok',
      'url.scheme': 'https',
      'server.address': 'api.stripe.com',
      'server.port': 443,
      'error.type': undefined,
      // Counting began mid-interval; the interval ends on the minute.
      'egress.summary.start': '2026-01-31T10:00:30.000Z',
      'egress.summary.end': '2026-01-31T10:01:00.000Z',
      'egress.summary.count': 100,
      'egress.bytes.sent': 10_000,
      'egress.bytes.received': 100_000,
      'egress.summary.duration_p50_ms': within2(50),
      'egress.summary.duration_p90_ms': within2(90),
      'egress.summary.duration_p99_ms': within2(99),
      'egress.summary.duration_max_ms': 100,
    });
    expect(emitted[1]).toMatchObject({
      'egress.rule': 'github',
      'server.address': 'api.github.com',
      'egress.outcome': 'timeout',
      'error.type': 'EgressTimeoutError',
      'egress.summary.count': 1,
      'egress.bytes.received': 0,
      'egress.summary.duration_max_ms': 30_000,
    });
    // Nothing counted: nothing written, and no timer left running.
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(120_000);
    expect(emitted).toHaveLength(2);
    // The next interval is a whole minute.
    s.record(completion(), allowed());
    vi.advanceTimersByTime(60_000);
    expect(emitted).toHaveLength(3);
    expect(emitted[2]).toMatchObject({
      'egress.summary.start': '2026-01-31T10:03:00.000Z',
      'egress.summary.end': '2026-01-31T10:04:00.000Z',
      'egress.summary.count': 1,
    });
  });

  it('summarises only allowed traffic that ended ok, error, timeout or circuit_open', () => {
    const { s, emitted } = summary();
    expect(AllowedTrafficSummary.covers({ result: 'allowed' })).toBe(true);
    expect(AllowedTrafficSummary.covers({ result: 'denied' })).toBe(false);
    expect(AllowedTrafficSummary.covers({ result: 'reported' })).toBe(false);
    expect(s.record(completion(), { ...allowed(), result: 'reported' })).toBe(false);
    expect(s.record(completion(), { ...allowed(), result: 'denied' })).toBe(false);
    // A TLS refusal and a late denial are one event each.
    expect(s.record(completion({ 'egress.outcome': 'tls', 'error.type': 'EgressTlsError' }), allowed())).toBe(
      false,
    );
    expect(s.record(completion({ 'egress.outcome': 'denied' }), allowed())).toBe(false);
    expect(s.record(completion({ 'egress.outcome': 'something_new' }), allowed())).toBe(false);
    for (const outcome of ['ok', 'error', 'timeout', 'circuit_open']) {
      expect(s.record(completion({ 'egress.outcome': outcome }), allowed())).toBe(true);
    }
    s.flush();
    expect(emitted.map((e) => e['egress.outcome'])).toEqual(['ok', 'error', 'timeout', 'circuit_open']);
  });

  it('keys by error type for failures, by policy (a reload starts afresh) and by service', () => {
    const { s, emitted } = summary();
    s.record(completion({ 'egress.outcome': 'error', 'error.type': 'ECONNRESET' }), allowed());
    s.record(completion({ 'egress.outcome': 'error', 'error.type': 'ECONNRESET' }), allowed());
    s.record(completion({ 'egress.outcome': 'error', 'error.type': 'ECONNREFUSED' }), allowed());
    // An error type on an ok completion is not part of its key.
    s.record(completion({ 'error.type': 'ignored' }), allowed());
    s.record(completion(), allowed());
    s.record(completion({ 'egress.policy.hash': 'b'.repeat(64) }), allowed());
    s.record(completion({ 'service.name': 'search' }), allowed());
    s.flush();
    expect(
      emitted.map((e) => [
        e['egress.outcome'],
        e['error.type'],
        e['egress.policy.hash'].slice(0, 1),
        e['service.name'],
        e['egress.summary.count'],
      ]),
    ).toEqual([
      ['error', 'ECONNRESET', 'a', 'payments', 2],
      ['error', 'ECONNREFUSED', 'a', 'payments', 1],
      ['ok', undefined, 'a', 'payments', 2],
      ['ok', undefined, 'b', 'payments', 1],
      ['ok', undefined, 'a', 'search', 1],
    ]);
  });

  it('an origin is scheme, host and port: the same host on two ports is two summaries', () => {
    const { s, emitted } = summary();
    s.record(completion(), allowed());
    s.record(completion({ 'server.port': 8443 }), allowed('api.stripe.com', 8443));
    s.record(completion({ 'server.address': undefined, 'server.port': undefined }), allowed('10.0.0.1', 22));
    s.flush();
    expect(emitted.map((e) => `${e['url.scheme']}://${e['server.address']}:${e['server.port']}`)).toEqual([
      'https://api.stripe.com:443',
      'https://api.stripe.com:8443',
      'https://10.0.0.1:22',
    ]);
  });

  it('an interval seen late (a busy loop) is written, ending on its boundary, before the next is counted', () => {
    const { s, emitted } = summary();
    s.record(completion(), allowed());
    // The clock moves past the boundary without the timer having run.
    vi.setSystemTime(Date.parse('2026-01-31T10:02:10.000Z'));
    s.record(completion({ 'egress.duration_ms': 20 }), allowed());
    expect(emitted).toHaveLength(1);
    expect(emitted[0]).toMatchObject({
      'egress.summary.start': '2026-01-31T10:00:30.000Z',
      'egress.summary.end': '2026-01-31T10:01:00.000Z',
      'egress.summary.count': 1,
    });
    vi.advanceTimersByTime(50_000);
    expect(emitted).toHaveLength(2);
    expect(emitted[1]).toMatchObject({
      'egress.summary.start': '2026-01-31T10:02:00.000Z',
      'egress.summary.end': '2026-01-31T10:03:00.000Z',
      'egress.summary.duration_max_ms': 20,
    });
  });

  it('flush() writes the open interval up to now; close() writes it and stops summarising', () => {
    const { s, emitted } = summary({ intervalMs: 10_000 });
    s.record(completion(), allowed());
    vi.advanceTimersByTime(2_000);
    s.flush();
    expect(emitted[0]).toMatchObject({
      'egress.summary.start': '2026-01-31T10:00:30.000Z',
      'egress.summary.end': '2026-01-31T10:00:32.000Z',
    });
    s.record(completion(), allowed());
    vi.advanceTimersByTime(1_000);
    s.close();
    expect(emitted[1]).toMatchObject({
      'egress.summary.start': '2026-01-31T10:00:32.000Z',
      'egress.summary.end': '2026-01-31T10:00:33.000Z',
    });
    expect(vi.getTimerCount()).toBe(0);
    expect(s.record(completion(), allowed())).toBe(false);
    s.close();
    expect(emitted).toHaveLength(2);
  });

  it('holds at most maxKeys keys per interval: beyond, completions are left to be written one by one', () => {
    const { s, emitted } = summary({ maxKeys: 2 });
    expect(s.record(completion(), allowed('a.example'))).toBe(true);
    expect(s.record(completion({ 'server.address': 'b.example' }), allowed('b.example'))).toBe(true);
    expect(s.record(completion({ 'server.address': 'c.example' }), allowed('c.example'))).toBe(false);
    // Existing keys still count.
    expect(s.record(completion(), allowed('a.example'))).toBe(true);
    vi.advanceTimersByTime(30_000);
    expect(emitted.map((e) => e['egress.summary.count'])).toEqual([2, 1]);
    // A new interval has room again.
    expect(s.record(completion({ 'server.address': 'c.example' }), allowed('c.example'))).toBe(true);
  });

  it('refuses a bad interval or key limit', () => {
    expect(() => new AllowedTrafficSummary({ emit: () => {}, source: 'sdk', intervalMs: 0 })).toThrow(
      /interval/,
    );
    expect(() => new AllowedTrafficSummary({ emit: () => {}, source: 'sdk', maxKeys: 0.5 })).toThrow(
      /maxKeys/,
    );
  });
});

describe('LatencyHistogram', () => {
  it('gives quantiles within 2% over six orders of magnitude, and the exact maximum', () => {
    const h = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 0; i < 10_000; i++) values.push(0.05 * 1.0015 ** i); // 0.05 ms .. ~165 s
    for (const v of values) h.add(v);
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = values[Math.ceil(q * values.length) - 1]!;
      expect(Math.abs(h.quantile(q) - exact) / exact).toBeLessThanOrEqual(0.021);
    }
    expect(h.max).toBe(values.at(-1));
    expect(h.count).toBe(10_000);
  });

  it('keeps zero, sub-microsecond and over-an-hour durations in range', () => {
    const h = new LatencyHistogram();
    h.add(0);
    h.add(0.0001);
    h.add(10 * 3_600_000);
    // At or below 1 µs: the bucket of the smallest, reported as the minimum seen.
    expect(h.quantile(0.5)).toBe(0);
    expect(h.quantile(1)).toBe(10 * 3_600_000);
    expect(new LatencyHistogram().quantile(0.5)).toBe(0);
  });
});

describe('summary events', () => {
  it('have the same fields, with the same optionality, as the TypeScript type', () => {
    type Keys<T> = keyof T;
    type OptionalKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T];
    type Out = z.output<typeof summaryEventSchema>;
    expectTypeOf<Keys<Out>>().toEqualTypeOf<Keys<SummaryEvent>>();
    expectTypeOf<OptionalKeys<Out>>().toEqualTypeOf<OptionalKeys<SummaryEvent>>();
    expectTypeOf<Out>().toExtend<SummaryEvent>();
  });

  it('are written by the emitter as info lines that the published schema accepts, and as OCSF with every field', () => {
    vi.useRealTimers();
    const lines: string[] = [];
    const sink = () =>
      new Writable({
        write(chunk, _encoding, callback) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          callback();
        },
      });
    const events = createEventEmitter({ destination: sink() });
    const s = new AllowedTrafficSummary({ emit: (e) => events.emit(e), source: 'edge' });
    s.record(completion({ 'egress.source': 'edge' }), allowed());
    s.record(completion({ 'egress.outcome': 'error', 'error.type': 'ECONNRESET' }), allowed());
    s.close();
    expect(lines).toHaveLength(2);
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats.default(ajv);
    const validate = ajv.compile(
      JSON.parse(readFileSync(new URL('../schema/events-v1.json', import.meta.url), 'utf8')),
    );
    for (const line of lines) {
      const event = JSON.parse(line);
      expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
      expect(event.level).toBe(30);
      expect(event['egress.source']).toBe('edge');
    }
    expect(JSON.parse(lines[0]!).msg).toBe('egress summary: 1 ok to https://api.stripe.com:443');

    lines.length = 0;
    const ocsf = createEventEmitter({ destination: sink(), format: 'ocsf' });
    const o = new AllowedTrafficSummary({ emit: (e) => ocsf.emit(e), source: 'sdk' });
    o.record(completion(), allowed());
    o.close();
    const line = JSON.parse(lines[0]!);
    expect(line.class_uid).toBe(0);
    expect(line.unmapped).toMatchObject({
      'egress.summary.count': 1,
      'server.address': 'api.stripe.com',
      'server.port': 443,
      'egress.outcome': 'ok',
      'egress.bytes.received': 1000,
      'egress.rule': 'stripe',
    });
  });
});
