/**
 * The emitter builds native lines itself on the hot path (no logger of the application's): each must be,
 * byte for byte, the line pino would have written for the same event, warnings and epoch time included.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventEmitter, type EgressEvent } from '../src/index.js';

function collector() {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

const EVENTS: EgressEvent[] = [
  {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'service.name': undefined,
    'egress.id': 'ab-1',
    'egress.decision': 'allowed',
    'egress.reason': 'allowed',
    'egress.rule': 'api',
    'egress.mode': 'enforce',
    'egress.policy.hash': 'f'.repeat(64),
    'egress.hook': 'fetch',
    'url.scheme': 'https',
    'url.full': 'https://api.example.test/v1/"quoted"\\path\u2028',
    'url.path': '/v1/x',
    'server.address': 'api.example.test',
    'server.port': 443,
    'http.request.method': 'GET',
  },
  {
    'event.name': 'egress.decision',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.id': 'ab-2',
    'egress.decision': 'denied',
    'egress.reason': 'host_not_allowed',
    'egress.rule': undefined,
    'egress.mode': 'enforce',
    'egress.policy.hash': 'f'.repeat(64),
    'egress.hook': 'http',
    'url.scheme': 'http',
    'server.address': 'exfil.example',
    'server.port': 80,
    'egress.message': 'egress denied: http://exfil.example:80 [host_not_allowed]: ünïcödé',
  },
  {
    'event.name': 'egress.completion',
    'egress.schema': 1,
    'egress.source': 'sdk',
    'egress.id': 'ab-1',
    'egress.hook': 'fetch',
    'egress.rule': 'api',
    'egress.policy.hash': 'f'.repeat(64),
    'egress.outcome': 'ok',
    'egress.duration_ms': 1.234,
    'server.address': 'api.example.test',
    'server.port': 443,
    'http.response.status_code': 200,
    'egress.bytes.received': 2,
  },
];

afterEach(() => {
  vi.useRealTimers();
});

describe('native lines built without pino', () => {
  for (const time of ['iso', 'epoch'] as const) {
    it(`equal pino's lines (time: ${time})`, () => {
      vi.useFakeTimers({ now: new Date('2026-12-03T08:00:00.123Z'), toFake: ['Date'] });
      const fast = collector();
      const emitter = createEventEmitter({ destination: fast, envelope: { time } });
      // The same event through a logger of the application's, which takes pino's own path.
      const slow = collector();
      const logger = pino(
        {
          base: undefined,
          messageKey: 'msg',
          timestamp: time === 'epoch' ? pino.stdTimeFunctions.epochTime : pino.stdTimeFunctions.isoTime,
        },
        slow,
      );
      const viaLogger = createEventEmitter({ logger });
      for (const event of EVENTS) {
        emitter.emit(event);
        viaLogger.emit(event);
      }
      expect(fast.lines).toHaveLength(EVENTS.length);
      // The logger path nests under a child with `egress: true`: compare without that binding.
      const expected = slow.lines.map((l) => l.replace('"egress":true,', ''));
      expect(fast.lines).toEqual(expected);
    });
  }
});
