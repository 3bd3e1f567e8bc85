import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { createOtlpEmitter } from './otlp.js';
import { emitSamples, SAMPLE_POLICY } from './sample-events.js';

/**
 * An OTLP/HTTP (JSON) logs receiver on loopback, in a child process: the transport's end() blocks this
 * thread until its worker has exported, so a receiver on this thread could never answer it.
 */
const RECEIVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    process.stdout.write(JSON.stringify({ path: req.url, contentType: req.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }) + '\\n');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
setTimeout(() => process.exit(0), 60000).unref();
process.stdin.on('end', () => process.exit(0)).resume();
`;

async function startReceiver() {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const requests: { path: string; contentType: string; body: any }[] = [];
  let port = 0;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.port) port = msg.port;
    else requests.push(msg);
  });
  const deadline = Date.now() + 10_000;
  while (!port && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return {
    url: `http://127.0.0.1:${port}/v1/logs`,
    requests,
    /** Waits until `n` requests arrived (bounded). */
    async received(n: number) {
      const until = Date.now() + 10_000;
      while (requests.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    },
    close: () => child.stdin.end(),
  };
}

type AnyValue = {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  kvlistValue?: unknown;
  arrayValue?: unknown;
};
const value = (v: AnyValue) =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? v.boolValue ?? v));

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('recipe: OTLP logs to a collector (pino-opentelemetry-transport)', () => {
  it('exports each event as a log record whose attributes are the event fields', async () => {
    const receiver = await startReceiver();
    closers.push(receiver.close);
    const { events, ready, close } = createOtlpEmitter({ url: receiver.url, serviceName: 'payments' });
    await ready;
    emitSamples(events);
    // Closing shuts the OpenTelemetry logger provider down, which exports the batch.
    await close();
    await receiver.received(1);
    expect(receiver.requests.length).toBeGreaterThan(0);
    expect(receiver.requests[0]).toMatchObject({ path: '/v1/logs', contentType: 'application/json' });
    const resourceLogs = receiver.requests.flatMap((r) => r.body.resourceLogs);
    const resource = Object.fromEntries(
      resourceLogs[0].resource.attributes.map((a: { key: string; value: AnyValue }) => [
        a.key,
        value(a.value),
      ]),
    );
    expect(resource['service.name']).toBe('payments');
    const records = resourceLogs.flatMap((rl: any) => rl.scopeLogs.flatMap((sl: any) => sl.logRecords));
    expect(records).toHaveLength(3);
    const attrs = records.map((r: { attributes: { key: string; value: AnyValue }[] }) =>
      Object.fromEntries(r.attributes.map((a) => [a.key, value(a.value)])),
    );
    expect(attrs.map((a: Record<string, unknown>) => a['event.name'])).toEqual([
      'egress.policy.loaded',
      'egress.decision',
      'egress.decision',
    ]);
    expect(attrs[2]).toMatchObject({
      'egress.schema': 1,
      'egress.source': 'sdk',
      'service.name': 'payments',
      'egress.decision': 'denied',
      'egress.reason': 'explicit_deny',
      'egress.rule': 'paste-sites',
      'egress.policy.hash': SAMPLE_POLICY.hash,
      'server.address': 'pastebin.com',
      'server.port': 443,
      'http.request.method': 'POST',
    });
    // The body is the one-line message; warn-level events are WARN (severity 13).
    expect(records[2]).toMatchObject({ severityText: 'warn', severityNumber: 13 });
    expect(records[2].body.stringValue).toMatch(/^egress denied: /);
    expect(records[1]).toMatchObject({ severityNumber: 9 });
  });
});
