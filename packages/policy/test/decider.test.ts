import { describe, expect, it } from 'vitest';
import { createPolicy, type Destination, type ReasonCode } from '../src/index.js';

const policy = createPolicy({
  version: 1,
  defaults: { timeouts: { connect: '2s' } },
  allow: [
    {
      name: 'stripe',
      hosts: ['api.stripe.com'],
      methods: ['GET', 'POST'],
      paths: ['/v1/**'],
      tls: { minVersion: 'TLSv1.3' },
      timeouts: { total: '20s' },
      breaker: false,
    },
    { name: 's3', hosts: ['*.s3.eu-west-1.amazonaws.com'] },
    { name: 'api-glob', hosts: ['api-*.example.com'] },
    { name: 'deep', hosts: ['**.corp.example.net'] },
    { name: 'idn', hosts: ['bücher.example'] },
    { name: 'metadata', addresses: ['169.254.169.254/32'], schemes: ['http'], ports: [80] },
    { name: 'range', hosts: ['ports.example.com'], schemes: ['https', 'http'], ports: [443, '8000-8099'] },
    { name: 'internal-ok', hosts: ['intranet.example.com'], privateAddresses: 'allow' },
    { name: 'db', hosts: ['db.example.com'], schemes: ['tcp'], ports: [5432] },
    { name: 'v6', addresses: ['2001:db8::/32'], schemes: ['https'] },
    { name: 'paste-allow', hosts: ['pastebin.com'] },
    { name: 'meta-name', hosts: ['metadata.example.com'], schemes: ['http'], ports: [80] },
    { name: 'second-stripe', hosts: ['api.stripe.com'], methods: ['DELETE'] },
  ],
  deny: [
    { name: 'paste', hosts: ['**.pastebin.com', 'pastebin.com'] },
    { name: 'doc-net', addresses: ['192.0.2.0/24'] },
    { name: 'no-deletes', hosts: ['api.stripe.com'], methods: ['DELETE'], paths: ['/v1/customers/**'] },
  ],
});

type Row = [string, Partial<Destination>, ReasonCode, string | undefined];
const https = (host: string, extra: Partial<Destination> = {}): Partial<Destination> => ({
  scheme: 'https',
  host,
  port: 443,
  ...extra,
});

const rows: Row[] = [
  // exact names, normalisation
  ['exact name', https('api.stripe.com', { method: 'GET', path: '/v1/charges' }), 'allowed', 'stripe'],
  ['upper case', https('API.Stripe.COM', { method: 'get', path: '/v1/x' }), 'allowed', 'stripe'],
  ['trailing dot', https('api.stripe.com.', { method: 'GET', path: '/v1/x' }), 'allowed', 'stripe'],
  ['two trailing dots are invalid', https('api.stripe.com..'), 'invalid_destination', undefined],
  ['suffix trick', https('api.stripe.com.evil.io'), 'host_not_allowed', undefined],
  ['prefix trick', https('evilapi.stripe.com'), 'host_not_allowed', undefined],
  ['lookalike (dot replaced)', https('apiXstripe.com'), 'host_not_allowed', undefined],
  ['IDN in A-label form', https('xn--bcher-kva.example'), 'allowed', 'idn'],
  ['IDN in U-label form', https('bücher.example'), 'allowed', 'idn'],
  ['IDN homograph (Cyrillic a)', https('api.strаpe.com'), 'host_not_allowed', undefined],
  [
    'fullwidth letters map to ASCII (as the URL parser does)',
    https('ａｐｉ.stripe.com', { method: 'GET', path: '/v1/' }),
    'allowed',
    'stripe',
  ],
  ['percent escape in a name', https('api.str%69pe.com'), 'invalid_destination', undefined],
  ['user@host is not a name', https('user@api.stripe.com'), 'invalid_destination', undefined],
  ['backslash is not a name', https('api.stripe.com\\@evil.io'), 'invalid_destination', undefined],
  ['empty label', https('api..stripe.com'), 'invalid_destination', undefined],
  ['label over 63', https(`${'a'.repeat(64)}.example.com`), 'invalid_destination', undefined],
  // wildcard depth and apex
  ['one label wildcard', https('bucket.s3.eu-west-1.amazonaws.com'), 'allowed', 's3'],
  [
    'one label wildcard: apex does not match',
    https('s3.eu-west-1.amazonaws.com'),
    'host_not_allowed',
    undefined,
  ],
  [
    'one label wildcard: two labels do not match',
    https('a.b.s3.eu-west-1.amazonaws.com'),
    'host_not_allowed',
    undefined,
  ],
  ['partial label glob', https('api-eu.example.com'), 'allowed', 'api-glob'],
  ['partial label glob: other prefix', https('www-eu.example.com'), 'host_not_allowed', undefined],
  ['partial label glob: two labels', https('api-x.y.example.com'), 'host_not_allowed', undefined],
  ['double star: one label', https('a.corp.example.net'), 'allowed', 'deep'],
  ['double star: many labels', https('a.b.c.corp.example.net'), 'allowed', 'deep'],
  ['double star: apex does not match', https('corp.example.net'), 'host_not_allowed', undefined],
  // dimensions
  [
    'method not allowed',
    https('api.stripe.com', { method: 'PUT', path: '/v1/x' }),
    'method_not_allowed',
    'stripe',
  ],
  [
    'path not allowed',
    https('api.stripe.com', { method: 'GET', path: '/v2/x' }),
    'path_not_allowed',
    'stripe',
  ],
  [
    'encoded dot-segment never matches an allow path',
    https('api.stripe.com', { method: 'GET', path: '/v1/%2e%2e/admin' }),
    'path_not_allowed',
    'stripe',
  ],
  [
    'second rule with the same host applies when the first fails',
    https('api.stripe.com', { method: 'DELETE', path: '/x' }),
    'allowed',
    'second-stripe',
  ],
  [
    'scheme not allowed',
    { scheme: 'http', host: 'bucket.s3.eu-west-1.amazonaws.com', port: 80 },
    'scheme_not_allowed',
    's3',
  ],
  ['default port only', https('bucket.s3.eu-west-1.amazonaws.com', { port: 8443 }), 'port_not_allowed', 's3'],
  ['port range low', https('ports.example.com', { port: 8000 }), 'allowed', 'range'],
  ['port range high', https('ports.example.com', { port: 8099 }), 'allowed', 'range'],
  ['port range outside', https('ports.example.com', { port: 8100 }), 'port_not_allowed', 'range'],
  ['tcp with listed port', { scheme: 'tcp', host: 'db.example.com', port: 5432 }, 'allowed', 'db'],
  ['tls is not https', { scheme: 'tls', host: 'api.stripe.com', port: 443 }, 'scheme_not_allowed', 'stripe'],
  // deny wins
  ['deny wins over allow', https('pastebin.com'), 'explicit_deny', 'paste'],
  ['deny double star', https('x.y.pastebin.com'), 'explicit_deny', 'paste'],
  [
    'deny rule with methods and paths matches the request',
    https('api.stripe.com', { method: 'DELETE', path: '/v1/customers/1' }),
    'explicit_deny',
    'no-deletes',
  ],
  [
    'deny rule with methods and paths: other paths unaffected',
    https('api.stripe.com', { method: 'DELETE', path: '/v1/other' }),
    'allowed',
    'second-stripe',
  ],
  [
    'deny rule with methods and paths cannot match a connection (no method, no path)',
    https('api.stripe.com'),
    'allowed',
    'stripe',
  ],
  ['deny by CIDR covers IPv4 in a NAT64 literal', https('[64:ff9b::c000:20a]'), 'explicit_deny', 'doc-net'],
  ['deny by CIDR covers IPv4 in a 6to4 literal', https('[2002:c000:20a::1]'), 'explicit_deny', 'doc-net'],
  [
    'deny by CIDR covers the Teredo client (stored inverted)',
    https('[2001:0:4136:e378:8000:63bf:3fff:fdf5]'),
    'explicit_deny',
    'doc-net',
  ],
  // IP literals: addresses rules only
  [
    'IP literal allowed by CIDR',
    { scheme: 'http', host: '169.254.169.254', port: 80 },
    'allowed',
    'metadata',
  ],
  [
    'IP literal, other spelling',
    { scheme: 'http', host: '0xa9.0xfe.0xa9.0xfe', port: 80 },
    'allowed',
    'metadata',
  ],
  ['IP literal decimal spelling', { scheme: 'http', host: '2852039166', port: 80 }, 'allowed', 'metadata'],
  [
    'IP literal mapped in IPv6',
    { scheme: 'http', host: '[::ffff:169.254.169.254]', port: 80 },
    'allowed',
    'metadata',
  ],
  ['IP literal not listed', https('127.1'), 'address_not_allowed', undefined],
  ['IP literal 0', https('0'), 'address_not_allowed', undefined],
  ['IPv6 literal in range', https('[2001:db8::1]'), 'allowed', 'v6'],
  ['IPv6 literal out of range', https('[2001:db9::1]'), 'address_not_allowed', undefined],
  ['numeric last label that is not an IP', https('1.2.3.4.5'), 'invalid_destination', undefined],
  ['256 in a part', https('256.1.1.1'), 'invalid_destination', undefined],
  // the dialled address
  [
    'public dialled address',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '52.95.1.1' }),
    'allowed',
    's3',
  ],
  [
    'name resolving to loopback',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '127.0.0.1' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to RFC 1918',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '10.1.2.3' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to metadata',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '169.254.169.254' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to mapped loopback',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '::ffff:127.0.0.1' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to NAT64',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '64:ff9b::7f00:1' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to 6to4',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '2002:7f00:1::1' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to unspecified',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '0.0.0.0' }),
    'private_address',
    's3',
  ],
  [
    'name resolving to ::',
    https('bucket.s3.eu-west-1.amazonaws.com', { address: '::' }),
    'private_address',
    's3',
  ],
  [
    'privateAddresses: allow on the rule',
    https('intranet.example.com', { address: '10.0.0.5' }),
    'allowed',
    'internal-ok',
  ],
  [
    'special address covered by an addresses rule',
    { scheme: 'http', host: 'metadata.example.com', port: 80, address: '169.254.169.254' },
    'allowed',
    'meta-name',
  ],
  [
    'special address not covered',
    { scheme: 'http', host: 'metadata.example.com', port: 80, address: '169.254.169.253' },
    'private_address',
    'meta-name',
  ],
  [
    'an addresses rule does not allow a name that no host rule lists',
    { scheme: 'http', host: 'other.example.com', port: 80, address: '169.254.169.254' },
    'host_not_allowed',
    undefined,
  ],
  [
    'deny by CIDR applies to the dialled address of a name',
    https('intranet.example.com', { address: '192.0.2.10' }),
    'explicit_deny',
    'doc-net',
  ],
  [
    'literal and dialled must agree',
    https('2001:db8::1', { address: '2001:db8::2' }),
    'invalid_destination',
    undefined,
  ],
  // invalid
  ['port 0', https('api.stripe.com', { port: 0 }), 'invalid_destination', undefined],
  [
    'unknown scheme',
    { scheme: 'ftp' as never, host: 'api.stripe.com', port: 21 },
    'invalid_destination',
    undefined,
  ],
];

describe('decider: policy.md semantics', () => {
  it.each(rows)('%s', (_label, dest, reason, rule) => {
    const d = policy.decide(dest as Destination);
    expect(d.reason).toBe(reason);
    expect(d.rule).toBe(rule);
    expect(d.allowed).toBe(reason === 'allowed');
    expect(d.result).toBe(reason === 'allowed' ? 'allowed' : 'denied');
    expect(d.policyHash).toBe(policy.hash);
  });

  it('applies the first matching rule’s settings, and defaults elsewhere', () => {
    const d = policy.decide({
      scheme: 'https',
      host: 'api.stripe.com',
      port: 443,
      method: 'GET',
      path: '/v1/x',
    });
    expect(d.tls).toEqual({ minVersion: 'TLSv1.3', verify: true });
    expect(d.timeouts).toEqual({ connect: 2000, response: 30_000, idle: 30_000, total: 20_000 });
    expect(d.breaker).toBe(false);
    const other = policy.decide({ scheme: 'https', host: 'bucket.s3.eu-west-1.amazonaws.com', port: 443 });
    expect(other.tls.minVersion).toBe('TLSv1.2');
    expect(other.breaker).toEqual({
      errorThresholdPercentage: 50,
      volumeThreshold: 20,
      resetTimeout: 30_000,
      rollingWindow: 10_000,
    });
  });

  it('tells the user how to allow what was denied', () => {
    expect(policy.decide({ scheme: 'https', host: 'new.example.org', port: 443 }).message).toMatch(
      /add a rule with hosts: \[new\.example\.org\]/,
    );
    expect(
      policy.decide({ scheme: 'https', host: 'api.stripe.com', port: 443, method: 'PUT' }).message,
    ).toMatch(/add PUT to its methods/);
    expect(policy.decide({ scheme: 'https', host: '127.1', port: 443 }).message).toMatch(
      /addresses: \[127\.0\.0\.1\/32\]/,
    );
    const priv = policy.decide({
      scheme: 'https',
      host: 'x.s3.eu-west-1.amazonaws.com',
      port: 443,
      address: '10.0.0.1',
    });
    expect(priv.message).toMatch(/privateAddresses: allow on rule "s3"/);
  });

  it('matches path and method only where the hook sees them (the edge sees none for TLS)', () => {
    expect(policy.decide({ scheme: 'https', host: 'api.stripe.com', port: 443 }).reason).toBe('allowed');
  });
});

describe('services and modes', () => {
  const doc = {
    version: 1,
    allow: [{ name: 'shared', hosts: ['shared.example.com'] }],
    services: {
      payments: { sources: ['10.0.1.0/24'], allow: [{ name: 'bank', hosts: ['bank.example.com'] }] },
      batch: { sources: ['10.0.1.7/32'], mode: 'report', reportUntil: '2027-01-31' },
    },
  };
  const p = createPolicy(doc);

  it('adds a service’s rules to the top-level rules', () => {
    expect(
      p.decide({ scheme: 'https', host: 'bank.example.com', port: 443, service: 'payments' }).reason,
    ).toBe('allowed');
    expect(
      p.decide({ scheme: 'https', host: 'shared.example.com', port: 443, service: 'payments' }).reason,
    ).toBe('allowed');
    expect(p.decide({ scheme: 'https', host: 'bank.example.com', port: 443 }).reason).toBe(
      'host_not_allowed',
    );
    expect(p.decide({ scheme: 'https', host: 'bank.example.com', port: 443, service: 'batch' }).reason).toBe(
      'host_not_allowed',
    );
  });

  it('report mode lets a would-deny through and records why, until reportUntil', () => {
    const before = Date.parse('2027-01-30T23:59:59Z');
    const after = Date.parse('2027-01-31T00:00:00Z');
    const r = p.decide({ scheme: 'https', host: 'evil.example', port: 443, service: 'batch' }, before);
    expect(r).toMatchObject({
      result: 'reported',
      allowed: true,
      reason: 'host_not_allowed',
      mode: 'report',
    });
    expect(r.message).toMatch(/report mode/);
    const e = p.decide({ scheme: 'https', host: 'evil.example', port: 443, service: 'batch' }, after);
    expect(e).toMatchObject({ result: 'denied', allowed: false, mode: 'enforce' });
    expect(p.modeAt(before, 'batch')).toBe('report');
    expect(p.modeAt(after, 'batch')).toBe('enforce');
  });

  it('maps a source address to the most specific service', () => {
    expect(p.serviceForAddress('10.0.1.5')).toBe('payments');
    expect(p.serviceForAddress('10.0.1.7')).toBe('batch');
    expect(p.serviceForAddress('10.0.2.1')).toBeUndefined();
  });
});

describe('policy hash', () => {
  it('is the same for equivalent policies and differs when a rule changes', () => {
    const a = createPolicy({
      version: 1,
      allow: [{ name: 'a', hosts: ['API.example.com.'] }],
      defaults: { timeouts: { connect: '5s' } },
    });
    const b = createPolicy({
      version: 1,
      allow: [{ name: 'a', hosts: ['api.example.com'] }],
      defaults: { timeouts: { connect: 5000 } },
    });
    const c = createPolicy({ version: 1, allow: [{ name: 'a', hosts: ['api.example.com'], ports: [8443] }] });
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hash).toBe(b.hash);
    expect(c.hash).not.toBe(a.hash);
  });
});

describe('raw connections carry what a deny rule forbids', () => {
  const policy = createPolicy({
    version: 1,
    allow: [{ name: 'raw', hosts: ['x.example.com'], schemes: ['tls', 'tcp'], ports: [443, 80] }],
    deny: [
      { name: 'no-https', hosts: ['x.example.com'], schemes: ['https'] },
      { name: 'no-ws', hosts: ['x.example.com'], schemes: ['ws'] },
    ],
  });
  it('a tls connection is held by a deny rule for https or wss', () => {
    expect(policy.decide({ scheme: 'tls', host: 'x.example.com', port: 443 })).toMatchObject({
      result: 'denied',
      reason: 'explicit_deny',
      rule: 'no-https',
    });
  });
  it('a tcp connection is held by a deny rule for http or ws', () => {
    expect(policy.decide({ scheme: 'tcp', host: 'x.example.com', port: 80 })).toMatchObject({
      result: 'denied',
      rule: 'no-ws',
    });
  });
  it('a deny rule for https does not hold an https request decided with its scheme', () => {
    const allowHttps = createPolicy({
      version: 1,
      allow: [{ name: 'api', hosts: ['x.example.com'] }],
      deny: [{ name: 'no-raw', hosts: ['x.example.com'], schemes: ['tls'] }],
    });
    expect(allowHttps.decide({ scheme: 'https', host: 'x.example.com', port: 443 }).result).toBe('allowed');
  });
});
