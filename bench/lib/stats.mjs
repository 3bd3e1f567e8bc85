// Statistics and formatting shared by the benchmark modules. Every figure the bench reports is a median
// of several runs, and every comparison a ratio of runs measured side by side (paired by run).

/** The median of a list of numbers (the mean of the middle two for an even count); NaN when empty. */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The p-th percentile (0-100) of samples, nearest-rank; works on typed arrays. */
export function percentile(samples, p) {
  const n = samples.length;
  if (n === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return sorted[rank];
}

/** p50 and p99 of latency samples (same unit as the samples). */
export function latencySummary(samples) {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length };
}

/**
 * Median of per-run ratios a[i]/b[i]: runs i of a and b were measured next to each other (A B A B ...),
 * so pairing them cancels the slow drift of a shared machine better than a ratio of medians.
 */
export function pairedRatio(a, b) {
  const n = Math.min(a.length, b.length);
  const r = [];
  for (let i = 0; i < n; i++)
    if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] !== 0) r.push(a[i] / b[i]);
  return median(r);
}

/** Median of per-run differences a[i]-b[i] (paired like {@link pairedRatio}). */
export function pairedDiff(a, b) {
  const n = Math.min(a.length, b.length);
  const r = [];
  for (let i = 0; i < n; i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) r.push(a[i] - b[i]);
  return median(r);
}

/** Rotates a list by `k` so that, over runs, each candidate takes each place in the order. */
export function rotate(list, k) {
  const n = list.length;
  if (n === 0) return [];
  const s = ((k % n) + n) % n;
  return [...list.slice(s), ...list.slice(0, s)];
}

export const fmt = {
  int: (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a'),
  ratio: (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a'),
  x: (x) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a'),
  ms: (x, d = 3) => (Number.isFinite(x) ? `${x.toFixed(d)} ms` : 'n/a'),
  us: (x) => (Number.isFinite(x) ? `${Math.round(x)} µs` : 'n/a'),
  mb: (bytes) => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(1)} MB` : 'n/a'),
  mbps: (bytesPerSec) =>
    Number.isFinite(bytesPerSec) ? `${(bytesPerSec / 2 ** 20).toFixed(0)} MiB/s` : 'n/a',
  pct: (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%` : 'n/a'),
};

/** A markdown table from a header row and rows of cells. */
export function mdTable(header, rows) {
  const line = (cells) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
