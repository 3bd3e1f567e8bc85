/**
 * The edge's own resolver: names in the hosts file (`localhost` included) are answered from it and never
 * asked of DNS, and a change to the file is seen; DNS answers are kept for their TTL (one query for many
 * flows), never when the TTL is 0, and forgotten on a reload. Proved by what the loopback DNS server and
 * the upstream saw.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type RecordingServer,
  startDnsServer,
  startHttpServer,
  type TestDnsServer,
} from '../../../test/support/index.js';
import { SystemResolver } from '../src/resolver.js';
import { policyOf, startTestEdge, TEST_PORTS, type TestEdge, waitFor } from './helpers/edge-kit.js';

const POLICY = `
version: 1
allow:
  - name: loopback-names
    hosts: [localhost, pinned.test, cached.test, later.test]
    schemes: [http]
    ports: [${TEST_PORTS}]
    privateAddresses: allow
`;

let dnsServer: TestDnsServer;
let web: RecordingServer;
let dir: string;

beforeAll(async () => {
  dnsServer = await startDnsServer({
    'cached.test': [{ type: 'A', data: '127.0.0.1', ttl: 30 }],
    'zero.test': [{ type: 'A', data: '127.0.0.1', ttl: 0 }],
    'short.test': [{ type: 'A', data: '127.0.0.1', ttl: 2 }],
    'later.test': [{ type: 'A', data: '127.0.0.1', ttl: 0 }],
  });
  web = await startHttpServer();
  dir = await mkdtemp(join(tmpdir(), 'edge-resolver-'));
});

afterAll(async () => {
  await dnsServer?.close();
  await web?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  dnsServer.reset();
  web.reset();
});

const servers = () => [`${dnsServer.address}:${dnsServer.port}`];
const asked = (name: string, type = 'A') =>
  dnsServer.queries.filter((q) => q.name === name && q.type === type).length;

/** A plaintext request through the explicit proxy to `http://name:port/path`; resolves with the status. */
function viaProxy(proxyPort: number, name: string, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      path: `http://${name}:${web.port}${path}`,
      headers: { host: `${name}:${web.port}` },
      agent: false,
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.end();
  });
}

describe('the hosts file', () => {
  let t: TestEdge;
  let hosts: string;

  beforeAll(async () => {
    hosts = join(dir, 'hosts');
    await writeFile(
      hosts,
      '# test hosts\n127.0.0.1\tlocalhost pinned.test  # trailing comment\n::1 localhost\n',
    );
    t = await startTestEdge({
      policy: policyOf(POLICY),
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { servers: servers(), hostsFile: hosts },
    });
  });
  afterAll(() => t?.close());

  it('answers localhost and pinned names from the file, without asking DNS', async () => {
    expect(await viaProxy(t.port('explicit'), 'localhost', '/a')).toBe(200);
    expect(await viaProxy(t.port('explicit'), 'pinned.test', '/b')).toBe(200);
    expect(web.requests.map((r) => r.url)).toEqual(['/a', '/b']);
    expect(dnsServer.queries).toEqual([]);
  });

  it('sees a name added to the file, and asks DNS only until then', async () => {
    // later.test is in DNS with TTL 0 (never cached): each flow asks, until the file lists it.
    expect(await viaProxy(t.port('explicit'), 'later.test', '/dns')).toBe(200);
    expect(asked('later.test')).toBe(1);
    await writeFile(hosts, '127.0.0.1 localhost pinned.test later.test\n');
    // The file is checked for a change at most once a second.
    await new Promise((r) => setTimeout(r, 1100));
    dnsServer.reset();
    expect(await viaProxy(t.port('explicit'), 'later.test', '/file')).toBe(200);
    expect(asked('later.test')).toBe(0);
    expect(web.requests.map((r) => r.url)).toEqual(['/dns', '/file']);
  });

  it('without the hosts file, localhost is asked of DNS and is not dialled', async () => {
    const plain = await startTestEdge({
      policy: policyOf(POLICY),
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { servers: servers(), hostsFile: false },
    });
    try {
      expect(await viaProxy(plain.port('explicit'), 'localhost')).toBe(502);
      expect(asked('localhost')).toBe(1);
      expect(web.connections).toBe(0);
      const { completion } = await plain.capture.completed({ 'server.address': 'localhost' });
      expect(completion['egress.close_reason']).toBe('upstream_unreachable');
    } finally {
      await plain.close();
    }
  });
});

describe('the answer cache', () => {
  it('asks once for many flows within the TTL, and again after a reload', async () => {
    const t = await startTestEdge({
      policy: policyOf(POLICY),
      listeners: [{ kind: 'explicit', port: 0 }],
      dns: { servers: servers(), hostsFile: false },
    });
    try {
      for (let i = 0; i < 5; i++)
        expect(await viaProxy(t.port('explicit'), 'cached.test', `/${i}`)).toBe(200);
      expect(web.requests).toHaveLength(5);
      expect(asked('cached.test', 'A')).toBe(1);
      // No AAAA record: "no data" is kept briefly too, so an IPv4-only name costs one AAAA query.
      expect(asked('cached.test', 'AAAA')).toBe(1);
      await t.edge.reload(policyOf(`${POLICY}\n# changed\n  - name: other\n    hosts: [other.test]\n`));
      expect(await viaProxy(t.port('explicit'), 'cached.test', '/after')).toBe(200);
      expect(asked('cached.test', 'A')).toBe(2);
    } finally {
      await t.close();
    }
  });

  it('keeps an answer for its TTL exactly, gives the remaining TTL, and never keeps TTL 0', async () => {
    let now = 1_000_000;
    const resolver = new SystemResolver({ servers: servers(), hostsFile: false, now: () => now });
    expect(await resolver.resolve4('short.test')).toEqual([{ address: '127.0.0.1', ttl: 2 }]);
    now += 1500;
    expect(await resolver.resolve4('short.test')).toEqual([{ address: '127.0.0.1', ttl: 1 }]);
    expect(asked('short.test')).toBe(1);
    now += 600;
    await resolver.resolve4('short.test');
    expect(asked('short.test')).toBe(2);

    await resolver.resolve4('zero.test');
    await resolver.resolve4('zero.test');
    expect(asked('zero.test')).toBe(2);
  });

  it('shares one query between concurrent questions; clear() and forget(name) drop answers', async () => {
    const resolver = new SystemResolver({ servers: servers(), hostsFile: false });
    const answers = await Promise.all([1, 2, 3].map(() => resolver.resolve4('cached.test')));
    expect(answers.every((a) => a[0]?.address === '127.0.0.1')).toBe(true);
    expect(asked('cached.test')).toBe(1);
    expect(resolver.cachedAnswers).toBe(1);
    resolver.clear();
    expect(resolver.cachedAnswers).toBe(0);
    await resolver.resolve4('cached.test');
    await waitFor(() => asked('cached.test') === 2, 2000, 'a second query after clear()');
    // forget(name): what the transparent claim check calls before asking again.
    resolver.forget('Cached.Test.');
    await resolver.resolve4('cached.test');
    expect(asked('cached.test')).toBe(3);
  });

  it('bounds the cache', async () => {
    const resolver = new SystemResolver({ servers: servers(), hostsFile: false, maxAnswers: 1 });
    await resolver.resolve4('cached.test');
    await resolver.resolve4('short.test');
    expect(resolver.cachedAnswers).toBe(1);
    await resolver.resolve4('cached.test');
    expect(asked('cached.test')).toBe(2);
  });
});
