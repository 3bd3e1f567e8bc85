import { escapeHtml } from './html-escape.js';
import type { Bucket } from './report-model.js';

/** Colours of the three results, shared with the page's legend and tables. */
export const RESULT_COLOURS = { allowed: '#2e7d32', reported: '#ef8f00', denied: '#c62828' } as const;

/** A round step for an axis: 1, 2 or 5 times a power of ten, giving about `ticks` ticks. */
export function niceStep(max: number, ticks = 4): number {
  if (max <= 0) return 1;
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? 10 * power;
  return Math.max(1, step);
}

function timeLabel(t: number, bucketMs: number): string {
  const iso = new Date(t).toISOString();
  // Days for day buckets, hours and minutes otherwise; the date is shown where it changes.
  return bucketMs >= 24 * 3600_000 ? iso.slice(5, 10) : iso.slice(11, 16);
}

/**
 * Decisions over time as stacked bars (allowed at the bottom, then reported, then denied), an inline SVG
 * with axes, gridlines and a title per bar, so it needs no script to read.
 */
export function decisionsChart(buckets: readonly Bucket[], bucketMs: number): string {
  const width = 1100;
  const height = 260;
  const left = 56;
  const right = 12;
  const top = 12;
  const bottom = 44;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(1, ...buckets.map((b) => b.allowed + b.reported + b.denied));
  const step = niceStep(max);
  const yMax = Math.ceil(max / step) * step;
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, Math.min(40, slot * 0.8));
  const parts: string[] = [];
  for (let v = 0; v <= yMax; v += step) {
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e6ea"/>`,
      `<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toLocaleString('en-US')}</text>`,
    );
  }
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 12));
  let lastDay = '';
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let base = 0;
    for (const result of ['allowed', 'reported', 'denied'] as const) {
      const v = b[result];
      if (v === 0) continue;
      const y0 = y(base);
      const y1 = y(base + v);
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y1.toFixed(1)}" width="${barW.toFixed(1)}" height="${Math.max(0.5, y0 - y1).toFixed(1)}" fill="${RESULT_COLOURS[result]}"><title>${escapeHtml(`${new Date(b.start).toISOString()}: ${v} ${result}`)}</title></rect>`,
      );
      base += v;
    }
    if (i % labelEvery === 0) {
      const cx = left + i * slot + slot / 2;
      const day = new Date(b.start).toISOString().slice(0, 10);
      parts.push(
        `<text x="${cx.toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${timeLabel(b.start, bucketMs)}</text>`,
      );
      if (day !== lastDay && bucketMs < 24 * 3600_000) {
        parts.push(
          `<text x="${cx.toFixed(1)}" y="${height - bottom + 32}" text-anchor="middle" class="day">${day}</text>`,
        );
        lastDay = day;
      }
    }
  });
  parts.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#8a9099"/>`,
  );
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="decisions over time" class="chart">${parts.join('')}</svg>`;
}
