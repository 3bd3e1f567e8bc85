/**
 * Threat class 10, loose matching: `api.example.test.evil.test` (suffix), `apiXexample.test` (an
 * unescaped dot in a pattern), case and a trailing dot, IDN look-alikes, `user@host`, and backslash tricks
 * where the checker and the client parse a URL differently. The guard decides what the client actually
 * dials (the host Node connects to, after the client's own parsing), compared label by label after
 * normalisation (lower case, one trailing dot removed, A-labels).
 *
 * `api.example.test` and `api` (an IDN rule, `bücher.example.test`) are allowed; every other name below
 * resolves to 127.0.0.1 too (a wildcard answer), so only the decision stands between it and a server. The
 * two servers listen on different ports, so which one a client reached shows which host it dialled.
 */
import type { IncomingMessage } from 'node:http';
import http from 'node:http';
import { parse as legacyParse } from 'node:url';
import axios from 'axios';
import got from 'got';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  type EventSink,
  eventSink,
  expectEgress,
  failureOf,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startHttpServer,
  type TestDnsServer,
} from './kit.js';

let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let sink: EventSink;

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('api', ['api.example.test'], { schemes: ['http'] }),
        loopbackRule('books', ['bücher.example.test'], { schemes: ['http'] }),
      ],
    }),
    lookup: lookupVia(dns),
    destination: sink,
  });
}

const httpGet = (target: string | http.RequestOptions) =>
  new Promise<number>((resolve, reject) => {
    const done = (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    };
    (typeof target === 'string' ? http.get(target, done) : http.get(target, done)).on('error', reject);
  });

/** The same GET through each client; each resolves with the status or rejects with its error. */
const clients: Record<string, (url: string) => Promise<unknown>> = {
  fetch: async (url) => (await fetch(url)).status,
  'http.get (URL string)': (url) => httpGet(url),
  axios: async (url) => (await axios.get(url, { adapter: 'http', proxy: false })).status,
  got: async (url) => (await got.get(url, { retry: { limit: 0 } })).statusCode,
};

beforeAll(async () => {
  dns = await startDnsServer({
    '*.example.test': [{ type: 'A', data: '127.0.0.1' }],
    '*.evil.test': [{ type: 'A', data: '127.0.0.1' }],
    'apixexample.test': [{ type: 'A', data: '127.0.0.1' }],
  });
  api = await startHttpServer();
  evil = await startHttpServer();
});

afterEach(async () => {
  await uninstall();
  for (const s of [api, evil]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([api, evil].map((s) => s.close()));
  await dns.close();
});

describe('threat 10: loose matching', () => {
  const denied: Array<[title: string, host: () => string, reason: string]> = [
    [
      'a listed name as a prefix of another domain (api.example.test.evil.test)',
      () => 'api.example.test.evil.test',
      'host_not_allowed',
    ],
    [
      'an unescaped dot read as any character (apiXexample.test)',
      () => 'apiXexample.test',
      'host_not_allowed',
    ],
    [
      'a look-alike in Cyrillic (аpi.example.test, U+0430)',
      () => '\u0430pi.example.test',
      'host_not_allowed',
    ],
    [
      'a look-alike with a dotless i in the label (apı.example.test)',
      () => 'ap\u0131.example.test',
      'host_not_allowed',
    ],
    ['a sibling name (api-example.test)', () => 'api-example.test', 'host_not_allowed'],
    [
      'the listed name percent-encoded inside another (api.example.test%2eevil.test)',
      () => 'api.example.test%2eevil.test',
      'host_not_allowed',
    ],
  ];

  for (const [title, host, reason] of denied) {
    it(`${title}: refused by every client, no server sees it`, async () => {
      installGuard();
      for (const [name, call] of Object.entries(clients)) {
        const error = await failureOf(call(`http://${host()}:${evil.port}/`));
        const egress = expectEgress(error, { code: 'EGRESS_ERR_DENIED', reason });
        expect(egress.host, name).not.toBe('api.example.test');
      }
      await settle();
      expect(evil.connections).toBe(0);
      expect(api.connections).toBe(0);
    });
  }

  const allowed: Array<[title: string, host: string]> = [
    ['upper case', 'API.EXAMPLE.TEST'],
    ['mixed case', 'Api.Example.Test'],
    ['one trailing dot', 'api.example.test.'],
    ['the IDN rule, by its U-label', 'bücher.example.test'],
    ['the IDN rule, by its A-label', 'xn--bcher-kva.example.test'],
    ['the IDN rule, in upper case', 'BÜCHER.example.test'],
  ];

  for (const [title, host] of allowed) {
    it(`${title} (${host}) is the listed name: allowed`, async () => {
      installGuard();
      for (const call of Object.values(clients)) expect(await call(`http://${host}:${api.port}/`)).toBe(200);
      expect(sink.decisions().every((e) => e['egress.decision'] === 'allowed')).toBe(true);
    });
  }

  it('two trailing dots, an empty label, a space: not valid names, refused (never best-effort matched)', async () => {
    installGuard();
    for (const host of ['api.example.test..', 'api..example.test', 'api .example.test']) {
      const error = await failureOf(httpGet({ host, port: api.port }));
      expectEgress(error, { code: 'EGRESS_ERR_DENIED' });
    }
    await settle();
    expect(api.connections).toBe(0);
  });

  describe('user@host: the host is what follows the @', () => {
    // fetch refuses URLs with credentials outright (WHATWG fetch): the other clients send them as Basic auth.
    const withCredentials = Object.entries(clients).filter(([name]) => name !== 'fetch');

    it('fetch refuses a URL with credentials before anything is decided', async () => {
      installGuard();
      const error = await failureOf(fetch(`http://api.example.test@evil.example.test:${evil.port}/`));
      expect(error).toBeInstanceOf(TypeError);
      expect(sink.decisions()).toEqual([]);
      expect(evil.connections).toBe(0);
    });

    it('http://api.example.test@evil.example.test/ is a request to evil.example.test: refused', async () => {
      installGuard();
      for (const [, call] of withCredentials) {
        const error = await failureOf(call(`http://api.example.test@evil.example.test:${evil.port}/`));
        expectEgress(error, { reason: 'host_not_allowed', host: 'evil.example.test' });
      }
      await settle();
      expect(evil.connections).toBe(0);
    });

    it('http://api.example.test:PORT@evil.example.test:PORT2/ (a port-looking password): refused', async () => {
      installGuard();
      for (const [, call] of withCredentials) {
        const error = await failureOf(
          call(`http://api.example.test:${api.port}@evil.example.test:${evil.port}/`),
        );
        expectEgress(error, { host: 'evil.example.test' });
      }
      await settle();
      expect(evil.connections).toBe(0);
    });

    it('http://evil.example.test@api.example.test/ is a request to api.example.test: allowed (credentials only)', async () => {
      installGuard();
      for (const [, call] of withCredentials) {
        expect(await call(`http://evil.example.test@api.example.test:${api.port}/`)).toBe(200);
      }
      expect(evil.connections).toBe(0);
      expect(api.requests.map((r) => r.headers.authorization)).toEqual(
        withCredentials.map(() => `Basic ${Buffer.from('evil.example.test:').toString('base64')}`),
      );
    });
  });

  describe('backslashes: decided on what the client dials', () => {
    // WHATWG (fetch, http.get with a string, axios, got) reads `\` as `/` in special URLs: the host is
    // api.example.test and `@evil...` is path. A parser that took `\` as part of the userinfo would dial evil.
    const tricky = () => `http://api.example.test:${api.port}\\@evil.example.test:${evil.port}/`;

    for (const [name, call] of Object.entries(clients)) {
      it(`${name}: whatever it dials, the decision names that host, and evil sees nothing`, async () => {
        installGuard();
        const outcome = await call(tricky()).catch((error: unknown) => error);
        await settle();
        expect(evil.connections).toBe(0);
        const decision = sink.decisions()[0]!;
        if (outcome === 200) {
          expect(decision).toMatchObject({ 'server.address': 'api.example.test', 'server.port': api.port });
          expect(api.requests[0]?.url).toMatch(/^\/@evil\.example\.test/);
        } else {
          expectEgress(outcome, { code: 'EGRESS_ERR_DENIED' });
        }
      });
    }

    it('the legacy url.parse() spelling handed to http.get: decided on the host it produced', async () => {
      installGuard();
      const parsed = legacyParse(tricky());
      const outcome = await httpGet(parsed as unknown as http.RequestOptions).catch(
        (error: unknown) => error,
      );
      await settle();
      expect(evil.connections).toBe(0);
      if (outcome === 200)
        expect(sink.decisions()[0]).toMatchObject({ 'server.address': 'api.example.test' });
      else expectEgress(outcome, { code: 'EGRESS_ERR_DENIED' });
    });

    it('a raw host option with a backslash and an @ is not a DNS name: refused as invalid', async () => {
      installGuard();
      const error = await failureOf(
        httpGet({ host: 'api.example.test\\@evil.example.test', port: evil.port }),
      );
      expectEgress(error, { reason: 'invalid_destination' });
      await settle();
      expect(evil.connections).toBe(0);
    });
  });
});
