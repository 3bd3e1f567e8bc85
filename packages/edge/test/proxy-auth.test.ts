/**
 * Service identity on the explicit proxy, with real clients: curl, undici's ProxyAgent (token option and
 * URL credentials) and Node 24's NODE_USE_ENV_PROXY, each with HTTPS_PROXY-style credentials. Proved by
 * what the upstream saw: the credentials' service decides (not the source address), a missing or wrong
 * token gets 407 and nothing reaches the upstream, the header never reaches it, failures are limited per
 * source, and a reload re-reads the secrets file.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ProxyAgent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type RecordingServer,
  runNode,
  startHttpServer,
  startHttpsServer,
  type TestPki,
} from '../../../test/support/index.js';
import { tokenDigest } from '../src/proxy-auth/index.js';
import { policyOf, startTestEdge, TEST_PORTS, type TestEdge } from './helpers/edge-kit.js';

const POLICY = `
version: 1
services:
  payments:
    allow:
      - name: pay-api
        hosts: [pay.test]
        schemes: [https, http]
        ports: [${TEST_PORTS}]
        privateAddresses: allow
  reports:
    sources: ["127.0.0.0/8"]
    allow:
      - name: reports-api
        hosts: [reports.test]
        schemes: [https]
        ports: [${TEST_PORTS}]
        privateAddresses: allow
`;
const NAMES = { 'pay.test': ['127.0.0.1'], 'reports.test': ['127.0.0.1'] };

const PAY = randomBytes(24).toString('hex');
const REPORTS = randomBytes(24).toString('base64url');

let pki: TestPki;
let tlsServer: RecordingServer;
let plainServer: RecordingServer;
let dir: string;
let secrets: string;
let t: TestEdge;

beforeAll(async () => {
  pki = await createTestPki();
  tlsServer = await startHttpsServer({ pki, names: ['pay.test', 'reports.test'] });
  plainServer = await startHttpServer();
  dir = await mkdtemp(join(tmpdir(), 'edge-proxy-auth-'));
  secrets = join(dir, 'proxy-auth.yaml');
  // One service by its token, the other by the token's digest: the file need not hold the token.
  await writeFile(
    secrets,
    `services:\n  payments: ${PAY}\n  reports:\n    - sha256:${tokenDigest(REPORTS).toString('hex')}\n`,
    { mode: 0o600 },
  );
  t = await startTestEdge(
    { policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }], proxyAuth: secrets },
    NAMES,
  );
});

afterAll(async () => {
  await t?.close();
  await tlsServer?.close();
  await plainServer?.close();
  await pki?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  tlsServer.reset();
  plainServer.reset();
});

const proxyUrl = (user: string, token: string) =>
  `http://${user}:${encodeURIComponent(token)}@127.0.0.1:${t.port('explicit')}`;
const target = (name: string, path: string) => `https://${name}:${tlsServer.port}${path}`;

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (error, stdout) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout }),
    );
  });
}

/** Sends a raw CONNECT with the given extra header lines; resolves with the response head. */
function rawConnect(authority: string, headers: string[], localAddress?: string): Promise<string> {
  return rawConnectTo(t.port('explicit'), authority, headers, localAddress);
}

function rawConnectTo(
  port: number,
  authority: string,
  headers: string[],
  localAddress?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let buf = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
    socket.on('error', reject);
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      // A 200 opens a tunnel that stays open: the head is the answer.
      if (buf.startsWith('HTTP/1.1 200 ') && buf.includes('\r\n\r\n')) socket.destroy();
    });
    socket.on('close', () => resolve(buf));
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`,
    );
  });
}

const basic = (user: string, token: string) =>
  `Proxy-Authorization: Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

describe('curl with HTTPS_PROXY-style credentials', () => {
  it('is let through as its service, whatever its source address says', async () => {
    const ok = await curl([
      '-x',
      proxyUrl('payments', PAY),
      '--cacert',
      pki.caCertPath,
      target('pay.test', '/curl'),
    ]);
    expect(ok.code).toBe(0);
    expect(tlsServer.requests.map((r) => r.url)).toEqual(['/curl']);
    const { decision } = await t.capture.completed({
      'server.address': 'pay.test',
      'egress.decision': 'allowed',
    });
    expect(decision['service.name']).toBe('payments');

    // 127.0.0.1 is in reports' sources, but the credentials say payments: reports.test is not its.
    tlsServer.reset();
    const denied = await curl([
      '-x',
      proxyUrl('payments', PAY),
      '--cacert',
      pki.caCertPath,
      '-w',
      '%{http_connect}',
      target('reports.test', '/no'),
    ]);
    expect(denied.code).not.toBe(0);
    expect(denied.stdout).toBe('403');
    expect(tlsServer.connections).toBe(0);
  });

  it('gets 407 with a wrong token, and nothing reaches the upstream; the token is not logged', async () => {
    const wrong = `${PAY.slice(0, -1)}x`;
    const r = await curl([
      '-x',
      proxyUrl('payments', wrong),
      '--cacert',
      pki.caCertPath,
      '-w',
      '%{http_connect}',
      target('pay.test', '/wrong'),
    ]);
    expect(r.stdout).toBe('407');
    expect(tlsServer.connections).toBe(0);
    const { decision, completion } = await t.capture.completed({ 'egress.reason': 'proxy_auth_invalid' });
    expect(decision['egress.decision']).toBe('denied');
    expect(decision['service.name']).toBe('payments');
    expect(completion['egress.outcome']).toBe('denied');
    const logged = JSON.stringify(t.capture.lines);
    expect(logged).not.toContain(wrong);
    expect(logged).not.toContain(PAY);
    expect(t.capture.invalid).toEqual([]);
  });
});

describe('raw requests', () => {
  it('answers 407 with Basic and Bearer challenges when the credentials are missing', async () => {
    const head = await rawConnect(`pay.test:${tlsServer.port}`, []);
    expect(head).toMatch(/^HTTP\/1\.1 407 /);
    expect(head).toMatch(/proxy-authenticate: Basic realm="egress-guard"/i);
    expect(head).toMatch(/proxy-authenticate: Bearer realm="egress-guard"/i);
    expect(head).toContain('x-egress-reason: proxy_auth_required');
    expect(tlsServer.connections).toBe(0);
  });

  it('refuses two Proxy-Authorization headers, a user that is no service, and a token of another service', async () => {
    const port = tlsServer.port;
    expect(await rawConnect(`pay.test:${port}`, [basic('payments', PAY), basic('payments', PAY)])).toMatch(
      /^HTTP\/1\.1 407 /,
    );
    expect(await rawConnect(`pay.test:${port}`, [basic('nobody', PAY)])).toMatch(/^HTTP\/1\.1 407 /);
    expect(await rawConnect(`pay.test:${port}`, [basic('payments', REPORTS)])).toMatch(/^HTTP\/1\.1 407 /);
    expect(await rawConnect(`pay.test:${port}`, ['Proxy-Authorization: Digest username="payments"'])).toMatch(
      /^HTTP\/1\.1 407 /,
    );
    expect(tlsServer.connections).toBe(0);
  });

  it('takes a Bearer token alone as the name of its service', async () => {
    const head = await rawConnect(`reports.test:${tlsServer.port}`, [
      `Proxy-Authorization: Bearer ${REPORTS}`,
    ]);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('forwards plaintext requests as the service and never passes the header on', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: t.port('explicit'),
        path: `http://pay.test:${plainServer.port}/plain`,
        headers: {
          host: `pay.test:${plainServer.port}`,
          'proxy-authorization': basic('payments', PAY).slice(21),
        },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.end();
    });
    expect(status).toBe(200);
    expect(plainServer.requests).toHaveLength(1);
    expect(plainServer.requests[0]!.headers['proxy-authorization']).toBeUndefined();
  });

  it('limits failures per source: past 10, even the right token is refused with 429 unchecked', async () => {
    // Another loopback source, so that the other tests keep their own window.
    const from = '127.0.0.3';
    for (let i = 0; i < 10; i++) {
      expect(
        await rawConnect(
          `pay.test:${tlsServer.port}`,
          [basic('payments', `guess-${i}-aaaaaaaaaaaaaa`)],
          from,
        ),
      ).toMatch(/^HTTP\/1\.1 407 /);
    }
    const limited = await rawConnect(`pay.test:${tlsServer.port}`, [basic('payments', PAY)], from);
    expect(limited).toMatch(/^HTTP\/1\.1 429 /);
    expect(limited).toMatch(/retry-after: \d+/i);
    expect(limited).toContain('x-egress-reason: proxy_auth_rate_limited');
    expect(tlsServer.connections).toBe(0);
    // Other sources are not held back.
    expect(await rawConnect(`pay.test:${tlsServer.port}`, [basic('payments', PAY)])).toMatch(
      /^HTTP\/1\.1 200 /,
    );
  });
});

describe('undici ProxyAgent', () => {
  it('works with the token option and with credentials in the proxy URL', async () => {
    const byToken = new ProxyAgent({
      uri: `http://127.0.0.1:${t.port('explicit')}`,
      token: `Bearer ${REPORTS}`,
      requestTls: { ca: pki.caCertPem },
    });
    const byUrl = new ProxyAgent({ uri: proxyUrl('payments', PAY), requestTls: { ca: pki.caCertPem } });
    try {
      const a = await request(target('reports.test', '/undici-token'), { dispatcher: byToken });
      await a.body.text();
      const b = await request(target('pay.test', '/undici-url'), { dispatcher: byUrl });
      await b.body.text();
      expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
      expect(tlsServer.requests.map((r) => r.url)).toEqual(['/undici-token', '/undici-url']);
      // The token of reports does not open payments' hosts.
      await expect(request(target('pay.test', '/x'), { dispatcher: byToken })).rejects.toThrow(/403/);
      expect(tlsServer.requests).toHaveLength(2);
    } finally {
      await byToken.close();
      await byUrl.close();
    }
  });
});

describe("Node 24's NODE_USE_ENV_PROXY", () => {
  it('sends the credentials of HTTPS_PROXY=http://payments:TOKEN@edge', async () => {
    const matrix = (await import(
      pathToFileURL(join(__dirname, '../../../scripts/lib/node-matrix.mjs')).href
    )) as {
      ensureBinary(version: string): string;
    };
    const node24 = matrix.ensureBinary('24.21.0');
    const script = `const r = await fetch(${JSON.stringify(target('pay.test', '/node24'))}); console.log(r.status, await r.text());`;
    const run = await runNode(['--input-type=module', '-e', script], {
      nodeBinary: node24,
      env: {
        NODE_USE_ENV_PROXY: '1',
        HTTPS_PROXY: proxyUrl('payments', PAY),
        HTTP_PROXY: undefined,
        NO_PROXY: undefined,
        https_proxy: undefined,
        no_proxy: undefined,
        NODE_EXTRA_CA_CERTS: pki.caCertPath,
        NODE_OPTIONS: undefined,
      },
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^200 /);
    expect(tlsServer.requests.map((r) => r.url)).toEqual(['/node24']);

    tlsServer.reset();
    const wrong = await runNode(['--input-type=module', '-e', script], {
      nodeBinary: node24,
      env: {
        NODE_USE_ENV_PROXY: '1',
        HTTPS_PROXY: proxyUrl('payments', 'not-the-token-at-all'),
        NODE_EXTRA_CA_CERTS: pki.caCertPath,
        NODE_OPTIONS: undefined,
      },
    });
    expect(wrong.code).not.toBe(0);
    expect(tlsServer.connections).toBe(0);
  }, 30_000);
});

describe('reload', () => {
  it('re-reads the secrets file with the policy, and keeps the credentials when the file is broken', async () => {
    const file = join(dir, 'rotating.yaml');
    const first = randomBytes(20).toString('hex');
    const second = randomBytes(20).toString('hex');
    await writeFile(file, `services:\n  payments: [${first}]\n`, { mode: 0o600 });
    const edge = await startTestEdge(
      { policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }], proxyAuth: file },
      NAMES,
    );
    const connectAs = (token: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(edge.port('explicit'), '127.0.0.1');
        let head = '';
        s.on('error', reject);
        s.on('data', (c: Buffer) => {
          head += c.toString('latin1');
          if (head.includes('\r\n\r\n')) s.destroy();
        });
        s.on('close', () => resolve(head));
        s.write(`CONNECT pay.test:${tlsServer.port} HTTP/1.1\r\n${basic('payments', token)}\r\n\r\n`);
      });
    try {
      expect(await connectAs(first)).toMatch(/^HTTP\/1\.1 200 /);
      await writeFile(file, `services:\n  payments: [${second}]\n`);
      await edge.edge.reload(policyOf(POLICY));
      expect(await connectAs(first)).toMatch(/^HTTP\/1\.1 407 /);
      expect(await connectAs(second)).toMatch(/^HTTP\/1\.1 200 /);

      await writeFile(file, `services:\n  payments: [short, ${first}]\n`);
      await edge.edge.reload(policyOf(POLICY));
      const rejected = edge.capture.lines.find((l) => l['event.name'] === 'egress.policy.rejected');
      expect(rejected?.['egress.policy.file']).toBe(file);
      expect(JSON.stringify(rejected)).not.toContain(first);
      expect(await connectAs(second)).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await edge.close();
    }
  });

  it('takes a changed directory (a Kubernetes Secret rotated in place) without a signal', async () => {
    const mount = join(dir, 'mount');
    const old = randomBytes(20).toString('hex');
    const next = randomBytes(20).toString('hex');
    await mkdir(join(mount, '..v1'), { recursive: true });
    await writeFile(join(mount, '..v1', 'payments'), `${old}\n`, { mode: 0o400 });
    await symlink('..v1', join(mount, '..data'));
    await symlink('..data/payments', join(mount, 'payments'));
    const edge = await startTestEdge(
      { policy: policyOf(POLICY), listeners: [{ kind: 'explicit', port: 0 }], proxyAuth: mount },
      NAMES,
    );
    const status = async (token: string) =>
      (
        await rawConnectTo(edge.port('explicit'), `pay.test:${tlsServer.port}`, [basic('payments', token)])
      ).slice(0, 12);
    try {
      expect(await status(old)).toBe('HTTP/1.1 200');
      // What the kubelet does: a new timestamped directory, then the ..data link swapped atomically.
      await mkdir(join(mount, '..v2'));
      await writeFile(join(mount, '..v2', 'payments'), `${next}\n`, { mode: 0o400 });
      await symlink('..v2', join(mount, '..data.tmp'));
      await rename(join(mount, '..data.tmp'), join(mount, '..data'));
      await new Promise((r) => setTimeout(r, 1100));
      expect(await status(old)).toBe('HTTP/1.1 407');
      expect(await status(next)).toBe('HTTP/1.1 200');
    } finally {
      await edge.close();
    }
  });

  it('warns when the secrets file is readable by every user', async () => {
    const file = join(dir, 'open.yaml');
    await writeFile(file, `services:\n  payments: [${PAY}]\n`);
    await chmod(file, 0o644);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const edge = await startTestEdge({
      policy: policyOf(POLICY),
      listeners: [{ kind: 'explicit', port: 0 }],
      proxyAuth: file,
    });
    try {
      await new Promise((r) => setImmediate(r));
      expect(warnings.some((w) => w.includes(file) && w.includes('0644'))).toBe(true);
    } finally {
      process.off('warning', onWarning);
      await edge.close();
    }
  });
});
