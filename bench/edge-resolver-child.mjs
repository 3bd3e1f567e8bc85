// The edge's name resolution alone, in its own process: the ResolverCache every flow goes through, over
// the built-in resolver (hosts file off, answers cached for their TTL) or over a fresh c-ares resolver per
// query (the edge before the cache), asking the DNS server at argv[2]. `resolve` runs `count` resolutions
// of one name, `concurrency` at a time, and returns this process's CPU time per resolution (user + system).
import dns from 'node:dns';
import { ResolverCache, SystemResolver } from '@egress-guard/edge';
import { serve } from './lib/rpc.mjs';

const server = process.argv[2];
const perFlow = (method) => (name, options) => {
  const resolver = new dns.promises.Resolver({ timeout: 2500, tries: 2 });
  resolver.setServers([server]);
  return resolver[method](name, options);
};
const caches = {
  cached: new ResolverCache({ resolver: new SystemResolver({ servers: [server], hostsFile: false }) }),
  'per-flow': new ResolverCache({
    resolver: { resolve4: perFlow('resolve4'), resolve6: perFlow('resolve6') },
  }),
};

serve({
  async resolve({ mode, name, count, concurrency }) {
    const cache = caches[mode];
    let left = count;
    let empty = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left-- > 0) if ((await cache.resolve(name)).length === 0) empty++;
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    return { cpuUs: (cpu.user + cpu.system) / count, wallMs: performance.now() - t0, empty };
  },
});
