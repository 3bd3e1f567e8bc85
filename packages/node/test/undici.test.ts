/**
 * The npm undici package under install(): its request/fetch, Client, Pool, Agent, a later
 * setGlobalDispatcher, its redirect and DNS interceptors, and its proxy agents are all decided.
 */
import type { LookupAddress } from 'node:dns';
import {
  Agent,
  Client,
  EnvHttpProxyAgent,
  getGlobalDispatcher,
  interceptors,
  Pool,
  ProxyAgent,
  request,
  setGlobalDispatcher,
  fetch as undiciFetch,
} from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createGuard, EgressError, install, uninstall } from '../src/index.js';
import { type ChildProxy, startChildProxy } from './fixtures/child-proxy.js';
import {
  createTestPki,
  EPHEMERAL,
  type EventSink,
  eventSink,
  lookupVia,
  loopbackRule,
  okHandler,
  policyOf,
  type RecordingServer,
  redirect,
  rejection,
  routes,
  startDnsServer,
  startHttpServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from './fixtures/harness.js';

const NAMES = ['api.example.test', 'evil.example.test', 'proxy.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let api: RecordingServer;
let evil: RecordingServer;
let sink: EventSink;
let dialLookup: ReturnType<typeof lookupVia>;

const apiUrl = (path = '/v1/x') => `https://api.example.test:${api.port}${path}`;
const evilUrl = (path = '/v1/x') => `https://evil.example.test:${evil.port}${path}`;

const rules = {
  api: loopbackRule('api', ['api.example.test'], { schemes: ['https'], paths: ['/v1/**'] }),
  proxy: loopbackRule('corporate-proxy', ['proxy.example.test'], { schemes: ['http'] }),
  loopbackAddress: {
    name: 'loopback-address',
    addresses: ['127.0.0.1/32'],
    schemes: ['https'],
    ports: EPHEMERAL,
  },
};

function installWith(allow: Array<Record<string, unknown>> = [rules.api]) {
  sink = eventSink();
  return install({ policy: policyOf({ allow }), lookup: dialLookup, ca: pki.caCertPem, destination: sink });
}

/** Connect options a caller's own dispatcher needs to reach the loopback servers by name. */
const callerConnect = () => ({ ca: pki.caCertPem, lookup: dialLookup });

async function body(res: { body: { text(): Promise<string> } }) {
  return res.body.text();
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  dialLookup = lookupVia(dns);
  const names = [...NAMES, 'localhost', '127.0.0.1'];
  api = await startHttpsServer({
    pki,
    names,
    handler: routes(
      {
        '/v1/to-evil': (req, res) => redirect(evilUrl('/v1/stolen'))(req, res, ''),
        '/v1/hop': redirect('/v1/landed'),
      },
      okHandler,
    ),
  });
  evil = await startHttpsServer({ pki, names });
});

afterEach(async () => {
  await uninstall();
  api.reset();
  evil.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([api.close(), evil.close(), dns.close()]);
  await pki.cleanup();
});

describe('undici.request and undici.fetch through the global dispatcher', () => {
  it('request: allowed', async () => {
    installWith();
    const res = await request(apiUrl());
    expect(res.statusCode).toBe(200);
    await body(res);
    expect(sink.decisions()).toHaveLength(1);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.hook': 'undici.global',
    });
    expect(sink.completions()).toHaveLength(1);
  });

  it('request: denied with the EgressError itself, zero connections', async () => {
    installWith();
    const error = await rejection(request(evilUrl()));
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil.example.test',
      port: evil.port,
    });
    expect(evil.connections).toBe(0);
  });

  it('fetch: allowed, and denied as TypeError("fetch failed") with the EgressError as cause', async () => {
    installWith();
    const res = await undiciFetch(apiUrl());
    expect(res.status).toBe(200);
    await res.text();
    const error = await rejection(undiciFetch(evilUrl()));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.cause).toBeInstanceOf(EgressError);
    expect(error.cause).toMatchObject({ reason: 'host_not_allowed' });
    expect(evil.connections).toBe(0);
  });

  it('fetch: redirect to a denied host is decided on the hop', async () => {
    installWith();
    const error = await rejection(undiciFetch(apiUrl('/v1/to-evil')));
    expect(error.cause).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
    expect(evil.connections).toBe(0);
  });
});

describe("a caller's own Client, Pool and Agent", () => {
  it('Client: allowed, one decision per request', async () => {
    installWith();
    const client = new Client(`https://api.example.test:${api.port}`, { connect: callerConnect() });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await client.request({ path: `/v1/${i}`, method: 'GET' });
        expect(res.statusCode).toBe(200);
        await body(res);
      }
      expect(sink.decisions()).toHaveLength(3);
      expect(sink.decisions().every((e) => e['egress.hook'] === 'undici')).toBe(true);
      expect(sink.completions()).toHaveLength(3);
      expect(api.connections).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('Client: denied host and denied path, zero connections', async () => {
    installWith();
    const client = new Client(`https://evil.example.test:${evil.port}`, { connect: callerConnect() });
    const apiClient = new Client(`https://api.example.test:${api.port}`, { connect: callerConnect() });
    try {
      expect(await rejection(client.request({ path: '/v1/x', method: 'GET' }))).toMatchObject({
        reason: 'host_not_allowed',
      });
      expect(await rejection(apiClient.request({ path: '/admin', method: 'GET' }))).toMatchObject({
        reason: 'path_not_allowed',
        rule: 'api',
      });
      expect(evil.connections).toBe(0);
      expect(api.connections).toBe(0);
    } finally {
      await Promise.all([client.close(), apiClient.close()]);
    }
  });

  it('Pool: allowed and denied; Pool → Client does not decide twice', async () => {
    installWith();
    const pool = new Pool(`https://api.example.test:${api.port}`, {
      connect: callerConnect(),
      connections: 2,
    });
    const denied = new Pool(`https://evil.example.test:${evil.port}`, { connect: callerConnect() });
    try {
      const res = await pool.request({ path: '/v1/pool', method: 'GET' });
      expect(res.statusCode).toBe(200);
      await body(res);
      expect(await rejection(denied.request({ path: '/v1/x', method: 'GET' }))).toMatchObject({
        reason: 'host_not_allowed',
      });
      expect(evil.connections).toBe(0);
      expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['allowed', 'denied']);
    } finally {
      await Promise.all([pool.close(), denied.close()]);
    }
  });

  it('Agent passed as dispatcher: allowed and denied', async () => {
    installWith();
    const agent = new Agent({ connect: callerConnect() });
    try {
      const res = await request(apiUrl(), { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await body(res);
      expect(await rejection(request(evilUrl(), { dispatcher: agent }))).toMatchObject({
        reason: 'host_not_allowed',
      });
      expect(evil.connections).toBe(0);
      expect(sink.decisions()).toHaveLength(2);
    } finally {
      await agent.close();
    }
  });

  it("the caller's Agent dials a listed name that resolves to loopback without privateAddresses: allow → refused at dial time", async () => {
    installWith([{ name: 'api', hosts: ['api.example.test'], ports: EPHEMERAL }]);
    const agent = new Agent({ connect: callerConnect() });
    try {
      const error = await rejection(request(apiUrl(), { dispatcher: agent }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'private_address' });
      expect(api.connections).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('a later setGlobalDispatcher(new Agent()) is still decided, and global fetch stays guarded', async () => {
    installWith();
    const before = getGlobalDispatcher();
    const agent = new Agent({ connect: callerConnect() });
    setGlobalDispatcher(agent);
    try {
      const res = await request(apiUrl());
      expect(res.statusCode).toBe(200);
      await body(res);
      expect(await rejection(request(evilUrl()))).toMatchObject({ reason: 'host_not_allowed' });
      const fetchError = await rejection(fetch(evilUrl()));
      expect(fetchError.cause).toMatchObject({ reason: 'host_not_allowed' });
      expect(evil.connections).toBe(0);
    } finally {
      setGlobalDispatcher(before);
      await agent.close();
    }
  });
});

describe('undici interceptors', () => {
  it('redirect interceptor: each hop is decided; a hop to a denied host never connects', async () => {
    installWith();
    const agent = new Agent({ connect: callerConnect() }).compose(
      interceptors.redirect({ maxRedirections: 3 }),
    );
    try {
      const res = await request(apiUrl('/v1/hop'), { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(await body(res))).toEqual({ ok: true, path: '/v1/landed' });
      expect(sink.decisions().map((e) => e['url.path'])).toEqual(['/v1/hop', '/v1/landed']);

      sink.clear();
      const error = await rejection(request(apiUrl('/v1/to-evil'), { dispatcher: agent }));
      expect(error).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
      expect(evil.connections).toBe(0);
      expect(sink.decisions().map((e) => e['egress.decision'])).toEqual(['allowed', 'denied']);
    } finally {
      await agent.close();
    }
  });

  // The DNS interceptor rewrites the origin to an IP before the request reaches a dispatcher, so the
  // request is decided by that address: only an `addresses` rule allows it. Deciding it by the Host
  // header instead would let any caller reach any address by naming an allowed host.
  const viaTestDns = (
    origin: URL,
    _opts: unknown,
    cb: (err: Error | null, addresses?: LookupAddress[]) => void,
  ) =>
    dialLookup(origin.hostname, { all: true }, (err, addresses) =>
      cb(err, err ? undefined : (addresses as unknown as LookupAddress[])),
    );

  it('DNS interceptor: the rewritten IP origin is decided as an address → address_not_allowed', async () => {
    installWith();
    const agent = new Agent({ connect: callerConnect() }).compose(
      interceptors.dns({ lookup: viaTestDns as never }),
    );
    try {
      const error = await rejection(request(apiUrl(), { dispatcher: agent }));
      expect(error).toMatchObject({
        code: 'EGRESS_ERR_DENIED',
        reason: 'address_not_allowed',
        host: '127.0.0.1',
      });
      expect(api.connections).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('DNS interceptor: allowed by an addresses rule covering the address', async () => {
    installWith([rules.api, rules.loopbackAddress]);
    const agent = new Agent({ connect: callerConnect() }).compose(
      interceptors.dns({ lookup: viaTestDns as never }),
    );
    try {
      const res = await request(apiUrl(), { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await body(res);
      expect(sink.decisions()[0]).toMatchObject({
        'egress.rule': 'loopback-address',
        'server.address': '127.0.0.1',
      });
    } finally {
      await agent.close();
    }
  });

  it('DNS interceptor: a name no rule lists is not looked up at all', async () => {
    installWith();
    let lookups = 0;
    const counting = (origin: URL, opts: unknown, cb: never) => {
      lookups++;
      return viaTestDns(origin, opts, cb);
    };
    const agent = new Agent({ connect: callerConnect() }).compose(
      interceptors.dns({ lookup: counting as never }),
    );
    try {
      const error = await rejection(request(evilUrl(), { dispatcher: agent }));
      expect(error).toMatchObject({
        code: 'EGRESS_ERR_DENIED',
        reason: 'host_not_allowed',
        host: 'evil.example.test',
      });
      expect(lookups).toBe(0);
      expect(dns.queries).toEqual([]);
      expect(evil.connections).toBe(0);
    } finally {
      await agent.close();
    }
  });
});

describe('proxies: the decision is about the target, and the proxy must be allowed', () => {
  // The kit's forward proxy, in a child process: in this process its own upstream sockets would be guarded too.
  let proxy: ChildProxy;
  const proxyUri = () => `http://proxy.example.test:${proxy.port}`;

  beforeAll(async () => {
    proxy = await startChildProxy();
  });
  afterEach(() => proxy.reset());
  afterAll(() => proxy.close());

  const proxyAgent = () =>
    new ProxyAgent({
      uri: proxyUri(),
      requestTls: { ca: pki.caCertPem },
      proxyTls: { lookup: dialLookup } as never,
    });

  it('ProxyAgent: target and proxy allowed → tunnelled through the proxy; one decision for the target, one for the proxy', async () => {
    installWith([rules.api, rules.proxy]);
    const agent = proxyAgent();
    try {
      const res = await request(apiUrl(), { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await body(res);
      await proxy.sync();
      expect(proxy.targets.map((t) => `${t.method} ${t.target}`)).toEqual([
        `CONNECT api.example.test:${api.port}`,
      ]);
      expect(api.connections).toBe(1);
      const decisions = sink.decisions();
      expect(decisions.map((e) => [e['egress.hook'], e['server.address'], e['egress.decision']])).toEqual([
        ['undici', 'api.example.test', 'allowed'],
        ['undici.proxy', 'proxy.example.test', 'allowed'],
      ]);
    } finally {
      await agent.close();
    }
  });

  it('ProxyAgent: target not allowed → denied before the proxy is contacted (no CONNECT)', async () => {
    installWith([rules.api, rules.proxy]);
    const agent = proxyAgent();
    try {
      const error = await rejection(request(evilUrl(), { dispatcher: agent }));
      expect(error).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
      await proxy.sync();
      expect(proxy.connections).toBe(0);
      expect(proxy.targets).toEqual([]);
      expect(evil.connections).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('ProxyAgent: proxy not allowed → denied, the proxy sees no connection', async () => {
    installWith([rules.api]);
    const agent = proxyAgent();
    try {
      const error = await rejection(request(apiUrl(), { dispatcher: agent }));
      expect(error).toBeInstanceOf(EgressError);
      expect(error).toMatchObject({
        reason: 'host_not_allowed',
        host: 'proxy.example.test',
        port: proxy.port,
      });
      await proxy.sync();
      expect(proxy.connections).toBe(0);
      expect(api.connections).toBe(0);
      expect(sink.decisions().at(-1)).toMatchObject({
        'egress.hook': 'undici.proxy',
        'egress.decision': 'denied',
      });
    } finally {
      await agent.close();
    }
  });

  it("a tunnel opened with undici's connect() through an allowed proxy to an unlisted target is denied", async () => {
    installWith([rules.api, rules.proxy]);
    const client = new Client(proxyUri(), { connect: { lookup: dialLookup } as never });
    try {
      const error = await rejection(client.connect({ path: `evil.example.test:${evil.port}` }));
      expect(error).toMatchObject({ code: 'EGRESS_ERR_DENIED', host: 'evil.example.test' });
      await proxy.sync();
      expect(proxy.targets).toEqual([]);
      expect(evil.connections).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('ProxyAgent without tunnelling (proxyTunnel: false, plain http): the target and the proxy are decided', async () => {
    const plain = await startHttpServer();
    installWith([loopbackRule('api-http', ['api.example.test'], { schemes: ['http'] }), rules.proxy]);
    const agent = new ProxyAgent({ uri: proxyUri(), proxyTunnel: false });
    try {
      const res = await request(`http://api.example.test:${plain.port}/v1/plain`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await body(res);
      await proxy.sync();
      expect(proxy.targets).toEqual([
        { method: 'GET', target: `http://api.example.test:${plain.port}/v1/plain` },
      ]);
      expect(
        await rejection(request(`http://evil.example.test:${plain.port}/v1/x`, { dispatcher: agent })),
      ).toMatchObject({
        reason: 'host_not_allowed',
      });
      await proxy.sync();
      expect(proxy.targets).toHaveLength(1);
    } finally {
      await agent.close();
      await plain.close();
    }
  });

  describe('EnvHttpProxyAgent with HTTPS_PROXY', () => {
    const saved: Record<string, string | undefined> = {};
    const setEnv = (vars: Record<string, string | undefined>) => {
      for (const [k, v] of Object.entries(vars)) {
        if (!(k in saved)) saved[k] = process.env[k];
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };
    afterEach(() => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
        delete saved[k];
      }
    });
    const envAgent = () => {
      setEnv({
        HTTPS_PROXY: proxyUri(),
        https_proxy: undefined,
        HTTP_PROXY: undefined,
        http_proxy: undefined,
        NO_PROXY: undefined,
        no_proxy: undefined,
      });
      return new EnvHttpProxyAgent({
        requestTls: { ca: pki.caCertPem },
        proxyTls: { lookup: dialLookup } as never,
        connect: callerConnect(),
      });
    };

    it('allowed target through an allowed proxy', async () => {
      installWith([rules.api, rules.proxy]);
      const agent = envAgent();
      try {
        const res = await request(apiUrl(), { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        await body(res);
        await proxy.sync();
        expect(proxy.targets.map((t) => t.method)).toEqual(['CONNECT']);
        expect(sink.decisions().filter((e) => e['server.address'] === 'api.example.test')).toHaveLength(1);
      } finally {
        await agent.close();
      }
    });

    it('unlisted target: denied, the proxy saw no CONNECT for it', async () => {
      installWith([rules.api, rules.proxy]);
      const agent = envAgent();
      try {
        expect(await rejection(request(evilUrl(), { dispatcher: agent }))).toMatchObject({
          reason: 'host_not_allowed',
        });
        await proxy.sync();
        expect(proxy.connections).toBe(0);
        expect(proxy.targets).toEqual([]);
      } finally {
        await agent.close();
      }
    });

    it('proxy not allowed: denied, zero connections at the proxy', async () => {
      installWith([rules.api]);
      const agent = envAgent();
      try {
        expect(await rejection(request(apiUrl(), { dispatcher: agent }))).toMatchObject({
          host: 'proxy.example.test',
        });
        await proxy.sync();
        expect(proxy.connections).toBe(0);
      } finally {
        await agent.close();
      }
    });

    describe('global fetch when the process uses the proxy environment (NODE_USE_ENV_PROXY=1)', () => {
      // Node 22.21+, 24 and 26 started with NODE_USE_ENV_PROXY=1 install an EnvHttpProxyAgent as global
      // dispatcher; an application can do the same. install() then keeps fetch going through the proxy.
      let previous: ReturnType<typeof getGlobalDispatcher>;
      let envGlobal: EnvHttpProxyAgent | undefined;
      const useEnvProxy = () => {
        setEnv({
          HTTPS_PROXY: proxyUri(),
          https_proxy: undefined,
          HTTP_PROXY: undefined,
          http_proxy: undefined,
          NO_PROXY: undefined,
          no_proxy: undefined,
        });
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

      it('an allowed target goes through the allowed proxy', async () => {
        useEnvProxy();
        installWith([rules.api, rules.proxy]);
        const res = await fetch(apiUrl());
        expect(res.status).toBe(200);
        await res.text();
        await proxy.sync();
        expect(proxy.targets.map((t) => `${t.method} ${t.target}`)).toEqual([
          `CONNECT api.example.test:${api.port}`,
        ]);
        expect(sink.decisions().map((e) => [e['egress.hook'], e['server.address']])).toEqual([
          ['fetch', 'api.example.test'],
          ['undici.proxy', 'proxy.example.test'],
        ]);
      });

      it('an unlisted target is denied before the proxy is contacted', async () => {
        useEnvProxy();
        installWith([rules.api, rules.proxy]);
        const error = await rejection(fetch(evilUrl()));
        expect(error.cause).toMatchObject({ reason: 'host_not_allowed', host: 'evil.example.test' });
        await proxy.sync();
        expect(proxy.connections).toBe(0);
      });

      it('a proxy no rule lists is denied, with zero connections at the proxy', async () => {
        useEnvProxy();
        installWith([rules.api]);
        const error = await rejection(fetch(apiUrl()));
        expect(error.cause).toMatchObject({ reason: 'host_not_allowed', host: 'proxy.example.test' });
        await proxy.sync();
        expect(proxy.connections).toBe(0);
        expect(api.connections).toBe(0);
      });

      it('a proxy listed as a raw tcp destination is allowed too', async () => {
        useEnvProxy();
        installWith([rules.api, loopbackRule('proxy-tcp', ['proxy.example.test'], { schemes: ['tcp'] })]);
        const res = await fetch(apiUrl());
        expect(res.status).toBe(200);
        await res.text();
        expect(sink.decisions().at(-1)).toMatchObject({
          'egress.hook': 'undici.proxy',
          'egress.rule': 'proxy-tcp',
          'url.scheme': 'tcp',
        });
      });
    });
  });
});

describe('guard.dispatcher() without install()', () => {
  it('decides every request made through it; nothing else is patched', async () => {
    sink = eventSink();
    const guard = createGuard({
      policy: policyOf({ allow: [rules.api] }),
      lookup: dialLookup,
      ca: pki.caCertPem,
      destination: sink,
    });
    const dispatcher = guard.dispatcher();
    try {
      const res = await request(apiUrl(), { dispatcher });
      expect(res.statusCode).toBe(200);
      await body(res);
      expect(await rejection(request(evilUrl(), { dispatcher }))).toMatchObject({
        code: 'EGRESS_ERR_DENIED',
        reason: 'host_not_allowed',
      });
      expect(evil.connections).toBe(0);
      expect(sink.decisions().map((e) => [e['egress.hook'], e['egress.decision']])).toEqual([
        ['undici', 'allowed'],
        ['undici', 'denied'],
      ]);
    } finally {
      await dispatcher.close();
      await guard.close();
    }
  });

  it('its own connector checks the dialled address (a listed name resolving to loopback without privateAddresses: allow)', async () => {
    sink = eventSink();
    const guard = createGuard({
      policy: policyOf({ allow: [{ name: 'api', hosts: ['api.example.test'], ports: EPHEMERAL }] }),
      lookup: dialLookup,
      ca: pki.caCertPem,
      destination: sink,
    });
    const dispatcher = guard.dispatcher();
    try {
      expect(await rejection(request(apiUrl(), { dispatcher }))).toMatchObject({ reason: 'private_address' });
      expect(api.connections).toBe(0);
    } finally {
      await dispatcher.close();
      await guard.close();
    }
  });
});
