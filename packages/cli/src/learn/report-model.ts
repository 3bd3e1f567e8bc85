import type { ReasonCode } from '@egress-guard/policy';
import { destinationLabel } from './format.js';
import { isLookup, type LoggedDecision } from './read-events.js';

/** Counts by result. */
export interface ResultCounts {
  allowed: number;
  denied: number;
  reported: number;
}

/** One destination row of the report. */
export interface DestinationRow extends ResultCounts {
  label: string;
  total: number;
  services: Set<string>;
  rules: Set<string>;
  sources: Set<string>;
  first: number | undefined;
  last: number | undefined;
}

/** One denial row (denied or reported) of a service. */
export interface DenialRow {
  label: string;
  reason: ReasonCode;
  count: number;
  denied: number;
  reported: number;
  last: number | undefined;
}

/** One bar of the timeline. */
export interface Bucket extends ResultCounts {
  start: number;
}

/** Everything the report shows. */
export interface ReportModel extends ResultCounts {
  files: string[];
  decisions: number;
  /** `egress.summary` lines read, and the decisions they stand for (part of `decisions`). */
  summaries: number;
  summarised: number;
  otherEvents: number;
  skippedLines: number;
  first: number | undefined;
  last: number | undefined;
  sources: Map<string, number>;
  policies: Map<string, number>;
  services: string[];
  bucketMs: number;
  timeline: Bucket[];
  destinations: DestinationRow[];
  /** Per service ("(no service)" for none), the denials, most frequent first. */
  denials: Map<string, DenialRow[]>;
}

const MINUTE = 60_000;
const BUCKET_SIZES = [
  MINUTE,
  5 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  60 * MINUTE,
  3 * 60 * MINUTE,
  6 * 60 * MINUTE,
  12 * 60 * MINUTE,
  24 * 60 * MINUTE,
  7 * 24 * 60 * MINUTE,
];
/** At most this many bars: readable at a glance on a laptop screen. */
export const MAX_BUCKETS = 72;
export const NO_SERVICE = '(no service)';

/** The smallest bucket size that fits the span in MAX_BUCKETS bars. */
export function bucketSize(spanMs: number): number {
  for (const size of BUCKET_SIZES) if (spanMs / size < MAX_BUCKETS) return size;
  return Math.ceil(spanMs / MAX_BUCKETS);
}

function labelOf(d: LoggedDecision): string {
  if (isLookup(d)) return `dns ${d.host ?? '?'}`;
  return destinationLabel(d.scheme, d.host ?? d.address ?? '?', d.port);
}

/** Aggregates decisions for the report; a summary counts as the decisions it stands for, at its start. */
export function buildReport(
  decisions: readonly LoggedDecision[],
  read: { files: string[]; otherEvents: number; skippedLines: number; summaries?: number },
): ReportModel {
  const m: ReportModel = {
    files: read.files,
    decisions: decisions.reduce((n, d) => n + d.count, 0),
    summaries: read.summaries ?? decisions.filter((d) => d.summary).length,
    summarised: decisions.reduce((n, d) => n + (d.summary ? d.count : 0), 0),
    otherEvents: read.otherEvents,
    skippedLines: read.skippedLines,
    allowed: 0,
    denied: 0,
    reported: 0,
    first: undefined,
    last: undefined,
    sources: new Map(),
    policies: new Map(),
    services: [],
    bucketMs: MINUTE,
    timeline: [],
    destinations: [],
    denials: new Map(),
  };
  const services = new Set<string>();
  const rows = new Map<string, DestinationRow>();
  const denials = new Map<string, Map<string, DenialRow>>();
  for (const d of decisions) {
    const n = d.count;
    m[d.result] += n;
    if (d.time !== undefined) {
      m.first = m.first === undefined ? d.time : Math.min(m.first, d.time);
      m.last = m.last === undefined ? d.time : Math.max(m.last, d.time);
    }
    m.sources.set(d.source, (m.sources.get(d.source) ?? 0) + n);
    if (d.policyHash) m.policies.set(d.policyHash, (m.policies.get(d.policyHash) ?? 0) + n);
    const service = d.service ?? NO_SERVICE;
    services.add(service);
    const label = labelOf(d);
    let row = rows.get(label);
    if (!row) {
      row = {
        label,
        total: 0,
        allowed: 0,
        denied: 0,
        reported: 0,
        services: new Set(),
        rules: new Set(),
        sources: new Set(),
        first: undefined,
        last: undefined,
      };
      rows.set(label, row);
    }
    row.total += n;
    row[d.result] += n;
    row.services.add(service);
    if (d.rule) row.rules.add(d.rule);
    row.sources.add(d.source);
    if (d.time !== undefined) {
      row.first = row.first === undefined ? d.time : Math.min(row.first, d.time);
      row.last = row.last === undefined ? d.time : Math.max(row.last, d.time);
    }
    if (d.result !== 'allowed') {
      const perService = denials.get(service) ?? new Map<string, DenialRow>();
      denials.set(service, perService);
      const key = `${label}|${d.reason}`;
      const r = perService.get(key) ?? {
        label,
        reason: d.reason,
        count: 0,
        denied: 0,
        reported: 0,
        last: undefined,
      };
      r.count += n;
      r[d.result] += n;
      if (d.time !== undefined) r.last = r.last === undefined ? d.time : Math.max(r.last, d.time);
      perService.set(key, r);
    }
  }
  m.services = [...services].sort();
  m.destinations = [...rows.values()].sort((a, b) => b.total - a.total || a.label.localeCompare(b.label));
  for (const [service, perService] of [...denials].sort((a, b) => a[0].localeCompare(b[0]))) {
    m.denials.set(
      service,
      [...perService.values()].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label)),
    );
  }
  if (m.first !== undefined && m.last !== undefined) {
    m.bucketMs = bucketSize(m.last - m.first);
    const start = Math.floor(m.first / m.bucketMs) * m.bucketMs;
    const n = Math.floor((m.last - start) / m.bucketMs) + 1;
    m.timeline = Array.from({ length: n }, (_, i) => ({
      start: start + i * m.bucketMs,
      allowed: 0,
      denied: 0,
      reported: 0,
    }));
    for (const d of decisions) {
      if (d.time === undefined) continue;
      const bucket = m.timeline[Math.floor((d.time - start) / m.bucketMs)];
      if (bucket) bucket[d.result] += d.count;
    }
  }
  return m;
}
