// Decider benchmark: one decision with 10 rules and with 10,000 rules (exact, wildcard, CIDR mix),
// side by side in one run, medians of several runs. Never a test: figures, not assertions.
import os from 'node:os';
import { createPolicy } from '@egress-guard/policy';

function makePolicy(n) {
  const allow = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 3;
    if (kind === 0) allow.push({ name: `exact-${i}`, hosts: [`api${i}.svc${i % 97}.example.com`] });
    else if (kind === 1) allow.push({ name: `wild-${i}`, hosts: [`*.tenant${i}.example.net`] });
    else
      allow.push({
        name: `cidr-${i}`,
        addresses: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
        schemes: ['https'],
      });
  }
  allow.push({ name: 'target', hosts: ['**.target.example.org'] });
  return createPolicy({ version: 1, allow, deny: [{ name: 'paste', hosts: ['**.pastebin.com'] }] });
}

const destinations = [
  { scheme: 'https', host: 'api3.svc3.example.com', port: 443 },
  { scheme: 'https', host: 'x.tenant4.example.net', port: 443 },
  { scheme: 'https', host: 'a.b.target.example.org', port: 443, address: '93.184.216.34' },
  { scheme: 'https', host: '10.0.5.9', port: 443 },
  { scheme: 'https', host: 'not-listed.example.io', port: 443 },
];

function measure(policy, iterations) {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++)
    sink += policy.decide(destinations[i % destinations.length]).allowed ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  if (sink < 0) console.log(sink);
  return ns;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export function runDeciderBench({ quick = false } = {}) {
  const small = makePolicy(10);
  const large = makePolicy(10_000);
  const iterations = quick ? 20_000 : 300_000;
  const runs = quick ? 3 : 9;
  measure(small, iterations);
  measure(large, iterations); // warm-up
  const s = [];
  const l = [];
  for (let r = 0; r < runs; r++) {
    s.push(measure(small, iterations));
    l.push(measure(large, iterations));
  }
  return { smallNs: median(s), largeNs: median(l), ratio: median(l) / median(s), runs, iterations };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}, Node ${process.version}`);
  const r = runDeciderBench({ quick });
  console.log(`decider, median of ${r.runs} runs x ${r.iterations} decisions:`);
  console.log(`  10 rules:     ${r.smallNs.toFixed(0)} ns/decision`);
  console.log(
    `  10,000 rules: ${r.largeNs.toFixed(0)} ns/decision  (x${r.ratio.toFixed(2)} of 10 rules; target < 1000 ns, flat)`,
  );
}
