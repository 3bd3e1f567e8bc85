import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/index.js';
import { type Logs, writeLogs } from './learn-logs.js';

const exec = promisify(execFile);

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Headless Chromium, kept off the network: the page must render from the file alone. */
function chromium(dir: string, ...args: string[]) {
  return exec(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, 'chromium-profile')}`,
      '--window-size=1280,900',
      ...args,
    ],
    { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
  );
}

let dir: string;
let logs: Logs;
let html: string;
let page: string;
// A destination name an attacker chose, to show everything from the logs is escaped.
const HOSTILE = '<img src=x onerror=alert(1)>.evil.example';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'egress-report-'));
  logs = writeLogs(dir);
  writeFileSync(
    join(dir, 'hostile.jsonl'),
    `${JSON.stringify({
      time: '2026-01-31T09:00:00.000Z',
      'event.name': 'egress.decision',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': '<b>svc</b>',
      'egress.id': 'h-1',
      'egress.decision': 'denied',
      'egress.reason': 'sni_mismatch',
      'egress.mode': 'enforce',
      'egress.policy.hash': 'a'.repeat(64),
      'egress.hook': 'edge.transparent',
      'url.scheme': 'tls',
      'server.address': HOSTILE,
      'server.port': 443,
    })}\n`,
  );
  html = join(dir, 'report.html');
  const r = await run(
    'report',
    logs.sdk,
    logs.edge,
    join(dir, 'hostile.jsonl'),
    '--html',
    html,
    '--title',
    'Payments egress, last 3 hours',
  );
  expect(r.code, r.err).toBe(0);
  expect(r.out).toMatch(
    /report\.html: 361 decisions \(90 allowed, \d+ reported, \d+ denied\), \d+ destinations, 3 services, 2026-01-31T08:00:00Z to 2026-01-31T10:57:00Z/,
  );
  page = readFileSync(html, 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('egress-guard report', () => {
  it('writes one self-contained page: inline CSS and SVG, no script, nothing to fetch', () => {
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(page).not.toMatch(/<(script|link|iframe|img|object|embed|base)\b/i);
    expect(page).not.toMatch(/<[^>]+\s(src|href|action)=/i);
    expect(page).not.toMatch(/url\(|@import/i);
    expect(page).toMatch(/<svg viewBox="0 0 1100 260" role="img"/);
    expect(page).toContain('<style>');
  });

  it('escapes everything that came from the logs', () => {
    expect(page).not.toContain('<img src=x');
    expect(page).not.toContain('<b>svc</b>');
    expect(page).toContain('&#60;img src=x onerror=alert(1)&#62;.evil.example');
    expect(page).toContain('&#60;b&#62;svc&#60;/b&#62;');
  });

  it('renders in headless Chromium with the totals, the chart, the denials per service and the destinations', async () => {
    const { stdout: dom } = await chromium(dir, '--dump-dom', pathToFileURL(html).href);
    const text = dom
      .replace(/<style>[^<]*<\/style>/, '')
      .replace(/<[^>]+>/g, ' ')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&')
      .replace(/\s+/g, ' ');
    expect(text).toContain('Payments egress, last 3 hours');
    expect(text).toMatch(/decisions 361 allowed 90 reported \d+ denied \d+ destinations \d+ services 3/);
    expect(text).toContain('Decisions over time (per 5 min, UTC)');
    expect(text).toContain('Top denials per service');
    for (const service of ['payments', 'search', '<b>svc</b>']) expect(text).toContain(service);
    expect(text).toMatch(/payments · 24\d denied or reported/);
    expect(text).toContain('https://api.stripe.com:443 method_not_allowed');
    expect(text).toMatch(/… \d+ more/);
    expect(text).toContain('https://hooks.slack.com:443 host_not_allowed');
    expect(text).toContain('Destinations');
    expect(text).toMatch(/https:\/\/api\.stripe\.com:443 \d+/);
    expect((dom.match(/<rect /g) ?? []).length).toBeGreaterThan(36);
    // Chromium ran the page with its Content-Security-Policy: the hostile name is text, not an element.
    expect(dom).not.toContain('<img');
  }, 90_000);

  it('makes a screenshot a person can read (checked by eye; here: a real PNG of the full width)', async () => {
    const png = join(dir, 'report.png');
    await chromium(dir, `--screenshot=${png}`, pathToFileURL(html).href);
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.readUInt32BE(16)).toBe(1280);
    expect(bytes.readUInt32BE(20)).toBe(900);
    expect(statSync(png).size).toBeGreaterThan(30_000);
    if (process.env.EGRESS_GUARD_KEEP_SCREENSHOT)
      writeFileSync(process.env.EGRESS_GUARD_KEEP_SCREENSHOT, bytes);
  }, 90_000);

  it('refuses bad input in one line', async () => {
    // Usage errors exit 2.
    expect((await run('report', logs.sdk)).code).toBe(2);
    expect((await run('report', '--html', join(dir, 'x.html'))).code).toBe(2);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n');
    const r = await run('report', empty, '--html', join(dir, 'x.html'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no decision events/);
  });
});
