/**
 * The OpenAI SDK, unchanged, under install(): it calls the global `fetch` (taken when the client is
 * constructed), so every call is decided by the guarded fetch; a client built before install() still
 * holds Node's original fetch, which reads the guard's global dispatcher, so it is decided too. A denial
 * is an APIConnectionError whose `cause` is fetch's TypeError, whose `cause` is the EgressError; the SDK's
 * retries are each decided and none reaches the server.
 */
import OpenAI, { APIConnectionError } from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  routes,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from '../threats/kit.js';

const NAMES = ['llm.example.test', 'evil-llm.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let llm: RecordingServer;
let evil: RecordingServer;
let sink: EventSink;

const COMPLETION = {
  id: 'chatcmpl-test',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-test',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'hello from the test server' },
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 },
};

const handler = routes({
  '/v1/chat/completions': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(COMPLETION));
  },
});

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('llm', ['llm.example.test'], {
          schemes: ['https'],
          methods: ['POST'],
          paths: ['/v1/chat/**'],
        }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

const client = (host: string, port: number, maxRetries = 0) =>
  new OpenAI({ apiKey: 'sk-test', baseURL: `https://${host}:${port}/v1`, maxRetries });

const ask = (openai: OpenAI) =>
  openai.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  llm = await startHttpsServer({ pki, names: [...NAMES, 'localhost'], handler });
  evil = await startHttpsServer({ pki, names: [...NAMES, 'localhost'], handler });
});

afterEach(async () => {
  await uninstall();
  for (const s of [llm, evil]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([llm, evil].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('OpenAI SDK (global fetch): allowed', () => {
  it('a chat completion reaches the server and is parsed; decided by the fetch hook', async () => {
    installGuard();
    const completion = await ask(client('llm.example.test', llm.port));
    expect(completion.choices[0]?.message.content).toBe('hello from the test server');
    expect(llm.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/chat/completions']);
    expect(llm.requests[0]!.headers.authorization).toBe('Bearer sk-test');
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'llm',
      'egress.hook': 'fetch',
      'http.request.method': 'POST',
      'url.path': '/v1/chat/completions',
    });
  });
});

describe('OpenAI SDK (global fetch): denied, and the server sees nothing', () => {
  it('a baseURL no rule lists: APIConnectionError whose cause chain holds EgressError host_not_allowed', async () => {
    installGuard();
    const error = await failureOf(ask(client('evil-llm.example.test', evil.port)));
    expect(error).toBeInstanceOf(APIConnectionError);
    expectEgress(error, {
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil-llm.example.test',
    });
    expect(evil.connections).toBe(0);
  });

  it('an endpoint outside the rule (GET /v1/models): method_not_allowed', async () => {
    installGuard();
    const error = await failureOf(client('llm.example.test', llm.port).models.list());
    expectEgress(error, { reason: 'method_not_allowed', rule: 'llm' });
    expect(llm.connections).toBe(0);
  });

  it('a client constructed before install() (holding the original fetch) is still decided', async () => {
    const early = client('evil-llm.example.test', evil.port);
    installGuard();
    const error = await failureOf(ask(early));
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(evil.connections).toBe(0);
  });

  it("the SDK's retries (maxRetries: 1): each attempt decided and denied, none connects", async () => {
    installGuard();
    const error = await failureOf(ask(client('evil-llm.example.test', evil.port, 1)));
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['denied', 'denied']);
    expect(evil.connections).toBe(0);
  });
});
