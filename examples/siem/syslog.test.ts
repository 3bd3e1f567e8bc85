import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { emitSamples, SAMPLE_POLICY } from './sample-events.js';
import { createSyslogEmitter } from './syslog.js';

/** RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG] */
const RFC5424 = /^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$/s;

interface SyslogMessage {
  facility: number;
  severity: number;
  timestamp: string;
  host: string;
  app: string;
  procid: string;
  msgid: string;
  sd: string;
  event: Record<string, unknown>;
}

function parse(line: string): SyslogMessage {
  const m = RFC5424.exec(line.replace(/\n$/, ''));
  if (!m) throw new Error(`not an RFC 5424 message: ${line}`);
  const pri = Number(m[1]);
  return {
    facility: pri >> 3,
    severity: pri & 7,
    timestamp: m[2]!,
    host: m[3]!,
    app: m[4]!,
    procid: m[5]!,
    msgid: m[6]!,
    sd: m[7]!,
    event: JSON.parse(m[8]!),
  };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function expectSamples(messages: SyslogMessage[]): void {
  expect(messages.map((m) => m.event['event.name'])).toEqual([
    'egress.policy.loaded',
    'egress.decision',
    'egress.decision',
  ]);
  for (const m of messages) {
    expect(m).toMatchObject({
      facility: 16,
      app: 'egress-guard',
      procid: String(process.pid),
      msgid: '-',
      sd: '-',
    });
    expect(m.host).toBe(hostname());
    expect(Date.parse(m.timestamp)).not.toBeNaN();
  }
  // info → 6, warn → 4: a SIEM can alert on severity alone.
  expect(messages.map((m) => m.severity)).toEqual([6, 6, 4]);
  expect(messages[1]!.event).toMatchObject({ 'egress.decision': 'allowed', 'egress.rule': 'stripe' });
  expect(messages[2]!.event).toMatchObject({
    'egress.decision': 'denied',
    'egress.reason': 'explicit_deny',
    'egress.rule': 'paste-sites',
    'egress.policy.hash': SAMPLE_POLICY.hash,
    'server.address': 'pastebin.com',
  });
}

describe('recipe: syslog, RFC 5424 (pino-syslog + pino-socket)', () => {
  it('over UDP: one datagram per event, parsed by a receiver on loopback', async () => {
    const receiver = dgram.createSocket('udp4');
    cleanups.push(() => receiver.close());
    const received: string[] = [];
    receiver.on('message', (msg) => received.push(msg.toString('utf8')));
    receiver.bind(0, '127.0.0.1');
    await once(receiver, 'listening');
    const { events, ready, close } = createSyslogEmitter({ port: receiver.address().port, protocol: 'udp' });
    await ready;
    emitSamples(events);
    await until(() => received.length >= 3);
    await close();
    expectSamples(received.map(parse));
  });

  it('over TCP: newline-framed messages, parsed by a receiver on loopback', async () => {
    const received: string[] = [];
    const server = net.createServer((socket) => {
      let buffer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buffer += chunk;
        const parts = buffer.split('\n');
        buffer = parts.pop() ?? '';
        received.push(...parts.filter(Boolean));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const { port } = server.address() as net.AddressInfo;
    const { events, ready, close } = createSyslogEmitter({ port, protocol: 'tcp' });
    await ready;
    emitSamples(events);
    await until(() => received.length >= 3);
    await close();
    expectSamples(received.map(parse));
  });
});
