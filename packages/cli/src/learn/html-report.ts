import { REASON_DESCRIPTIONS } from '@egress-guard/policy';
import { formatCount, formatTime } from './format.js';
import { escapeHtml as h } from './html-escape.js';
import type { ReportModel } from './report-model.js';
import { decisionsChart, RESULT_COLOURS } from './svg-chart.js';

/** Rows shown per table; the rest are counted. */
export const MAX_ROWS = { destinations: 40, denialsPerService: 10 } as const;

const CSS = `
:root { color-scheme: light; --ink: #1d232b; --muted: #5f6b7a; --line: #dde1e6; --bg: #f6f7f9;
  --allowed: ${RESULT_COLOURS.allowed}; --reported: ${RESULT_COLOURS.reported}; --denied: ${RESULT_COLOURS.denied}; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.tiles { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.tile span { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile.allowed b { color: var(--allowed); } .tile.reported b { color: var(--reported); } .tile.denied b { color: var(--denied); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-size: 11px; fill: var(--muted); }
.chart text.day { font-size: 10px; }
.legend { display: flex; gap: 18px; color: var(--muted); font-size: 12px; margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f4; font-weight: 600; font-size: 12px; color: #3a4350; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.dest { font-family: ui-monospace, "SFMono-Regular", Menlo, "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-all; }
.pill { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; color: #fff; }
.pill.denied { background: var(--denied); } .pill.reported { background: var(--reported); }
.bar { display: flex; height: 8px; min-width: 80px; border-radius: 4px; overflow: hidden; background: #eceff2; }
.bar i { display: block; height: 100%; }
.muted { color: var(--muted); }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
`;

function tile(label: string, value: number, kind = ''): string {
  return `<div class="tile ${kind}"><span>${h(label)}</span><b>${formatCount(value)}</b></div>`;
}

function resultBar(allowed: number, reported: number, denied: number): string {
  const total = Math.max(1, allowed + reported + denied);
  const seg = (n: number, c: string) =>
    n > 0 ? `<i style="width:${((n / total) * 100).toFixed(2)}%;background:var(--${c})"></i>` : '';
  return `<div class="bar" title="${allowed} allowed, ${reported} reported, ${denied} denied">${seg(allowed, 'allowed')}${seg(reported, 'reported')}${seg(denied, 'denied')}</div>`;
}

function describeBucket(ms: number): string {
  const min = ms / 60_000;
  return min < 60 ? `${min} min` : min < 1440 ? `${min / 60} h` : `${min / 1440} d`;
}

/**
 * The report page: one self-contained HTML document (inline CSS and SVG, no script, nothing fetched; a
 * Content-Security-Policy forbids any load), readable at a glance: totals, decisions over time, the top
 * denials per service, the destinations.
 */
export function renderReport(m: ReportModel, options: { title?: string; generated?: number } = {}): string {
  const title = options.title ?? 'egress-guard report';
  const generated = formatTime(options.generated ?? Date.now());
  const span =
    m.first !== undefined ? `${formatTime(m.first)} to ${formatTime(m.last)}` : 'no times in the logs';
  const sources = [...m.sources].map(([s, n]) => `${s} ${formatCount(n)}`).join(', ');
  const policies = [...m.policies].sort((a, b) => b[1] - a[1]);
  const out: string[] = [];
  out.push(
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${h(title)}</title><style>${CSS}</style></head><body><main>`,
    `<h1>${h(title)}</h1>`,
    `<p class="sub">${h(span)} · ${formatCount(m.decisions)} decisions from ${formatCount(m.files.length)} log file${m.files.length === 1 ? '' : 's'} (${h(sources)}) · generated ${h(generated)}</p>`,
    '<div class="tiles">',
    tile('decisions', m.decisions),
    tile('allowed', m.allowed, 'allowed'),
    tile('reported', m.reported, 'reported'),
    tile('denied', m.denied, 'denied'),
    tile('destinations', m.destinations.length),
    tile('services', m.services.length),
    '</div>',
  );

  out.push(
    `<h2>Decisions over time <span class="muted">(per ${describeBucket(m.bucketMs)}, UTC)</span></h2>`,
    '<div class="card">',
  );
  out.push(
    m.timeline.length > 0
      ? decisionsChart(m.timeline, m.bucketMs)
      : '<p class="muted">The logs carry no times.</p>',
  );
  out.push(
    `<div class="legend"><span><i style="background:var(--allowed)"></i>allowed</span><span><i style="background:var(--reported)"></i>reported (would be denied)</span><span><i style="background:var(--denied)"></i>denied</span></div>`,
    '</div>',
  );

  out.push(
    '<h2>Top denials per service <span class="muted">(denied, and reported: what enforcing would deny)</span></h2>',
  );
  if (m.denials.size === 0) out.push('<p class="card">Nothing was denied or reported.</p>');
  for (const [service, rows] of m.denials) {
    const total = rows.reduce((n, r) => n + r.count, 0);
    out.push(
      `<h3>${h(service)} <span class="muted">· ${formatCount(total)} denied or reported, ${formatCount(rows.length)} destination${rows.length === 1 ? '' : 's'}</span></h3>`,
      '<table><thead><tr><th>destination</th><th>reason</th><th class="n">denied</th><th class="n">reported</th><th>last seen</th></tr></thead><tbody>',
    );
    for (const r of rows.slice(0, MAX_ROWS.denialsPerService)) {
      out.push(
        `<tr><td class="dest">${h(r.label)}</td><td title="${h(REASON_DESCRIPTIONS[r.reason] ?? '')}">${h(r.reason)}</td><td class="n">${r.denied ? `<span class="pill denied">${formatCount(r.denied)}</span>` : ''}</td><td class="n">${r.reported ? `<span class="pill reported">${formatCount(r.reported)}</span>` : ''}</td><td class="muted">${h(formatTime(r.last))}</td></tr>`,
      );
    }
    if (rows.length > MAX_ROWS.denialsPerService) {
      out.push(
        `<tr><td colspan="5" class="muted">… ${formatCount(rows.length - MAX_ROWS.denialsPerService)} more</td></tr>`,
      );
    }
    out.push('</tbody></table>');
  }

  out.push(
    '<h2>Destinations</h2>',
    '<table><thead><tr><th>destination</th><th class="n">decisions</th><th>allowed / reported / denied</th><th>services</th><th>rules</th><th>first and last seen</th></tr></thead><tbody>',
  );
  for (const d of m.destinations.slice(0, MAX_ROWS.destinations)) {
    out.push(
      `<tr><td class="dest">${h(d.label)}</td><td class="n">${formatCount(d.total)}</td><td>${resultBar(d.allowed, d.reported, d.denied)}<span class="muted">${formatCount(d.allowed)} / ${formatCount(d.reported)} / ${formatCount(d.denied)}</span></td><td>${h([...d.services].sort().join(', '))}</td><td>${h([...d.rules].sort().join(', ') || '—')}</td><td class="muted">${h(formatTime(d.first))}<br>${h(formatTime(d.last))}</td></tr>`,
    );
  }
  if (m.destinations.length > MAX_ROWS.destinations) {
    out.push(
      `<tr><td colspan="6" class="muted">… ${formatCount(m.destinations.length - MAX_ROWS.destinations)} more destinations</td></tr>`,
    );
  }
  out.push('</tbody></table>');

  out.push(
    '<footer>',
    `Policies seen: ${policies.map(([hash, n]) => `sha256:${h(hash.slice(0, 12))} (${formatCount(n)})`).join(', ') || 'none'}. `,
    m.summaries > 0
      ? `${formatCount(m.summarised)} of the decisions are allowed requests counted in ${formatCount(m.summaries)} summaries (egress.summary). `
      : '',
    `${formatCount(m.otherEvents)} other events (completions, policy and breaker events) and ${formatCount(m.skippedLines)} non-event lines were read and not charted. `,
    'Files: ',
    h(m.files.join(', ')),
    '</footer></main></body></html>',
  );
  return `${out.join('\n')}\n`;
}
