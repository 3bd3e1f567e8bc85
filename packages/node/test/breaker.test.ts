/**
 * The rule's circuit breaker (opossum, one per rule and origin): repeated failures open it, an open
 * breaker fails fast with EGRESS_ERR_CIRCUIT_OPEN and no connection, after resetTimeout one probe is let
 * through and a success closes it. Short real timers: undici's and opossum's own timers run as in
 * production.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EgressError, install, uninstall } from '../src/index.js';
import {
  closedPort,
  createTestPki,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  rejection,
  routes,
  settle,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

let pki: TestPki;
let dns: TestDnsServer;
let flaky: RecordingServer;
let other: RecordingServer;
let sink: EventSink;
let failing = true;

const BREAKER = {
  errorThresholdPercentage: 50,
  volumeThreshold: 4,
  resetTimeout: '300ms',
  rollingWindow: '10s',
};
const url = (server: RecordingServer, host = 'flaky.example.test') =>
  `https://${host}:${server.port}/v1/thing`;

function installWith(breaker: unknown = BREAKER) {
  sink = eventSink();
  return install({
    policy: policyOf({
      allow: [loopbackRule('flaky', ['flaky.example.test', 'other.example.test'], { breaker })],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

async function statusOf(input: string): Promise<number> {
  const res = await fetch(input);
  await res.arrayBuffer();
  return res.status;
}

const breakerStates = () => sink.named('egress.breaker.state').map((e) => e['egress.breaker.state']);

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    'flaky.example.test': [{ type: 'A', data: '127.0.0.1' }],
    'other.example.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  const handler = routes({}, (_req, res) => {
    res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
    res.end(failing ? 'down' : 'up');
  });
  const names = ['flaky.example.test', 'other.example.test'];
  flaky = await startHttpsServer({ pki, names, handler });
  other = await startHttpsServer({ pki, names, handler });
});

afterEach(async () => {
  await uninstall();
  flaky.reset();
  other.reset();
  failing = true;
});

afterAll(async () => {
  await Promise.all([flaky.close(), other.close(), dns.close()]);
  await pki.cleanup();
});

describe('circuit breaker', () => {
  it('opens after the volume threshold of 5xx responses, then fails fast without a connection', async () => {
    installWith();
    for (let i = 0; i < 4; i++) expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual(['open']);
    const requestsBefore = flaky.requests.length;
    const connectionsBefore = flaky.connections;

    const error = await rejection(fetch(url(flaky)));
    expect(error.cause as unknown).toBeInstanceOf(EgressError);
    expect(error.cause).toMatchObject({
      code: 'EGRESS_ERR_CIRCUIT_OPEN',
      reason: 'circuit_open',
      rule: 'flaky',
    });
    expect(error.cause.message).toContain('circuit breaker for rule "flaky"');
    expect(flaky.requests.length).toBe(requestsBefore);
    expect(flaky.connections).toBe(connectionsBefore);
    expect(sink.completions().at(-1)).toMatchObject({ 'egress.outcome': 'circuit_open' });
  });

  it('half-opens after resetTimeout: one probe goes through, a success closes it', async () => {
    installWith();
    for (let i = 0; i < 4; i++) await statusOf(url(flaky));
    expect(await rejection(fetch(url(flaky)))).toHaveProperty('cause.code', 'EGRESS_ERR_CIRCUIT_OPEN');
    failing = false;
    await settle(400);
    expect(breakerStates()).toEqual(['open', 'half_open']);
    expect(await statusOf(url(flaky))).toBe(200);
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed']);
    expect(await statusOf(url(flaky))).toBe(200);
  });

  it('a failed probe opens it again', async () => {
    installWith();
    for (let i = 0; i < 4; i++) await statusOf(url(flaky));
    await settle(400);
    expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual(['open', 'half_open', 'open']);
    expect(await rejection(fetch(url(flaky)))).toHaveProperty('cause.code', 'EGRESS_ERR_CIRCUIT_OPEN');
  });

  it('connection errors count as failures', async () => {
    installWith();
    const port = await closedPort();
    for (let i = 0; i < 4; i++) {
      const error = await rejection(fetch(`https://flaky.example.test:${port}/`));
      expect(error.cause).toHaveProperty('code', 'ECONNREFUSED');
    }
    expect(breakerStates()).toEqual(['open']);
    expect(await rejection(fetch(`https://flaky.example.test:${port}/`))).toHaveProperty(
      'cause.code',
      'EGRESS_ERR_CIRCUIT_OPEN',
    );
  });

  it('one breaker per rule and origin: another origin of the same rule is unaffected', async () => {
    installWith();
    for (let i = 0; i < 4; i++) await statusOf(url(flaky));
    expect(await rejection(fetch(url(flaky)))).toHaveProperty('cause.code', 'EGRESS_ERR_CIRCUIT_OPEN');
    expect(await statusOf(url(other, 'other.example.test'))).toBe(503);
    expect(other.requests).toHaveLength(1);
  });

  it('undici.request shares the breaker of the same rule and origin', async () => {
    installWith();
    for (let i = 0; i < 4; i++) {
      const res = await request(url(flaky));
      await res.body.dump();
    }
    expect(await rejection(request(url(flaky)))).toMatchObject({ code: 'EGRESS_ERR_CIRCUIT_OPEN' });
    expect(await rejection(fetch(url(flaky)))).toHaveProperty('cause.code', 'EGRESS_ERR_CIRCUIT_OPEN');
  });

  it('breaker: false on the rule: never opens', async () => {
    installWith(false);
    for (let i = 0; i < 8; i++) expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual([]);
    expect(flaky.requests).toHaveLength(8);
  });

  it('below the volume threshold it stays closed', async () => {
    installWith();
    for (let i = 0; i < 3; i++) expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual([]);
    failing = false;
    expect(await statusOf(url(flaky))).toBe(200);
  });
});
