import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEventEmitter,
  type DecisionEvent,
  EVENT_AUDIT_FILE_ENV,
  type PolicyEvent,
} from '../src/index.js';

const HASH = 'c'.repeat(64);

function decision(overrides: Partial<DecisionEvent> = {}): DecisionEvent {
  return {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.id': 'x-1',
    'egress.decision': 'allowed',
    'egress.reason': 'allowed',
    'egress.rule': 'api',
    'egress.mode': 'enforce',
    'egress.policy.hash': HASH,
    'egress.hook': 'fetch',
    'url.scheme': 'https',
    'server.address': 'api.example.com',
    'server.port': 443,
    'http.request.method': 'GET',
    ...overrides,
  };
}

/** A destination that keeps each line pino writes. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { stream, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createEventEmitter', () => {
  it('writes one JSON line per event: the event, an ISO time, the level and a message', () => {
    const sink = capture();
    const events = createEventEmitter({ destination: sink.stream });
    events.emit(decision());
    events.emit(
      decision({
        'egress.decision': 'denied',
        'egress.reason': 'host_not_allowed',
        'egress.rule': undefined,
      }),
    );
    const [allowed, denied] = sink.parsed();
    expect(allowed).toMatchObject({ level: 30, 'event.name': 'egress.decision', 'egress.rule': 'api' });
    expect(allowed?.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(allowed?.msg).toBe('egress allowed: allowed');
    expect(denied).toMatchObject({ level: 40, 'egress.decision': 'denied' });
    expect(denied).not.toHaveProperty('egress.rule');
    expect(sink.lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(events.stats()).toMatchObject({ emitted: 2, written: 2, dropped: 0, state: 'ok' });
  });

  it("writes through the application's logger as child lines marked egress: true", () => {
    const sink = capture();
    const app = pino({ base: { pid: 1 } }, sink.stream);
    const events = createEventEmitter({ logger: app, level: 'debug' });
    events.emit(decision());
    expect(sink.lines).toHaveLength(0); // debug is below the application's level
    events.emit(decision({ 'egress.decision': 'reported', 'egress.reason': 'host_not_allowed' }));
    expect(sink.parsed()[0]).toMatchObject({
      egress: true,
      pid: 1,
      level: 40,
      'egress.decision': 'reported',
    });
    expect(events.stats().emitted).toBe(2);
  });

  it('writes OCSF objects alone in ocsf format, and nests them under "ocsf" through a logger', () => {
    const sink = capture();
    createEventEmitter({ destination: sink.stream, format: 'ocsf' }).emit(decision());
    const [line] = sink.parsed();
    expect(line).toMatchObject({
      class_uid: 4002,
      activity_id: 3,
      type_uid: 400203,
      message: 'egress allowed: allowed',
    });
    expect(typeof line?.time).toBe('number');
    expect(line).not.toHaveProperty('level');
    expect(line).not.toHaveProperty('msg');

    const appSink = capture();
    createEventEmitter({ logger: pino(appSink.stream), format: 'ocsf' }).emit(decision());
    expect(appSink.parsed()[0]).toMatchObject({ egress: true, ocsf: { class_uid: 4002 } });
  });

  it('messages name what happened for every kind of event', () => {
    const sink = capture();
    const events = createEventEmitter({ destination: sink.stream });
    const reloaded: PolicyEvent = {
      'event.name': 'egress.policy.reloaded',
      'egress.schema': 1,
      'egress.source': 'edge',
      'egress.policy.hash': HASH,
    };
    events.emit(reloaded);
    events.emit({ ...reloaded, 'event.name': 'egress.policy.rejected', 'egress.policy.problems': ['bad'] });
    events.emit({
      'event.name': 'egress.breaker.state',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'egress.breaker.state': 'open',
      'egress.breaker.key': 'api|https://api.example.com:443',
    });
    events.emit({
      'event.name': 'egress.completion',
      'egress.schema': 1,
      'egress.source': 'sdk',
      'egress.id': 'x-1',
      'egress.hook': 'fetch',
      'egress.policy.hash': HASH,
      'egress.outcome': 'ok',
      'egress.duration_ms': 3,
    });
    expect(sink.parsed().map((l) => [l.level, l.msg])).toEqual([
      [30, 'egress policy reloaded'],
      [40, 'egress policy rejected'],
      [40, 'egress breaker open: api|https://api.example.com:443'],
      [30, 'egress completed: ok'],
    ]);
  });

  it('envelope: epoch time and base fields for transports that read pino defaults; no dotted base names', () => {
    const sink = capture();
    createEventEmitter({
      destination: sink.stream,
      envelope: { time: 'epoch', base: { pid: 42, hostname: 'h1' } },
    }).emit(decision());
    const [line] = sink.parsed();
    expect(line).toMatchObject({ pid: 42, hostname: 'h1', 'event.name': 'egress.decision' });
    expect(typeof line?.time).toBe('number');
    expect(() =>
      createEventEmitter({ destination: sink.stream, envelope: { base: { 'host.name': 'x' } } }),
    ).toThrow(/dotted names belong to the event schema/);
  });

  it("passes pino's configuration message on to a transport (which may wait for it)", () => {
    const messages: unknown[] = [];
    const stream = Object.assign(new Writable({ write: (_c, _e, cb) => cb() }), {});
    stream.on('message', (m) => messages.push(m));
    createEventEmitter({ destination: stream });
    expect(messages).toEqual([expect.objectContaining({ code: 'PINO_CONFIG' })]);
  });

  describe(`the ${EVENT_AUDIT_FILE_ENV} test hook`, () => {
    const saved = process.env[EVENT_AUDIT_FILE_ENV];
    const dir = mkdtempSync(join(tmpdir(), 'egress-audit-'));
    afterEach(() => {
      if (saved === undefined) delete process.env[EVENT_AUDIT_FILE_ENV];
      else process.env[EVENT_AUDIT_FILE_ENV] = saved;
    });

    it('appends every emitted event, in the native schema, to the named file, in OCSF mode too', () => {
      const file = join(dir, 'audit.jsonl');
      process.env[EVENT_AUDIT_FILE_ENV] = file;
      const events = createEventEmitter({ destination: capture().stream, format: 'ocsf' });
      events.emit(decision({ 'egress.id': 'a' }));
      events.emit(decision({ 'egress.id': 'b', 'egress.rule': undefined }));
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
      expect(lines.map((l) => JSON.parse(l)['egress.id'])).toEqual(['a', 'b']);
      expect(JSON.parse(lines[1]!)).not.toHaveProperty('egress.rule');
      rmSync(dir, { recursive: true, force: true });
    });

    it('is off when the variable is not set', () => {
      delete process.env[EVENT_AUDIT_FILE_ENV];
      const sink = capture();
      createEventEmitter({ destination: sink.stream }).emit(decision());
      expect(sink.lines).toHaveLength(1);
    });
  });

  it('flush() resolves once an asynchronous file destination has written everything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-flush-'));
    const file = join(dir, 'events.jsonl');
    const destination = pino.destination({ dest: file, sync: false, mkdir: true });
    const events = createEventEmitter({ destination });
    for (let i = 0; i < 2000; i++) events.emit(decision({ 'egress.id': `f-${i}` }));
    await events.flush();
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(2000);
    destination.end();
    rmSync(dir, { recursive: true, force: true });
  });
});
