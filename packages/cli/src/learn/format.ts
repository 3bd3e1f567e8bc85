/** 1234567 → "1,234,567": counts people read. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Epoch ms → `2026-01-31T10:00:00Z` (seconds are enough for a person; undefined → "?"). */
export function formatTime(t: number | undefined): string {
  return t === undefined ? '?' : `${new Date(t).toISOString().slice(0, 19)}Z`;
}

/** "1 decision", "2 decisions". */
export function plural(n: number, word: string): string {
  return `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;
}

/** `scheme://host:port` for a destination, with IPv6 literals in brackets. */
export function destinationLabel(scheme: string, host: string, port: number): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
