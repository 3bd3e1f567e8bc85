/**
 * Threat class 8, proxies: with `HTTPS_PROXY`/`HTTP_PROXY` (or a client's proxy option) the client dials
 * the proxy, not the target. A guard that decides only what is dialled sees an allowed proxy and lets any
 * target through it. The target must be decided (and an unlisted one never reaches the proxy), and the
 * proxy itself must be listed (an unlisted proxy sees no connection).
 *
 * The forward proxy runs in a child process, outside the guard under test (in this process its own
 * upstream connections would be guarded too). It resolves `*.example.test` to 127.0.0.1 itself.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import axios from 'axios';
import {
  EnvHttpProxyAgent,
  getGlobalDispatcher,
  setGlobalDispatcher,
  request as undiciRequest,
} from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import { type ChildProxy, startChildProxy } from '../fixtures/child-proxy.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  expectEgress,
  failureOf,
  listenEphemeral,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  settle,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './kit.js';

const NAMES = ['api.example.test', 'evil.example.test', 'proxy.example.test', 'db.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let apiPlain: RecordingServer;
let evilPlain: RecordingServer;
/** An HTTP/2 server standing in for an HTTP/2 proxy: records the streams it is sent, answers CONNECT 200. */
let h2proxy: http2.Http2SecureServer;
let h2port: number;
let h2streams: string[] = [];
let proxy: ChildProxy;
let sink: EventSink;

const rules = {
  api: loopbackRule('api', ['api.example.test'], { schemes: ['https', 'http'] }),
  proxyTcp: loopbackRule('proxy', ['proxy.example.test'], { schemes: ['tcp'] }),
  proxyHttp: loopbackRule('proxy-http', ['proxy.example.test'], { schemes: ['http'] }),
  proxyH2: loopbackRule('proxy-h2', ['proxy.example.test'], { schemes: ['https'] }),
  db: loopbackRule('db', ['db.example.test'], { schemes: ['tcp'] }),
};

function installGuard(allow: Array<Record<string, unknown>>) {
  sink = eventSink();
  install({ policy: policyOf({ allow }), lookup: lookupVia(dns), ca: pki.caCertPem, destination: sink });
}

const proxyUrl = () => `http://proxy.example.test:${proxy.port}`;
const apiUrl = () => `https://api.example.test:${api.port}/v1/x`;
const evilUrl = () => `https://evil.example.test:${evil.port}/v1/x`;
const apiPlainUrl = () => `http://api.example.test:${apiPlain.port}/v1/x`;
const evilPlainUrl = () => `http://evil.example.test:${evilPlain.port}/v1/x`;

const saved = new Map<string, string | undefined>();
function setEnv(vars: Record<string, string | undefined>) {
  for (const [k, v] of Object.entries(vars)) {
    if (!saved.has(k)) saved.set(k, process.env[k]);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}
const proxyEnv = () =>
  setEnv({
    HTTPS_PROXY: proxyUrl(),
    HTTP_PROXY: proxyUrl(),
    https_proxy: undefined,
    http_proxy: undefined,
    NO_PROXY: undefined,
    no_proxy: undefined,
  });

/** Nothing reached the proxy, and neither target. */
async function expectProxyUntouched(): Promise<void> {
  await proxy.sync();
  expect(proxy.connections).toBe(0);
  expect(proxy.targets).toEqual([]);
  await settle();
  for (const s of [api, evil, apiPlain, evilPlain]) expect(s.connections).toBe(0);
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  api = await startHttpsServer({ pki, names: NAMES });
  evil = await startHttpsServer({ pki, names: NAMES });
  apiPlain = await startHttpServer();
  evilPlain = await startHttpServer();
  proxy = await startChildProxy();
  const { certPem, keyPem } = await pki.issue(NAMES);
  h2proxy = http2.createSecureServer({ cert: certPem, key: keyPem });
  h2proxy.on('stream', (stream, headers) => {
    h2streams.push(`${headers[':method']} ${headers[':authority']}`);
    stream.respond({ ':status': headers[':method'] === 'CONNECT' ? 200 : 405 });
    stream.end();
  });
  h2port = await listenEphemeral(h2proxy);
});

afterEach(async () => {
  await uninstall();
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  saved.clear();
  for (const s of [api, evil, apiPlain, evilPlain]) s.reset();
  h2streams = [];
  proxy.reset();
  dns.reset();
});

afterAll(async () => {
  await proxy.close();
  await Promise.all([api, evil, apiPlain, evilPlain].map((s) => s.close()));
  await new Promise((resolve) => h2proxy.close(resolve));
  await dns.close();
  await pki.cleanup();
});

describe('threat 8: proxies — the target is decided, and the proxy must be listed', () => {
  describe('global fetch through an EnvHttpProxyAgent global dispatcher (HTTPS_PROXY, as NODE_USE_ENV_PROXY=1 sets up)', () => {
    let previous: ReturnType<typeof getGlobalDispatcher>;
    let envGlobal: EnvHttpProxyAgent | undefined;
    const useEnvProxy = () => {
      proxyEnv();
      previous = getGlobalDispatcher();
      envGlobal = new EnvHttpProxyAgent();
      setGlobalDispatcher(envGlobal);
    };
    afterEach(async () => {
      await uninstall();
      if (envGlobal) {
        setGlobalDispatcher(previous);
        await envGlobal.close();
        envGlobal = undefined;
      }
    });

    it('allowed target, listed proxy: tunnelled (CONNECT to the target)', async () => {
      useEnvProxy();
      installGuard([rules.api, rules.proxyTcp]);
      const res = await fetch(apiUrl());
      expect(res.status).toBe(200);
      await res.text();
      await proxy.sync();
      expect(proxy.targets.map((t) => `${t.method} ${t.target}`)).toEqual([
        `CONNECT api.example.test:${api.port}`,
      ]);
    });

    it('unlisted target: denied before the proxy is contacted', async () => {
      useEnvProxy();
      installGuard([rules.api, rules.proxyTcp]);
      expectEgress(await failureOf(fetch(evilUrl())), {
        reason: 'host_not_allowed',
        host: 'evil.example.test',
      });
      await expectProxyUntouched();
    });

    it('unlisted proxy: denied, the proxy sees no connection', async () => {
      useEnvProxy();
      installGuard([rules.api]);
      expectEgress(await failureOf(fetch(apiUrl())), { host: 'proxy.example.test' });
      await expectProxyUntouched();
    });
  });

  describe("undici.request with undici's EnvHttpProxyAgent (HTTPS_PROXY and HTTP_PROXY)", () => {
    const withAgent = async (fn: (agent: EnvHttpProxyAgent) => Promise<void>) => {
      proxyEnv();
      const agent = new EnvHttpProxyAgent({ requestTls: { ca: pki.caCertPem } });
      try {
        await fn(agent);
      } finally {
        await agent.close();
      }
    };

    it('allowed https and http targets through the listed proxy', () =>
      withAgent(async (agent) => {
        installGuard([rules.api, rules.proxyTcp]);
        const secure = await undiciRequest(apiUrl(), { dispatcher: agent });
        expect(secure.statusCode).toBe(200);
        await secure.body.text();
        const plain = await undiciRequest(apiPlainUrl(), { dispatcher: agent });
        expect(plain.statusCode).toBe(200);
        await plain.body.text();
        await proxy.sync();
        // undici tunnels plain-HTTP targets too (proxyTunnel defaults to true).
        expect(proxy.targets.map((t) => t.target)).toEqual([
          `api.example.test:${api.port}`,
          `api.example.test:${apiPlain.port}`,
        ]);
      }));

    it('unlisted https and http targets: denied, the proxy sees nothing', () =>
      withAgent(async (agent) => {
        installGuard([rules.api, rules.proxyTcp]);
        expectEgress(await failureOf(undiciRequest(evilUrl(), { dispatcher: agent })), {
          reason: 'host_not_allowed',
        });
        expectEgress(await failureOf(undiciRequest(evilPlainUrl(), { dispatcher: agent })), {
          reason: 'host_not_allowed',
        });
        await expectProxyUntouched();
      }));

    it('unlisted proxy: denied, zero connections at the proxy', () =>
      withAgent(async (agent) => {
        installGuard([rules.api]);
        expectEgress(await failureOf(undiciRequest(apiUrl(), { dispatcher: agent })), {
          host: 'proxy.example.test',
        });
        await expectProxyUntouched();
      }));
  });

  describe("axios's proxy option", () => {
    const httpsAgent = () => new https.Agent({ ca: pki.caCertPem });
    const viaProxy = () => ({
      adapter: 'http' as const,
      httpsAgent: httpsAgent(),
      proxy: { protocol: 'http', host: 'proxy.example.test', port: proxy.port },
    });

    // Fails until the socket layer stops taking `path: null` for IPC: https-proxy-agent dials the proxy with
    // the https.Agent's options, whose `path` is null, and the connect then escapes the guard (see 09).
    it('https target (CONNECT tunnel): allowed target through the listed proxy', async () => {
      installGuard([rules.api, rules.proxyTcp]);
      const res = await axios.get(apiUrl(), viaProxy());
      expect(res.status).toBe(200);
      await proxy.sync();
      expect(proxy.targets.map((t) => `${t.method} ${t.target}`)).toEqual([
        `CONNECT api.example.test:${api.port}`,
      ]);
    });

    it('https target: an unlisted target is denied before the proxy is contacted', async () => {
      installGuard([rules.api, rules.proxyTcp]);
      expectEgress(await failureOf(axios.get(evilUrl(), viaProxy())), { reason: 'host_not_allowed' });
      await expectProxyUntouched();
    });

    it('https target: an unlisted proxy sees no connection', async () => {
      installGuard([rules.api]);
      expectEgress(await failureOf(axios.get(apiUrl(), viaProxy())), { host: 'proxy.example.test' });
      await expectProxyUntouched();
    });

    it('http target (absolute-form request to the proxy): allowed target through the listed proxy', async () => {
      installGuard([rules.api, rules.proxyTcp]);
      const res = await axios.get(apiPlainUrl(), viaProxy());
      expect(res.status).toBe(200);
      await proxy.sync();
      expect(proxy.targets).toEqual([expect.objectContaining({ method: 'GET', target: apiPlainUrl() })]);
      expect(apiPlain.connections).toBe(1);
      expect(sink.decisions().map((e) => [e['server.address'], e['egress.decision']])).toEqual([
        ['api.example.test', 'allowed'],
        ['proxy.example.test', 'allowed'],
      ]);
    });

    it('http target: an unlisted target is denied, whether the proxy is listed as tcp or as http', async () => {
      for (const proxyRule of [rules.proxyTcp, rules.proxyHttp]) {
        installGuard([rules.api, proxyRule]);
        expectEgress(await failureOf(axios.get(evilPlainUrl(), viaProxy())), {
          reason: 'host_not_allowed',
          host: 'evil.example.test',
        });
        await uninstall();
      }
      await expectProxyUntouched();
    });

    it('http target: an unlisted proxy sees no connection', async () => {
      installGuard([rules.api]);
      expectEgress(await failureOf(axios.get(apiPlainUrl(), viaProxy())), { host: 'proxy.example.test' });
      await expectProxyUntouched();
    });

    it('HTTP_PROXY in the environment (no proxy option): an unlisted target is denied', async () => {
      proxyEnv();
      installGuard([rules.api, rules.proxyHttp]);
      expectEgress(await failureOf(axios.get(evilPlainUrl(), { adapter: 'http' })), {
        reason: 'host_not_allowed',
      });
      await expectProxyUntouched();
    });
  });

  describe('http.request by hand', () => {
    const send = (options: http.RequestOptions) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(options);
        req.on('response', (res) => {
          res.resume();
          resolve(res);
        });
        req.on('connect', (res, socket) => {
          socket.destroy();
          resolve(res);
        });
        req.on('error', reject);
        req.end();
      });

    it('an absolute-form GET through a proxy listed as http: the target is what is decided', async () => {
      installGuard([rules.api, rules.proxyHttp]);
      const ok = await send({ host: 'proxy.example.test', port: proxy.port, path: apiPlainUrl() });
      expect(ok.statusCode).toBe(200);
      expectEgress(
        await failureOf(send({ host: 'proxy.example.test', port: proxy.port, path: evilPlainUrl() })),
        {
          reason: 'host_not_allowed',
          host: 'evil.example.test',
        },
      );
      await proxy.sync();
      expect(proxy.targets.map((t) => t.target)).toEqual([apiPlainUrl()]);
      expect(evilPlain.connections).toBe(0);
    });

    it('a CONNECT through a proxy listed as http, to a target no rule lists: denied, no tunnel', async () => {
      installGuard([rules.api, rules.proxyHttp]);
      const error = await failureOf(
        send({
          host: 'proxy.example.test',
          port: proxy.port,
          method: 'CONNECT',
          path: `evil.example.test:${evil.port}`,
        }),
      );
      expectEgress(error, { code: 'EGRESS_ERR_DENIED', host: 'evil.example.test' });
      await expectProxyUntouched();
    });
  });

  describe('HTTP/2 CONNECT streams (RFC 9113 8.5) through a listed HTTP/2 proxy', () => {
    const tunnel = async (authority: string) => {
      const session = http2.connect(`https://proxy.example.test:${h2port}`, { ca: pki.caCertPem });
      try {
        await once(session, 'connect');
        const stream = session.request({ ':method': 'CONNECT', ':authority': authority });
        return await new Promise<unknown>((resolve) => {
          stream.once('error', resolve);
          stream.once('response', (headers) => resolve(headers[':status']));
        });
      } finally {
        session.destroy();
      }
    };

    it('a tunnel to a target no rule lists: the stream is refused before it is sent', async () => {
      installGuard([rules.api, rules.proxyH2]);
      expectEgress(await tunnel(`evil.example.test:${evil.port}`), {
        code: 'EGRESS_ERR_DENIED',
        host: 'evil.example.test',
      });
      await settle();
      expect(h2streams).toEqual([]);
    });

    it('a tunnel to a target listed as a raw tcp destination goes through', async () => {
      installGuard([rules.api, rules.proxyH2, rules.db]);
      expect(await tunnel('db.example.test:5432')).toBe(200);
      expect(h2streams).toEqual(['CONNECT db.example.test:5432']);
    });
  });
});
