/**
 * Threat class 13, TLS downgrade: a server that only speaks TLS 1.0/1.1, a caller that lowers its own
 * floor or caps its maximum below the rule's, and a caller that turns certificate verification off
 * (`rejectUnauthorized: false`, `NODE_TLS_REJECT_UNAUTHORIZED=0`). The rule's floor is set on every
 * socket (the ClientHello offers nothing below it), so a legacy server never completes a handshake and
 * never sees a request; a cap below the floor and disabled verification are refused before connecting,
 * unless the rule says `tls.verify: false` (then allowed, and logged on every use). Through fetch,
 * https.request, tls.connect, axios and got.
 */
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import axios from 'axios';
import got from 'got';
import { Agent } from 'undici';
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
  settle,
  startDnsServer,
  startHttpsServer,
  startLegacyTlsServer,
  type TestDnsServer,
  type TestPki,
} from './kit.js';

const NAMES = ['legacy.example.test', 'strict.example.test', 'api.example.test', 'insecure.example.test'];
/** What a client willing to speak TLS 1.1 needs against OpenSSL 3 (see startLegacyTlsServer). */
const LEGACY_CLIENT = { minVersion: 'TLSv1' as const, ciphers: 'DEFAULT@SECLEVEL=0' };

let pki: TestPki;
let dns: TestDnsServer;
let legacy: RecordingServer;
let tls12: RecordingServer;
let modern: RecordingServer;
let sink: EventSink;

function installGuard() {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('legacy', ['legacy.example.test'], { schemes: ['https', 'tls'] }),
        loopbackRule('strict', ['strict.example.test'], {
          schemes: ['https', 'tls'],
          tls: { minVersion: 'TLSv1.3' },
        }),
        loopbackRule('api', ['api.example.test'], { schemes: ['https', 'tls'] }),
        loopbackRule('insecure', ['insecure.example.test'], {
          schemes: ['https', 'tls'],
          tls: { verify: false },
        }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

const httpsGet = (options: https.RequestOptions) =>
  new Promise<number>((resolve, reject) => {
    https
      .get({ ca: pki.caCertPem, agent: false, ...options }, (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });

const tlsConnect = (options: tls.ConnectionOptions) =>
  new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ ca: pki.caCertPem, ...options });
    socket.once('secureConnect', () => {
      resolve(socket.getProtocol() ?? '');
      socket.destroy();
    });
    socket.once('error', reject);
  });

/** The legacy server completed no handshake and saw no request. */
async function expectNoHandshake(server: RecordingServer): Promise<void> {
  await settle();
  expect(server.tlsVersions).toEqual([]);
  expect(server.requests).toEqual([]);
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  legacy = await startLegacyTlsServer({ pki, names: NAMES });
  tls12 = await startHttpsServer({ pki, names: NAMES, maxVersion: 'TLSv1.2' });
  modern = await startHttpsServer({ pki, names: NAMES });
});

afterEach(async () => {
  await uninstall();
  for (const s of [legacy, tls12, modern]) s.reset();
  dns.reset();
  delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
});

afterAll(async () => {
  await Promise.all([legacy, tls12, modern].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('threat 13: TLS downgrade — a server that speaks only TLS 1.0/1.1', () => {
  it('control: without the guard, a willing client does complete TLS 1.1 with it', async () => {
    expect(
      await tlsConnect({
        host: '127.0.0.1',
        port: legacy.port,
        servername: 'legacy.example.test',
        ...LEGACY_CLIENT,
      }),
    ).toBe('TLSv1.1');
    expect(legacy.tlsVersions).toEqual(['TLSv1.1']);
  });

  it('fetch: refused with EGRESS_ERR_TLS / tls_version; no handshake completes', async () => {
    installGuard();
    expectEgress(await failureOf(fetch(`https://legacy.example.test:${legacy.port}/`)), {
      code: 'EGRESS_ERR_TLS',
      reason: 'tls_version',
    });
    await expectNoHandshake(legacy);
  });

  it('https.request from a caller that asks for TLS 1.0 and weak ciphers: the floor is raised, refused', async () => {
    installGuard();
    const error = await failureOf(
      httpsGet({ host: 'legacy.example.test', port: legacy.port, ...LEGACY_CLIENT }),
    );
    expectEgress(error, { code: 'EGRESS_ERR_TLS', reason: 'tls_version' });
    await expectNoHandshake(legacy);
  });

  it('tls.connect from a caller that asks for TLS 1.0: the floor is raised, refused', async () => {
    installGuard();
    const error = await failureOf(
      tlsConnect({ host: 'legacy.example.test', port: legacy.port, ...LEGACY_CLIENT }),
    );
    expectEgress(error, { code: 'EGRESS_ERR_TLS', reason: 'tls_version' });
    await expectNoHandshake(legacy);
  });

  it('axios and got: refused the same way', async () => {
    installGuard();
    const url = `https://legacy.example.test:${legacy.port}/`;
    const agent = new https.Agent({ ca: pki.caCertPem, ...LEGACY_CLIENT });
    try {
      expectEgress(await failureOf(axios.get(url, { adapter: 'http', httpsAgent: agent, proxy: false })), {
        code: 'EGRESS_ERR_TLS',
      });
      expectEgress(
        await failureOf(
          got.get(url, {
            https: { certificateAuthority: pki.caCertPem, minVersion: 'TLSv1' },
            retry: { limit: 0 },
          }),
        ),
        { code: 'EGRESS_ERR_TLS' },
      );
    } finally {
      agent.destroy();
    }
    await expectNoHandshake(legacy);
  });

  it('a caller capping TLS at 1.1 (maxVersion): refused before connecting, zero connections', async () => {
    installGuard();
    expectEgress(
      await failureOf(
        tlsConnect({
          host: 'legacy.example.test',
          port: legacy.port,
          maxVersion: 'TLSv1.1',
          ...LEGACY_CLIENT,
        }),
      ),
      {
        code: 'EGRESS_ERR_TLS',
        reason: 'tls_version',
      },
    );
    expectEgress(
      await failureOf(httpsGet({ host: 'legacy.example.test', port: legacy.port, maxVersion: 'TLSv1.1' })),
      {
        code: 'EGRESS_ERR_TLS',
      },
    );
    await settle();
    expect(legacy.connections).toBe(0);
  });

  it("a rule's floor TLSv1.3 against a TLS 1.2-only server: refused for fetch, https.request and tls.connect", async () => {
    installGuard();
    expectEgress(await failureOf(fetch(`https://strict.example.test:${tls12.port}/`)), {
      reason: 'tls_version',
    });
    expectEgress(await failureOf(httpsGet({ host: 'strict.example.test', port: tls12.port })), {
      reason: 'tls_version',
    });
    expectEgress(await failureOf(tlsConnect({ host: 'strict.example.test', port: tls12.port })), {
      reason: 'tls_version',
    });
    await expectNoHandshake(tls12);
  });

  it('control: the default floor allows TLS 1.2 and 1.3', async () => {
    installGuard();
    expect((await fetch(`https://api.example.test:${tls12.port}/`)).status).toBe(200);
    expect(await tlsConnect({ host: 'api.example.test', port: modern.port })).toBe('TLSv1.3');
  });
});

describe('threat 13: TLS downgrade — a caller turning certificate verification off', () => {
  it('https.request and tls.connect with rejectUnauthorized: false: tls_verify_disabled, zero connections', async () => {
    installGuard();
    expectEgress(
      await failureOf(httpsGet({ host: 'api.example.test', port: modern.port, rejectUnauthorized: false })),
      {
        code: 'EGRESS_ERR_TLS',
        reason: 'tls_verify_disabled',
      },
    );
    expectEgress(
      await failureOf(tlsConnect({ host: 'api.example.test', port: modern.port, rejectUnauthorized: false })),
      {
        code: 'EGRESS_ERR_TLS',
        reason: 'tls_verify_disabled',
      },
    );
    await settle();
    expect(modern.connections).toBe(0);
  });

  it("fetch through a caller's Agent with rejectUnauthorized: false, and axios's httpsAgent: refused", async () => {
    installGuard();
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    const insecureAgent = new https.Agent({ rejectUnauthorized: false });
    try {
      expectEgress(
        await failureOf(
          fetch(`https://api.example.test:${modern.port}/`, { dispatcher: agent } as unknown as RequestInit),
        ),
        {
          reason: 'tls_verify_disabled',
        },
      );
      expectEgress(
        await failureOf(
          axios.get(`https://api.example.test:${modern.port}/`, {
            adapter: 'http',
            httpsAgent: insecureAgent,
            proxy: false,
          }),
        ),
        { reason: 'tls_verify_disabled' },
      );
    } finally {
      await agent.close();
      insecureAgent.destroy();
    }
    await settle();
    expect(modern.connections).toBe(0);
  });

  it('NODE_TLS_REJECT_UNAUTHORIZED=0 is the same as rejectUnauthorized: false', async () => {
    installGuard();
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    expectEgress(await failureOf(tlsConnect({ host: 'api.example.test', port: modern.port })), {
      reason: 'tls_verify_disabled',
    });
    expectEgress(await failureOf(httpsGet({ host: 'api.example.test', port: modern.port })), {
      reason: 'tls_verify_disabled',
    });
    await settle();
    expect(modern.connections).toBe(0);
  });

  it('where the rule says tls.verify: false, an untrusted certificate is accepted, and each use is logged', async () => {
    installGuard();
    // No CA given: the certificate is untrusted, so only turned-off verification lets these through.
    expect(
      await httpsGet({
        host: 'insecure.example.test',
        port: modern.port,
        ca: undefined,
        rejectUnauthorized: false,
      }),
    ).toBe(200);
    expect(
      await tlsConnect({
        host: 'insecure.example.test',
        port: modern.port,
        ca: undefined,
        rejectUnauthorized: false,
      }),
    ).toBe('TLSv1.3');
    const logged = sink.decisions().filter((e) => String(e['egress.hook']).endsWith('verify-disabled'));
    expect(logged.length).toBeGreaterThanOrEqual(2);
    expect(logged.every((e) => e['egress.rule'] === 'insecure')).toBe(true);
  });

  it('with verification on, an untrusted certificate is refused by TLS itself (the guard never turns it off)', async () => {
    installGuard();
    const error = await failureOf(tlsConnect({ host: 'api.example.test', port: modern.port, ca: undefined }));
    expect((error as { code?: string }).code).toMatch(/CERT|SELF_SIGNED|UNABLE_TO/);
  });
});
