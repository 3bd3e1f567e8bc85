import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../packages/node/test/fixtures/build.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const env = (extra: Record<string, string>) => ({
  ...process.env,
  EGRESS_GUARD_POLICY: `${here}egress.yaml`,
  EGRESS_GUARD_SERVICE: 'orders',
  ...extra,
});

let partner: http.Server;
let partnerPort = 0;
const seen: string[] = [];

beforeAll(async () => {
  ensureBuilt('policy', 'node');
  partner = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end('{}');
  });
  await new Promise<void>((r) => partner.listen(0, '127.0.0.1', r));
  partnerPort = (partner.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => partner.close(() => r())));

function start(args: string[], extra: Record<string, string>): ChildProcess {
  return spawn(process.execPath, args, { cwd: here, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('examples/service: preloaded with --import', () => {
  it('lets the service reach its partner and webhook, and stops the exfiltration and the IP literal', async () => {
    seen.length = 0;
    const child = start(['--import', '@egress-guard/node/register', 'service.mjs'], {
      PARTNER_URL: `http://localhost:${partnerPort}`,
    });
    let stdout = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let err = '';
        const timer = setTimeout(() => reject(new Error(`service did not start: ${err}`)), 15_000);
        child.stderr!.on('data', (d) => {
          err += d;
          const m = /READY (\d+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
      });
      const body = await (await fetchRaw(`http://127.0.0.1:${port}/order/42`)).json();
      expect(body.map((r: { ok: boolean }) => r.ok)).toEqual([true, true, false, false]);
      expect(body[2]).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'method_not_allowed' });
      expect(body[3]).toMatchObject({ code: 'EGRESS_ERR_DENIED', reason: 'address_not_allowed' });
      expect(seen).toEqual(['GET /partner/orders/42', 'POST /hooks/order']);
      // The events reach this process through a pipe: wait for them (bounded) rather than race them.
      const decisionsOf = () =>
        stdout
          .split('\n')
          .filter((l) => l.includes('"egress.decision"'))
          .map((l) => JSON.parse(l));
      for (let i = 0; i < 50 && decisionsOf().length < 4; i++) await new Promise((r) => setTimeout(r, 100));
      const decisions = decisionsOf();
      expect(decisions.map((d) => d['egress.decision'])).toEqual(['allowed', 'allowed', 'denied', 'denied']);
    } finally {
      child.kill();
    }
  });
});

describe('examples/service: CommonJS with --require', () => {
  it('is guarded the same way', async () => {
    seen.length = 0;
    const child = start(['--require', '@egress-guard/node/register', 'service.cjs'], {
      PARTNER_URL: `http://localhost:${partnerPort}`,
    });
    let stdout = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    const lines = stdout.split('\n').filter((l) => l.startsWith('{"allowed"') || l.startsWith('{"denied"'));
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { allowed: 200 },
      { denied: 'EGRESS_ERR_DENIED', reason: 'path_not_allowed' },
    ]);
    expect(seen).toEqual(['GET /partner/orders/1']);
  });
});

/** A fetch the test makes to the service itself: this test process is not guarded. */
function fetchRaw(url: string) {
  return fetch(url);
}
