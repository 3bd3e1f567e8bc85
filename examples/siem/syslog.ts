/**
 * Recipe: audit events to a syslog receiver (rsyslog, syslog-ng, a SIEM's syslog input) as RFC 5424
 * messages whose MSG is the event's JSON line: pino-syslog formats, pino-socket sends (UDP, or TCP with
 * one message per line).
 *
 *   npx tsx examples/siem/syslog.ts 127.0.0.1 514 udp
 */
import { once } from 'node:events';
import { hostname } from 'node:os';
import { createEventEmitter, type EventEmitter } from '@egress-guard/policy';
import pino from 'pino';
import { closeTransport } from './close-transport.js';
import { emitSamples, isMain } from './sample-events.js';

/** Options of {@link createSyslogEmitter}. */
export interface SyslogOptions {
  /** Receiver address. Default `127.0.0.1`. */
  host?: string;
  /** Receiver port. Default 514. */
  port?: number;
  /** `udp` (default) or `tcp` (newline-framed, RFC 6587 non-transparent framing). */
  protocol?: 'udp' | 'tcp';
  /** APP-NAME of each message. Default `egress-guard`. */
  appName?: string;
  /** Syslog facility number. Default 16 (local0). */
  facility?: number;
}

/** An emitter sending RFC 5424 syslog messages, and how to close it cleanly. */
export function createSyslogEmitter(options: SyslogOptions = {}): {
  events: EventEmitter;
  ready: Promise<unknown>;
  close(): Promise<void>;
} {
  const protocol = options.protocol ?? 'udp';
  const transport = pino.transport({
    pipeline: [
      {
        target: 'pino-syslog',
        options: {
          modern: true, // RFC 5424
          appname: options.appName ?? 'egress-guard',
          facility: options.facility ?? 16,
          // TCP needs a delimiter between messages; a UDP datagram is one message.
          newline: protocol === 'tcp',
        },
      },
      {
        target: 'pino-socket',
        options: {
          address: options.host ?? '127.0.0.1',
          port: options.port ?? 514,
          mode: protocol,
          reconnect: protocol === 'tcp',
        },
      },
    ],
  });
  // pino-syslog builds the header from pino's default fields: epoch time, pid and hostname.
  const events = createEventEmitter({
    destination: transport,
    flushOnExit: true,
    envelope: { time: 'epoch', base: { pid: process.pid, hostname: hostname() } },
  });
  return {
    events,
    // The transport's worker thread has started (events emitted before are buffered, not lost).
    ready: once(transport, 'ready').catch(() => undefined),
    close: () => closeTransport(events, transport),
  };
}

if (isMain(import.meta.url)) {
  const [host, port, protocol] = process.argv.slice(2);
  const { events, close } = createSyslogEmitter({
    host,
    port: port ? Number(port) : undefined,
    protocol: protocol === 'tcp' ? 'tcp' : 'udp',
  });
  emitSamples(events);
  await close();
}
