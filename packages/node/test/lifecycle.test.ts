/**
 * install() and uninstall(): what install patches, uninstall puts back exactly (fetch, both global
 * dispatcher symbols, net.Socket.prototype.connect, tls.connect, the dns functions, undici's
 * DispatcherBase and DNS interceptor, the ESM named exports); installing twice returns the same guard; a
 * bad policy patches nothing.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import * as undici from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createGuard,
  EgressPolicyError,
  GuardedDispatcher,
  install,
  installedGuard,
  uninstall,
} from '../src/index.js';
import { eventSink, policyOf, rejection, startHttpServer } from './fixtures/harness.js';

const SYMBOLS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];
const require = createRequire(import.meta.url);
const DispatcherBase = require(
  join(dirname(require.resolve('undici')), 'lib', 'dispatcher', 'dispatcher-base.js'),
) as {
  prototype: { dispatch: unknown };
};

function snapshot() {
  const g = globalThis as unknown as Record<symbol, unknown>;
  return {
    fetch: globalThis.fetch,
    dispatcher1: g[SYMBOLS[0]!],
    dispatcher2: g[SYMBOLS[1]!],
    socketConnect: net.Socket.prototype.connect,
    tlsConnect: tls.connect,
    dnsLookup: dns.lookup,
    dnsResolve4: dns.resolve4,
    dnsPromisesLookup: dns.promises.lookup,
    resolverResolve4: dns.Resolver.prototype.resolve4,
    promisesResolverResolve4: dns.promises.Resolver.prototype.resolve4,
    dispatcherBase: DispatcherBase.prototype.dispatch,
    dnsInterceptor: undici.interceptors.dns,
    httpRequest: http.request,
    httpGet: http.get,
    httpsRequest: https.request,
    httpsGet: https.get,
  };
}

const policy = () => policyOf({ allow: [{ name: 'api', hosts: ['api.example.test'] }] });

afterEach(async () => {
  await uninstall();
});

describe('install()', () => {
  it('patches every entry point', () => {
    const before = snapshot();
    install({ policy: policy(), destination: eventSink() });
    const after = snapshot();
    for (const key of [
      'fetch',
      'socketConnect',
      'tlsConnect',
      'dnsLookup',
      'dnsResolve4',
      'dnsPromisesLookup',
      'resolverResolve4',
      'promisesResolverResolve4',
      'dispatcherBase',
      'dnsInterceptor',
    ] as const) {
      expect(after[key], key).not.toBe(before[key]);
    }
    expect(after.dispatcher1).toBeInstanceOf(GuardedDispatcher);
    expect(after.dispatcher2).toBe(after.dispatcher1);
  });

  it('installing twice with the same policy returns the guard already installed', () => {
    const first = install({ policy: policy(), destination: eventSink() });
    const second = install({ policy: policy() });
    expect(second).toBe(first);
    expect(installedGuard()).toBe(first);
  });

  it('installing a second, different policy is refused: the first stays in force', () => {
    const first = install({ policy: policy(), destination: eventSink() });
    expect(() => install({ policy: policyOf({ allow: [] }) })).toThrow(
      expect.objectContaining({ code: 'EGRESS_ERR_INVALID_OPTIONS' }),
    );
    expect(installedGuard()).toBe(first);
  });

  it('an invalid policy throws before anything is patched', () => {
    const before = snapshot();
    let error: unknown;
    try {
      install({ policy: undefined, policyFile: '/nonexistent/egress.yaml', destination: eventSink() });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EgressPolicyError);
    expect(snapshot()).toEqual(before);
    expect(installedGuard()).toBeUndefined();
  });

  it('a service the policy does not know is refused, before anything is patched', () => {
    const before = snapshot();
    expect(() => install({ policy: policy(), service: 'nope', destination: eventSink() })).toThrow(
      /service "nope" is not in the policy/,
    );
    expect(snapshot()).toEqual(before);
  });

  it('hooks can be turned off one by one; the socket layer stays on', () => {
    const before = snapshot();
    install({
      policy: policy(),
      destination: eventSink(),
      hooks: { fetch: false, dns: false, undici: false },
    });
    const after = snapshot();
    expect(after.fetch).toBe(before.fetch);
    expect(after.dnsLookup).toBe(before.dnsLookup);
    expect(after.dispatcherBase).toBe(before.dispatcherBase);
    expect(after.socketConnect).not.toBe(before.socketConnect);
    expect(after.tlsConnect).not.toBe(before.tlsConnect);
  });

  it('ESM importers of node:net, node:tls and node:dns see the patched functions', async () => {
    install({ policy: policy(), destination: eventSink() });
    const [netEsm, tlsEsm, dnsEsm] = await Promise.all([
      import('node:net'),
      import('node:tls'),
      import('node:dns'),
    ]);
    expect(tlsEsm.connect).toBe(tls.connect);
    expect(dnsEsm.lookup).toBe(dns.lookup);
    expect(netEsm.Socket.prototype.connect).toBe(net.Socket.prototype.connect);
  });

  it('createGuard() alone patches nothing', () => {
    const before = snapshot();
    const guard = createGuard({ policy: policy(), destination: eventSink() });
    expect(guard.decide({ scheme: 'https', host: 'api.example.test', port: 443 }).allowed).toBe(true);
    expect(snapshot()).toEqual(before);
    void guard.close();
  });
});

describe('uninstall()', () => {
  it('restores every patched function and both global dispatcher symbols', async () => {
    const before = snapshot();
    install({ policy: policy(), destination: eventSink() });
    await uninstall();
    expect(snapshot()).toEqual(before);
    expect(installedGuard()).toBeUndefined();
    const [tlsEsm, dnsEsm] = await Promise.all([import('node:tls'), import('node:dns')]);
    expect(tlsEsm.connect).toBe(before.tlsConnect);
    expect(dnsEsm.lookup).toBe(before.dnsLookup);
  });

  it('restores the global dispatchers even after a later setGlobalDispatcher', async () => {
    const before = snapshot();
    install({ policy: policy(), destination: eventSink() });
    const agent = new undici.Agent();
    undici.setGlobalDispatcher(agent);
    await uninstall();
    const after = snapshot();
    expect(after.dispatcher1).toBe(before.dispatcher1);
    expect(after.dispatcher2).toBe(before.dispatcher2);
    await agent.close();
  });

  it('after uninstall nothing is decided any more; a second install works', async () => {
    const server = await startHttpServer();
    try {
      const sink = eventSink();
      install({ policy: policy(), destination: sink });
      const error = await rejection(fetch(`${server.origin}/`));
      expect(error.cause).toMatchObject({ code: 'EGRESS_ERR_DENIED' });
      await uninstall();
      const res = await fetch(`${server.origin}/`);
      expect(res.status).toBe(200);
      await res.text();
      expect(server.connections).toBe(1);

      const again = install({ policy: policy(), destination: eventSink() });
      expect(installedGuard()).toBe(again);
      expect(await rejection(fetch(`${server.origin}/`))).toHaveProperty('cause.code', 'EGRESS_ERR_DENIED');
    } finally {
      await server.close();
    }
  });

  it('is harmless when nothing is installed', async () => {
    await uninstall();
    await uninstall();
    expect(installedGuard()).toBeUndefined();
  });

  it('sockets opened by a dispatcher captured before uninstall are not guarded afterwards (the guard is gone)', async () => {
    install({ policy: policy(), destination: eventSink() });
    const socketConnect = net.Socket.prototype.connect;
    await uninstall();
    // A function captured while installed asks for the current guard, finds none, and connects as Node would.
    const server = await startHttpServer();
    try {
      const socket = new net.Socket();
      (socketConnect as (...a: unknown[]) => unknown).call(socket, server.port, '127.0.0.1');
      await new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.destroy();
      expect(server.connections).toBe(1);
    } finally {
      await server.close();
    }
  });
});
