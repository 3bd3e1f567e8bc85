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
/** How long the server waits before answering, so a test can hold calls in flight. */
let delayMs = 0;

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

/** The status of a call, or the error code it was rejected with. */
async function outcomeOf(input: string): Promise<number | string> {
  try {
    return await statusOf(input);
  } catch (error) {
    return (error as { cause?: { code?: string } }).cause?.code ?? String(error);
  }
}

/** Calls the failing server until the breaker fails fast; how many calls reached it (and got a 503) first. */
async function failuresUntilOpen(limit = 40): Promise<number> {
  for (let n = 0; n < limit; n++) {
    const outcome = await outcomeOf(url(flaky));
    if (outcome === 'EGRESS_ERR_CIRCUIT_OPEN') return n;
    expect(outcome).toBe(503);
  }
  return limit;
}

/** Lets the breaker half-open and closes it with a successful probe. */
async function recover(): Promise<void> {
  failing = false;
  await settle(400);
  expect(await statusOf(url(flaky))).toBe(200);
  failing = true;
}

const breakerStates = () => sink.named('egress.breaker.state').map((e) => e['egress.breaker.state']);

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer({
    'flaky.example.test': [{ type: 'A', data: '127.0.0.1' }],
    'other.example.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  const handler = routes(
    {
      // Answered well after the breaker has opened and half-opened: an outcome from an earlier period.
      '/v1/late': (_req, res) => {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
          res.end('late');
        }, 900);
      },
    },
    (_req, res) => {
      // `connection: close` makes every call that reaches the server a new accepted connection, so the
      // connection count is evidence of which calls got through.
      const answer = () => {
        res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain', connection: 'close' });
        res.end(failing ? 'down' : 'up');
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    },
  );
  const names = ['flaky.example.test', 'other.example.test'];
  flaky = await startHttpsServer({ pki, names, handler });
  other = await startHttpsServer({ pki, names, handler });
});

afterEach(async () => {
  await uninstall();
  flaky.reset();
  other.reset();
  failing = true;
  delayMs = 0;
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

  it('calls failed fast while open do not dilute the error rate: a second outage reopens after volumeThreshold failures', async () => {
    installWith();
    expect(await failuresUntilOpen()).toBe(BREAKER.volumeThreshold);
    const connectionsAtOpen = flaky.connections;
    // A busy caller keeps calling through the outage; every call fails fast and none reaches the server.
    for (let i = 0; i < 30; i++) expect(await outcomeOf(url(flaky))).toBe('EGRESS_ERR_CIRCUIT_OPEN');
    expect(flaky.connections).toBe(connectionsAtOpen);
    expect(flaky.requests).toHaveLength(connectionsAtOpen);

    await recover();
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed']);
    const connectionsAtClose = flaky.connections;
    expect(await failuresUntilOpen()).toBe(BREAKER.volumeThreshold);
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed', 'open']);
    // The failures of the second outage reached the server; the call that found it open again did not.
    expect(flaky.connections - connectionsAtClose).toBe(BREAKER.volumeThreshold);
    expect(flaky.requests).toHaveLength(flaky.connections);
  });

  it('a close starts a fresh window: failures from before the outage do not reopen it early', async () => {
    installWith();
    expect(await failuresUntilOpen()).toBe(BREAKER.volumeThreshold);
    await recover();
    expect(await failuresUntilOpen()).toBe(BREAKER.volumeThreshold);
    await recover();
    // As on a fresh breaker, successes in the new window count against the error percentage.
    failing = false;
    for (let i = 0; i < 3; i++) expect(await statusOf(url(flaky))).toBe(200);
    failing = true;
    expect(await failuresUntilOpen()).toBe(4);
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed', 'open', 'half_open', 'closed', 'open']);
  });

  it('failures older than the rolling window are forgotten', async () => {
    installWith({ ...BREAKER, rollingWindow: '1s' });
    for (let i = 0; i < 3; i++) expect(await statusOf(url(flaky))).toBe(503);
    await settle(1150);
    for (let i = 0; i < 3; i++) expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual([]);
    expect(await statusOf(url(flaky))).toBe(503);
    expect(breakerStates()).toEqual(['open']);
  });

  it('half-open lets exactly one probe through at a time; the others fail fast', async () => {
    installWith();
    expect(await failuresUntilOpen()).toBe(BREAKER.volumeThreshold);
    failing = false;
    delayMs = 100;
    await settle(400);
    const reached = flaky.connections;
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => outcomeOf(url(flaky))));
    expect(outcomes.filter((o) => o === 200)).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'EGRESS_ERR_CIRCUIT_OPEN')).toHaveLength(4);
    expect(flaky.connections - reached).toBe(1);
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed']);
  });

  it('concurrent failures open it once; those that land after it opened change nothing', async () => {
    installWith();
    delayMs = 50;
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => outcomeOf(url(flaky))));
    expect(outcomes).toEqual(Array(8).fill(503));
    expect(breakerStates()).toEqual(['open']);
    delayMs = 0;
    await recover();
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed']);
  });

  it('only the probe decides in half-open: a late answer to a call admitted earlier does not close it', async () => {
    installWith();
    const late = outcomeOf(url(flaky).replace('/v1/thing', '/v1/late'));
    await failuresUntilOpen();
    expect(breakerStates()).toEqual(['open']);
    await settle(400);
    expect(await late).toBe(200);
    expect(breakerStates()).toEqual(['open', 'half_open']);
    failing = false;
    expect(await statusOf(url(flaky))).toBe(200);
    expect(breakerStates()).toEqual(['open', 'half_open', 'closed']);
  });
});
