/**
 * The AWS SDK v3 S3 client, unchanged, under install(): its NodeHttpHandler sends each call with the
 * (patched) `https.request` through its own keep-alive agent, so each call is decided with its method and
 * path. Pointed at a local HTTPS server (`https://s3.example.test:PORT`, path-style) with fake static
 * credentials; a denied endpoint fails with the EgressError itself (the SDK rethrows the request's error)
 * and the SDK's retries never reach the server.
 */
import https from 'node:https';
import { GetObjectCommand, ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../src/index.js';
import {
  createTestPki,
  type EventSink,
  eventSink,
  expectEgress,
  failureOf,
  type HttpHandler,
  lookupVia,
  loopbackRule,
  policyOf,
  type RecordingServer,
  startDnsServer,
  startHttpsServer,
  type TestDnsServer,
  type TestPki,
} from '../threats/kit.js';

const NAMES = ['s3.example.test', 'evil-s3.example.test'];

let pki: TestPki;
let dns: TestDnsServer;
let s3: RecordingServer;
let evil: RecordingServer;
let sink: EventSink;
const clients: S3Client[] = [];

const LIST_BUCKETS = `<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>owner</ID><DisplayName>owner</DisplayName></Owner><Buckets><Bucket><Name>reports</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>`;

/** Just enough of S3 for ListBuckets, GetObject and PutObject to succeed. */
const s3Handler: HttpHandler = (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'application/xml', 'x-amz-request-id': 'test' });
    res.end(LIST_BUCKETS);
  } else if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11', etag: '"x"' });
    res.end('object-body');
  } else if (req.method === 'PUT') {
    res.writeHead(200, { etag: '"x"', 'content-length': '0' });
    res.end();
  } else {
    res.writeHead(405, { 'content-length': '0' });
    res.end();
  }
};

function installGuard(paths: string[] = ['/', '/reports/**']) {
  sink = eventSink();
  install({
    policy: policyOf({
      allow: [
        loopbackRule('object-storage', ['s3.example.test'], {
          schemes: ['https'],
          methods: ['GET', 'PUT'],
          paths,
        }),
      ],
    }),
    lookup: lookupVia(dns),
    ca: pki.caCertPem,
    destination: sink,
  });
}

function s3Client(host: string, port: number, maxAttempts = 1): S3Client {
  const client = new S3Client({
    endpoint: `https://${host}:${port}`,
    forcePathStyle: true,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    maxAttempts,
    requestHandler: { httpsAgent: new https.Agent({ ca: pki.caCertPem, keepAlive: true }) },
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  pki = await createTestPki();
  dns = await startDnsServer(Object.fromEntries(NAMES.map((n) => [n, [{ type: 'A', data: '127.0.0.1' }]])));
  s3 = await startHttpsServer({ pki, names: [...NAMES, 'localhost'], handler: s3Handler });
  evil = await startHttpsServer({ pki, names: [...NAMES, 'localhost'], handler: s3Handler });
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await uninstall();
  for (const s of [s3, evil]) s.reset();
  dns.reset();
});

afterAll(async () => {
  await Promise.all([s3, evil].map((s) => s.close()));
  await dns.close();
  await pki.cleanup();
});

describe('AWS SDK v3 S3 client: allowed', () => {
  it('ListBuckets reaches the server (GET /) and parses the answer', async () => {
    installGuard();
    const out = await s3Client('s3.example.test', s3.port).send(new ListBucketsCommand({}));
    expect(out.Buckets?.map((b) => b.Name)).toEqual(['reports']);
    expect(s3.requests.map((r) => [r.method, r.url.split('?')[0]])).toEqual([['GET', '/']]);
    expect(s3.requests[0]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\//);
    expect(sink.decisions()[0]).toMatchObject({
      'egress.decision': 'allowed',
      'egress.rule': 'object-storage',
      'egress.hook': 'https',
      'http.request.method': 'GET',
      'url.path': '/',
    });
  });

  it('GetObject and PutObject: each call decided with its method and path', async () => {
    installGuard();
    const client = s3Client('s3.example.test', s3.port);
    const got = await client.send(new GetObjectCommand({ Bucket: 'reports', Key: 'q1.csv' }));
    expect(await got.Body?.transformToString()).toBe('object-body');
    await client.send(new PutObjectCommand({ Bucket: 'reports', Key: 'q2.csv', Body: 'a,b\n' }));
    expect(s3.requests.map((r) => [r.method, r.url.split('?')[0]])).toEqual([
      ['GET', '/reports/q1.csv'],
      ['PUT', '/reports/q2.csv'],
    ]);
    expect(
      sink.decisions().map((e) => [e['http.request.method'], e['url.path'], e['egress.decision']]),
    ).toEqual([
      ['GET', '/reports/q1.csv', 'allowed'],
      ['PUT', '/reports/q2.csv', 'allowed'],
    ]);
  });
});

describe('AWS SDK v3 S3 client: denied, and the server sees nothing', () => {
  it('an endpoint no rule lists: the SDK rejects with the EgressError; zero connections', async () => {
    installGuard();
    const error = await failureOf(
      s3Client('evil-s3.example.test', evil.port).send(new ListBucketsCommand({})),
    );
    expectEgress(error, {
      code: 'EGRESS_ERR_DENIED',
      reason: 'host_not_allowed',
      host: 'evil-s3.example.test',
    });
    expect(evil.connections).toBe(0);
  });

  it("a bucket outside the rule's paths: path_not_allowed, the object is never requested", async () => {
    installGuard();
    const error = await failureOf(
      s3Client('s3.example.test', s3.port).send(new GetObjectCommand({ Bucket: 'secrets', Key: 'keys.txt' })),
    );
    expectEgress(error, { reason: 'path_not_allowed', rule: 'object-storage' });
    expect(s3.connections).toBe(0);
  });

  it("with the SDK's retries on (3 attempts): a denial is never retried into a connection", async () => {
    installGuard();
    const error = await failureOf(
      s3Client('evil-s3.example.test', evil.port, 3).send(new ListBucketsCommand({})),
    );
    expectEgress(error, { reason: 'host_not_allowed' });
    expect(evil.connections).toBe(0);
    expect(sink.decisions().every((e) => e['egress.decision'] === 'denied')).toBe(true);
  });
});
