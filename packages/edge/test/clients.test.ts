/**
 * Real clients through the edge: curl and openssl s_client as child processes, undici's ProxyAgent and
 * Node's https over a CONNECT tunnel, through the explicit and the SNI-routed listeners. Blocks are
 * proven by what the upstream servers saw.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  startHttpsServer,
  startLegacyTlsServer,
  type TestPki,
} from '../../../test/support/index.js';
import {
  connectTunnel,
  type EventLine,
  policyOf,
  startTestEdge,
  TEST_PORTS,
  type TestEdge,
  tlsOver,
} from './helpers/edge-kit.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a hard time limit; never rejects. */
function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: timeoutMs,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      },
      (error, stdout, stderr) => {
        const code: unknown = error ? (error as { code?: unknown }).code : 0;
        resolve({
          code: typeof code === 'number' ? code : 1,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
    child.stdin?.end();
  });
}

const POLICY = `
version: 1
allow:
  - name: api
    hosts: [api.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
  - name: legacy
    hosts: [legacy.test]
    schemes: [https]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`;

let pki: TestPki;
let api: RecordingServer;
let legacy: RecordingServer;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  api = await startHttpsServer({ pki, names: ['api.test', 'other.test'] });
  legacy = await startLegacyTlsServer({ pki, names: ['legacy.test'] });
  t = await startTestEdge(
    {
      policy: policyOf(POLICY),
      listeners: [
        { kind: 'explicit', port: 0 },
        { kind: 'sni', port: 0, upstreamPort: api.port },
      ],
    },
    { 'api.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'], 'legacy.test': ['127.0.0.1'] },
  );
});
afterAll(async () => {
  // Every event written validates against the audit event schema.
  expect(t?.capture.invalid ?? []).toEqual([]);
  await t?.close();
  await api?.close();
  await legacy?.close();
});
beforeEach(() => {
  api.reset();
  legacy.reset();
  t.capture.lines.length = 0;
});

/** The decision of the flow matching `match` once it completed (waits, bounded). */
async function decisionOf(match: Record<string, unknown>): Promise<EventLine> {
  return (await t.capture.completed(match)).decision;
}

describe('curl and openssl through the explicit proxy', () => {
  it('curl -x reaches an allowed HTTPS server', async () => {
    const r = await run('curl', [
      '-sS',
      '-x',
      `http://127.0.0.1:${t.port('explicit')}`,
      '--cacert',
      pki.caCertPath,
      `https://api.test:${api.port}/hello`,
    ]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, path: '/hello' });
    expect(api.requests.map((q) => q.url)).toEqual(['/hello']);
    expect(await decisionOf({ 'egress.rule': 'api' })).toMatchObject({ 'egress.decision': 'allowed' });
  });

  it('openssl s_client with -servername other than the CONNECT host is refused (sni_mismatch)', async () => {
    const r = await run('openssl', [
      's_client',
      '-proxy',
      `127.0.0.1:${t.port('explicit')}`,
      '-connect',
      `api.test:${api.port}`,
      '-servername',
      'other.test',
      '-CAfile',
      pki.caCertPath,
    ]);
    expect(r.code).not.toBe(0);
    expect(await decisionOf({ 'egress.reason': 'sni_mismatch' })).toMatchObject({
      'tls.client.server_name': 'other.test',
    });
    expect(api.connections).toBe(0);
    expect(api.bytesReceived).toBe(0);
  });

  it('a TLS 1.1 client (openssl -tls1_1) is refused before dialling (tls_version)', async () => {
    const r = await run('openssl', [
      's_client',
      '-proxy',
      `127.0.0.1:${t.port('explicit')}`,
      '-connect',
      `api.test:${api.port}`,
      '-servername',
      'api.test',
      '-tls1_1',
      '-cipher',
      'DEFAULT@SECLEVEL=0',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/protocol version|alert/i);
    expect(await decisionOf({ 'egress.reason': 'tls_version' })).toMatchObject({
      'egress.decision': 'denied',
    });
    expect(api.connections).toBe(0);
  });
});

describe('Node clients through the explicit proxy', () => {
  it("undici's ProxyAgent reaches an allowed server", async () => {
    const dispatcher = new ProxyAgent({
      uri: `http://127.0.0.1:${t.port('explicit')}`,
      requestTls: { ca: pki.caCertPem },
    });
    try {
      const res = await undiciRequest(`https://api.test:${api.port}/undici`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ ok: true, path: '/undici' });
    } finally {
      await dispatcher.close();
    }
    expect(api.requests.map((q) => q.url)).toEqual(['/undici']);
  });

  it('https.request over a CONNECT tunnel made with http.request', async () => {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: t.port('explicit'),
        method: 'CONNECT',
        path: `api.test:${api.port}`,
      });
      req.once('connect', (res, s) =>
        res.statusCode === 200 ? resolve(s) : reject(new Error(`CONNECT ${res.statusCode}`)),
      );
      req.once('error', reject);
      req.end();
    });
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        {
          host: 'api.test',
          port: api.port,
          path: '/node',
          createConnection: () => tls.connect({ socket, servername: 'api.test', ca: pki.caCertPem }),
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve(text));
        },
      );
      req.once('error', reject);
      req.end();
    });
    expect(JSON.parse(body)).toEqual({ ok: true, path: '/node' });
  });

  it('a TLS 1.1-only upstream is refused on its ServerHello, both sides closed (tls_version)', async () => {
    const tunnel = await connectTunnel(t.port('explicit'), `legacy.test:${legacy.port}`);
    expect(tunnel.status).toBe(200);
    await expect(
      tlsOver(tunnel.socket, {
        servername: 'legacy.test',
        ca: pki.caCertPem,
        minVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      }),
    ).rejects.toThrow(/protocol version|alert|ECONNRESET|socket/i);
    const { completion } = await t.capture.completed({ 'server.address': 'legacy.test' });
    expect(completion).toMatchObject({
      'egress.outcome': 'denied',
      'egress.close_reason': 'tls_version',
      'tls.protocol.version': 'TLSv1.1',
    });
    // The server got the hello (it had to, to answer) but no handshake ever completed.
    expect(legacy.connections).toBe(1);
    expect(legacy.tlsVersions).toEqual([]);
  });
});

describe('the SNI-routed listener', () => {
  it('curl --resolve reaches the server named by the SNI', async () => {
    const port = t.port('sni');
    const r = await run('curl', [
      '-sS',
      '--resolve',
      `api.test:${port}:127.0.0.1`,
      '--cacert',
      pki.caCertPath,
      `https://api.test:${port}/by-sni`,
    ]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, path: '/by-sni' });
    expect(await decisionOf({ 'egress.hook': 'edge.sni' })).toMatchObject({
      'egress.decision': 'allowed',
      'server.port': api.port,
    });
  });

  it('refuses a name no rule lists, and a hello without SNI', async () => {
    const port = t.port('sni');
    const r = await run('curl', [
      '-sS',
      '--resolve',
      `other.test:${port}:127.0.0.1`,
      '--cacert',
      pki.caCertPath,
      `https://other.test:${port}/`,
    ]);
    expect(r.code).not.toBe(0);
    expect(await decisionOf({ 'egress.reason': 'host_not_allowed' })).toMatchObject({
      'server.address': 'other.test',
    });
    t.capture.lines.length = 0;
    const raw = net.connect(port, '127.0.0.1');
    const direct = await tlsOver(raw, { ca: pki.caCertPem, servername: '', rejectUnauthorized: false }).catch(
      (e: Error) => e,
    );
    expect(direct).toBeInstanceOf(Error);
    expect(await decisionOf({ 'egress.reason': 'sni_missing' })).toMatchObject({
      'egress.decision': 'denied',
    });
    expect(api.connections).toBe(0);
  });
});
