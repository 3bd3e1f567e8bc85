const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * Parses a policy duration: `250ms`, `5s`, `2m`, `1h`, or a number of milliseconds.
 * Returns undefined for anything else (the schema turns that into a positioned error).
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (UNITS[m[2]!] ?? Number.NaN);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** Formats milliseconds the way a person writes them in a policy (`30s`, `2m`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
