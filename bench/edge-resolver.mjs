// What the edge's own resolver costs per connection, and what caching answers for their TTL saves: the
// same edge (explicit proxy, CONNECT, new TLS connection + small request, as the edge benchmark's
// connections per second) three ways, side by side in one run, runs interleaved:
//   static    the benchmark's static resolver (no DNS at all): the floor
//   cached    the built-in resolver asking a loopback DNS server whose answer has TTL 3600: one query, then
//             the cache (what the edge does now)
//   per-flow  the same server, asked with a fresh c-ares resolver per query, an A and an AAAA per flow:
//             exactly what the edge did before the cache (it ignored the TTL)
// Edge CPU time per connection (/proc, user + system) and connections per second, medians.
import dgram from 'node:dgram';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as dnsPacket from 'dns-packet';
import { NAME } from './edge.mjs';
import { makeCerts } from './lib/certs.mjs';
import { cpuSecondsOf, NOFILE, startNode } from './lib/proc.mjs';
import { median, rotate } from './lib/stats.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));

/** A loopback DNS server (UDP) answering NAME's A with 127.0.0.1 and `ttl`, AAAA with no data. */
async function startDns(ttl) {
  let questions = 0;
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    let q;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    questions++;
    const known = question.name.toLowerCase() === NAME;
    const a = known && question.type === 'A';
    udp.send(
      dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
        questions: [question],
        answers: a ? [{ type: 'A', name: question.name, ttl, data: '127.0.0.1' }] : [],
      }),
      rinfo.port,
      rinfo.address,
    );
  });
  await new Promise((resolve) => udp.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${udp.address().port}`,
    get questions() {
      return questions;
    },
    close: () => new Promise((resolve) => udp.close(resolve)),
  };
}

export function resolverPlan(quick) {
  return quick
    ? { runs: 1, cps: { concurrency: 8, ms: 500, count: 2_000 }, alone: { count: 200, concurrency: 4 } }
    : {
        runs: 5,
        cps: { concurrency: 32, ms: 2_000, count: 100_000 },
        alone: { count: 5_000, concurrency: 8 },
      };
}

/** Runs the resolver benchmark; returns per-candidate medians. */
export async function runResolverBench({ quick = false, workDir, log = console.log } = {}) {
  const plan = resolverPlan(quick);
  mkdirSync(join(workDir, 'certs'), { recursive: true });
  const certs = makeCerts(join(workDir, 'certs'), [NAME]);
  const started = [];
  const dnsCached = await startDns(3600);
  const dnsUncached = await startDns(3600);
  try {
    const upstream = await startNode(here('./edge-upstream.mjs'), {
      args: [certs.certPath, certs.keyPath],
      nofile: NOFILE,
      name: 'upstream',
    });
    started.push(upstream);
    const client = await startNode(here('./edge-client.mjs'), {
      args: [certs.caPath],
      nofile: NOFILE,
      name: 'load generator',
    });
    started.push(client);
    const upstreamPort = upstream.ready.port;
    const edgeWith = async (tag, dnsServer, dnsPerFlow = false) => {
      const e = await startNode(here('./edge-child.mjs'), {
        args: [
          JSON.stringify({
            upstreamPort,
            eventsFile: join(workDir, `edge-events-${tag}.jsonl`),
            dnsServer,
            dnsPerFlow,
          }),
        ],
        nofile: NOFILE,
        name: `edge (${tag})`,
      });
      started.push(e);
      return { id: tag, pid: e.pid, target: { kind: 'connect', port: e.ready.explicitPort, upstreamPort } };
    };
    // The resolution alone: CPU per resolution, cached vs a query per flow, in a process of its own.
    const alone = await startNode(here('./edge-resolver-child.mjs'), {
      args: [dnsUncached.address],
      name: 'resolver alone',
    });
    started.push(alone);
    const resolutions = { cached: [], 'per-flow': [] };
    for (let r = 0; r < plan.runs; r++) {
      for (const mode of rotate(['cached', 'per-flow'], r)) {
        const out = await alone.call('resolve', { mode, name: NAME, ...plan.alone });
        if (out.empty > 0) throw new Error(`${mode}: ${out.empty} resolutions found no address`);
        resolutions[mode].push(out.cpuUs);
        log(`  resolution alone, ${mode.padEnd(8)} run ${r + 1}: ${out.cpuUs.toFixed(1)} µs CPU each`);
      }
    }
    const cands = [
      await edgeWith('static', undefined),
      await edgeWith('cached', dnsCached.address),
      await edgeWith('per-flow', dnsUncached.address, true),
    ];
    const raw = Object.fromEntries(cands.map((c) => [c.id, []]));
    const questionsBefore = { cached: dnsCached.questions, uncached: dnsUncached.questions };
    for (let r = 0; r < plan.runs; r++) {
      for (const c of rotate(cands, r)) {
        const before = cpuSecondsOf(c.pid);
        const out = await client.call('cps', { target: c.target, ...plan.cps });
        const cpuS = cpuSecondsOf(c.pid) - before;
        raw[c.id].push({ ...out, cpuUsPerConnection: (cpuS * 1e6) / out.connections });
        log(
          `  ${c.id.padEnd(9)} run ${r + 1}: ${Math.round(out.cps)} conn/s, edge CPU ${Math.round((cpuS * 1e6) / out.connections)} µs/conn, errors ${out.errors}`,
        );
      }
    }
    const connections = (id) => raw[id].reduce((n, x) => n + x.connections, 0);
    const result = {
      plan,
      candidates: Object.fromEntries(
        cands.map((c) => [
          c.id,
          {
            cps: median(raw[c.id].map((x) => x.cps)),
            cpuUsPerConnection: median(raw[c.id].map((x) => x.cpuUsPerConnection)),
            errors: raw[c.id].reduce((n, x) => n + x.errors, 0),
            connections: connections(c.id),
          },
        ]),
      ),
      dnsQuestions: {
        cached: dnsCached.questions - questionsBefore.cached,
        'per-flow': dnsUncached.questions - questionsBefore.uncached,
      },
    };
    result.alone = {
      cachedUs: median(resolutions.cached),
      perFlowUs: median(resolutions['per-flow']),
    };
    result.alone.ratio = result.alone.perFlowUs / result.alone.cachedUs;
    const c = result.candidates;
    result.cachedVsUncachedCpu = c.cached.cpuUsPerConnection / c['per-flow'].cpuUsPerConnection;
    result.cacheSavesUs = c['per-flow'].cpuUsPerConnection - c.cached.cpuUsPerConnection;
    result.cachedOverStaticUs = c.cached.cpuUsPerConnection - c.static.cpuUsPerConnection;
    return result;
  } finally {
    for (const p of started.reverse()) {
      try {
        await p.stop();
      } catch {
        // already gone
      }
    }
    await dnsCached.close();
    await dnsUncached.close();
  }
}

/** Prints the figures of {@link runResolverBench}. */
export function printResolver(r, log = console.log) {
  log(
    `  resolution alone: cached ${r.alone.cachedUs.toFixed(1)} µs CPU, a query per flow ${r.alone.perFlowUs.toFixed(1)} µs CPU (x${r.alone.ratio.toFixed(1)})`,
  );
  for (const [id, c] of Object.entries(r.candidates)) {
    log(
      `  ${id.padEnd(9)} median ${Math.round(c.cps)} conn/s   edge CPU ${Math.round(c.cpuUsPerConnection)} µs/conn   errors ${c.errors}`,
    );
  }
  log(
    `  DNS questions during the runs: cached ${r.dnsQuestions.cached}, per-flow ${r.dnsQuestions['per-flow']} (${r.candidates['per-flow'].connections} connections)`,
  );
  log(
    `  the cache saves ${Math.round(r.cacheSavesUs)} µs of edge CPU per connection (cached/per-flow x${r.cachedVsUncachedCpu.toFixed(2)}); cached costs ${Math.round(r.cachedOverStaticUs)} µs over the static resolver`,
  );
}
