/**
 * Audit logs for the learn, diff and report tests, written by the real SDK guard (`guard.check()`, the
 * call every SDK hook makes) and the real emitter, as a service in report mode would write them over
 * three hours; plus edge decisions shaped as the edge's flow record writes them.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGuard } from '@egress-guard/node';
import { createEventEmitter, type Decision, type DecisionEvent, parsePolicy } from '@egress-guard/policy';
import pino from 'pino';

/** The policy in force while the logs were written: report mode, so every would-deny is logged. */
export const POLICY_IN_FORCE = `version: 1
mode: report
allow:
  - name: stripe
    hosts: [api.stripe.com]
    methods: [POST]
    paths: ["/v1/**"]
deny:
  - name: paste-sites
    hosts: [pastebin.com]
services:
  payments:
    sources: [10.0.1.0/24]
  search: {}
`;

/** Sibling shards: enough (6) to become one wildcard at the default threshold of 5. */
export const SHARDS = ['s1', 's2', 's3', 's4', 's5', 's6'].map((b) => `${b}.api.example.net`);
/** S3 buckets: their parent is a private-section public suffix (any customer's bucket): never a wildcard. */
export const BUCKETS = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6'].map((b) => `${b}.s3.eu-west-1.amazonaws.com`);
/** Siblings under a private-section public suffix: never a wildcard. */
export const PAGES = ['alpha', 'beta', 'gamma', 'delta', 'eps', 'zeta'].map((p) => `${p}.github.io`);
/** Siblings under an ICANN public suffix: never a wildcard. */
export const COUK = ['one', 'two', 'three', 'four', 'five', 'six'].map((p) => `${p}.co.uk`);
/** Three siblings: below the default threshold. */
export const FEW = ['x1', 'x2', 'x3'].map((p) => `${p}.example.org`);

export const T0 = Date.parse('2026-01-31T08:00:00Z');

export interface Logs {
  dir: string;
  policyFile: string;
  sdk: string;
  edge: string;
  /** Every decision written, for counting. */
  decisions: number;
}

/** Writes the logs into `dir`: `sdk.jsonl`, `edge.jsonl` (with non-event lines), `policy.yaml`. */
export function writeLogs(dir: string): Logs {
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY_IN_FORCE);
  const policy = parsePolicy(POLICY_IN_FORCE, { file: policyFile });
  let now = T0;
  const sdk = join(dir, 'sdk.jsonl');
  // An application line before the events: learn must skip it.
  writeFileSync(sdk, 'server listening on :8080\n');
  const destination = pino.destination({ dest: sdk, sync: true, append: true });
  const realNow = Date.now;
  // pino stamps lines with Date.now(): pin it to the simulated clock while writing.
  Date.now = () => now;
  let decisions = 0;
  try {
    const payments = createGuard({ policy, service: 'payments', destination, watch: false, now: () => now });
    const search = createGuard({ policy, service: 'search', destination, watch: false, now: () => now });
    const get = (guard: typeof payments, url: string, method = 'GET') => {
      const u = new URL(url);
      const scheme = u.protocol.slice(0, -1) as 'https' | 'http';
      const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
      guard.check({ scheme, host: u.hostname, port, method, path: u.pathname }, 'fetch', { url });
      decisions++;
    };
    for (let minute = 0; minute < 180; minute += 3) {
      now = T0 + minute * 60_000;
      get(payments, 'https://api.stripe.com/v1/charges', 'POST');
      if (minute % 9 === 0) get(payments, `https://api.stripe.com/v1/customers/cus_${minute}?expand=x`);
      get(payments, `https://${SHARDS[(minute / 3) % SHARDS.length]}/objects/${minute}`);
      if (minute % 30 === 0) {
        for (const host of [...BUCKETS, ...PAGES, ...COUK, ...FEW]) get(payments, `https://${host}/`);
        get(payments, 'https://pastebin.com/api/api_post.php', 'POST');
        payments.check({ scheme: 'tcp', host: 'db.internal.example', port: 5432 }, 'net');
        payments.check(
          { scheme: 'http', host: '203.0.113.10', port: 8080, method: 'GET', path: '/metrics' },
          'http',
        );
        payments.check({ scheme: 'tcp', host: 'telemetry.vendor.example', port: 53 }, 'dns');
        decisions += 3;
      }
      if (minute >= 120) get(search, `https://api.search.example/v2/q/${minute}`);
      if (minute >= 150) get(search, 'https://exfil.example/upload', 'PUT');
    }
  } finally {
    Date.now = realNow;
  }

  // The edge: TLS flows from the payments subnet, decided for the https reading (no method, no path).
  // Half-way it switches to enforce mode (a new policy hash): its later would-denies are denials.
  const enforced = parsePolicy(POLICY_IN_FORCE.replace('mode: report', 'mode: enforce'), {
    file: policyFile,
  });
  const edge = join(dir, 'edge.jsonl');
  writeFileSync(edge, '');
  const edgeLines: string[] = [
    '{"level":30,"msg":"edge listening","listener":"explicit"}',
    'not json at all }{',
  ];
  const sink = { write: (line: string) => edgeLines.push(line.trimEnd()) };
  const events = createEventEmitter({ destination: sink });
  const flow = (i: number, host: string, client: string, minute: number) => {
    const d: Decision = (minute >= 80 ? enforced : policy).decide(
      { scheme: 'https', host, port: 443, service: 'payments' },
      T0 + minute * 60_000,
    );
    const event: DecisionEvent = {
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': 'payments',
      'egress.id': `edge-${i}`,
      'egress.decision': d.result,
      'egress.reason': d.reason,
      'egress.rule': d.rule,
      'egress.mode': d.mode,
      'egress.policy.hash': d.policyHash,
      'egress.hook': 'edge.explicit',
      'url.scheme': d.scheme,
      'server.address': d.host,
      'server.port': d.port,
      'client.address': client,
      'tls.client.server_name': host,
    };
    if (d.result !== 'allowed') event['egress.message'] = d.message;
    now = T0 + minute * 60_000;
    Date.now = () => now;
    try {
      events.emit(event);
    } finally {
      Date.now = realNow;
    }
    decisions++;
  };
  for (let i = 0; i < 40; i++)
    flow(i, i % 4 === 0 ? 'hooks.slack.com' : 'api.stripe.com', `10.0.1.${5 + (i % 2)}`, i * 4);
  // A syslog receiver's line: a header before the JSON.
  const last = edgeLines.pop()!;
  edgeLines.push(`<132>1 2026-01-31T10:36:00Z edge-1 egress-guard 77 - - ${last}`);
  appendFileSync(edge, `${edgeLines.join('\n')}\n`);
  return { dir, policyFile, sdk, edge, decisions };
}
