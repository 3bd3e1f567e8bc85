import { EgressOptionsError } from './errors.js';
import { type CompletionEvent, EVENT_SCHEMA_VERSION, type EventSource, type SummaryEvent } from './events.js';
import type { Decision } from './types.js';

/**
 * How allowed traffic is written down. `each` (the default): one decision and one completion event per
 * request or connection. `summary`: one `egress.summary` event per rule, origin and outcome per interval;
 * everything else (denials, would-denies, late denials, TLS refusals, breaker and policy changes, losses)
 * is still one event each. See docs/events.md, "Summary mode".
 */
export type AllowedAudit = 'each' | 'summary';

/** The `audit` option of the SDK and the edge. */
export interface AuditOptions {
  /** `each` (default) or `summary`. */
  allowed?: AllowedAudit | undefined;
  /** Length of a summary interval in milliseconds. Default 60,000. */
  intervalMs?: number | undefined;
}

/** Options of {@link AllowedTrafficSummary}. */
export interface AllowedTrafficSummaryOptions {
  /** Where summary events go: the emitter's `emit`. Called synchronously, at most once per key per interval. */
  emit: (event: SummaryEvent) => void;
  /** `egress.source` of the summary events. */
  source: EventSource;
  /** Interval length in milliseconds. Default 60,000. Intervals are aligned to multiples of it (whole minutes). */
  intervalMs?: number | undefined;
  /**
   * Most keys (rule, origin, outcome, ...) held in one interval. Default 1000. A completion that would
   * add a key beyond it is not summarised (`record` returns false): it is written as one event, so
   * nothing is lost, and memory stays bounded (each key holds a 2.2 KiB histogram).
   */
  maxKeys?: number | undefined;
  /** The clock (epoch milliseconds). Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** What of a decision the summary needs: whether it was allowed, and its destination. */
export type SummarisedDecision = Pick<Decision, 'result' | 'scheme' | 'host' | 'port'>;

/**
 * Outcomes of allowed traffic that are summarised. The others are one event each: `tls` (a TLS refusal:
 * the floor or verification), `denied` (a redirect or dial-time denial after the decision), and any
 * outcome not listed here.
 */
export const SUMMARISED_OUTCOMES: ReadonlySet<string> = new Set(['ok', 'error', 'timeout', 'circuit_open']);

export const DEFAULT_SUMMARY_INTERVAL_MS = 60_000;
const DEFAULT_MAX_KEYS = 1000;

// Latency histogram: logarithmic buckets with 2% relative accuracy from 1 µs to 1 h (values outside are
// clamped into the end buckets), the exact maximum kept apart: 552 counters, 2.2 KiB per key, whatever the
// number of requests.
const ALPHA = 0.02;
const GAMMA = (1 + ALPHA) / (1 - ALPHA);
const LOG_GAMMA = Math.log(GAMMA);
const MIN_MS = 0.001;
const MAX_MS = 3_600_000;
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_GAMMA) + 1;

/** Durations of one key: a fixed-size log-bucket histogram (quantiles within 2%) and the exact maximum. */
export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;

  add(ms: number): void {
    const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const i = v <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(v / MIN_MS) / LOG_GAMMA));
    this.counts[i]!++;
    this.count++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The `q` quantile (0..1), within 2% of the true value, and within the observed minimum and maximum. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    if (rank >= this.count) return this.max;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        // The last bucket also holds everything over an hour: the maximum is the honest answer there.
        if (i === BUCKETS - 1) return this.max;
        // Bucket i holds (MIN·γ^(i-1), MIN·γ^i]: this value is within α of all of it.
        const value = i === 0 ? this.min : (2 * MIN_MS * GAMMA ** i) / (GAMMA + 1);
        return Math.min(this.max, Math.max(this.min, value));
      }
    }
    return this.max;
  }
}

interface Entry {
  service: string | undefined;
  rule: string | undefined;
  hash: string;
  outcome: string;
  errorType: string | undefined;
  scheme: string;
  host: string | undefined;
  port: number;
  sent: number;
  received: number;
  durations: LatencyHistogram;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

/**
 * Summary mode: aggregates the completions of allowed traffic per service, policy, rule, origin
 * (scheme://host:port), outcome and error type over an interval, and writes one `egress.summary` event
 * per key when the interval ends (count, bytes, p50/p90/p99 and maximum duration). Intervals are aligned
 * to multiples of `intervalMs`; a key with no traffic in an interval writes nothing.
 *
 * The caller decides per request: {@link AllowedTrafficSummary.covers} says whether the decision event
 * may be left unwritten; {@link record} takes the completion and says whether it was summarised. When it
 * was not (a TLS refusal, a late denial, the key limit), the caller writes the decision it held back and
 * the completion, one event each.
 */
export class AllowedTrafficSummary {
  /**
   * Whether a decision's traffic may be summarised, so that its decision event need not be written: an
   * allowed decision (`allowed` in either mode). Denied and reported (would-deny) decisions are always
   * written, and so are their completions.
   */
  static covers(decision: Pick<Decision, 'result'>): boolean {
    return decision.result === 'allowed';
  }

  readonly intervalMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private entries = new Map<string, Entry>();
  /** Start of what the open interval counts (its boundary, or the last flush). */
  private start: number;
  /** Its end: the next multiple of `intervalMs`. */
  private end: number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: AllowedTrafficSummaryOptions) {
    const interval = options.intervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    if (!Number.isFinite(interval) || interval <= 0) {
      throw new EgressOptionsError(`audit interval: ${interval} is not a positive number of milliseconds`);
    }
    const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new EgressOptionsError(`audit maxKeys: ${maxKeys} is not a whole number, 1 or more`);
    }
    this.intervalMs = interval;
    this.maxKeys = maxKeys;
    this.now = options.now ?? (() => Date.now());
    this.start = this.now();
    this.end = this.boundaryAfter(this.start);
  }

  /** Keys counted in the open interval. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Counts one completion of an allowed request or connection in the open interval. Returns true when it
   * was summarised (the caller writes neither its decision nor its completion), false when the caller
   * must write them as one event each: the decision was not `allowed`, the outcome is not summarised
   * (`tls`, `denied`, ...: see {@link SUMMARISED_OUTCOMES}), the key limit is reached, or the summary is
   * closed.
   */
  record(completion: CompletionEvent, decision: SummarisedDecision): boolean {
    if (this.closed || decision.result !== 'allowed') return false;
    const outcome = completion['egress.outcome'];
    if (!SUMMARISED_OUTCOMES.has(outcome)) return false;
    const now = this.now();
    if (now >= this.end) this.rotate(now);
    const host = completion['server.address'] ?? decision.host;
    const port = completion['server.port'] ?? decision.port;
    const errorType = outcome === 'ok' ? undefined : completion['error.type'];
    const service = completion['service.name'];
    const rule = completion['egress.rule'];
    const hash = completion['egress.policy.hash'];
    const key = `${service ?? ''}\u0000${hash}\u0000${rule ?? ''}\u0000${decision.scheme}\u0000${host ?? ''}\u0000${port}\u0000${outcome}\u0000${errorType ?? ''}`;
    let entry = this.entries.get(key);
    if (!entry) {
      if (this.entries.size >= this.maxKeys) return false;
      entry = {
        service,
        rule,
        hash,
        outcome,
        errorType,
        scheme: decision.scheme,
        host,
        port,
        sent: 0,
        received: 0,
        durations: new LatencyHistogram(),
      };
      this.entries.set(key, entry);
      this.arm();
    }
    entry.durations.add(completion['egress.duration_ms']);
    const sent = completion['egress.bytes.sent'];
    const received = completion['egress.bytes.received'];
    if (typeof sent === 'number' && sent > 0) entry.sent += sent;
    if (typeof received === 'number' && received > 0) entry.received += received;
    return true;
  }

  /**
   * Writes the open interval's summaries now (ending now), and starts counting afresh until the same
   * boundary. For a flush before exit or on demand; `close()` does it too.
   */
  flush(): void {
    const now = this.now();
    if (now >= this.end) this.rotate(now);
    this.writeAll(now);
    this.start = now;
  }

  /** Writes what is open and stops: later completions are not summarised (`record` returns false). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The interval ended (by the timer, or seen late by `record`/`flush`): write it, open the next. */
  private rotate(now: number): void {
    this.writeAll(this.end);
    this.start = this.boundaryAfter(now) - this.intervalMs;
    this.end = this.start + this.intervalMs;
  }

  private writeAll(end: number): void {
    const entries = this.entries;
    if (entries.size === 0) return;
    this.entries = new Map();
    const startIso = new Date(this.start).toISOString();
    const endIso = new Date(Math.max(end, this.start)).toISOString();
    for (const e of entries.values()) {
      const d = e.durations;
      this.options.emit({
        'event.name': 'egress.summary',
        'egress.schema': EVENT_SCHEMA_VERSION,
        'egress.source': this.options.source,
        'service.name': e.service,
        'egress.rule': e.rule,
        'egress.policy.hash': e.hash,
        'egress.outcome': e.outcome,
        'url.scheme': e.scheme,
        'server.address': e.host,
        'server.port': e.port,
        'error.type': e.errorType,
        'egress.summary.start': startIso,
        'egress.summary.end': endIso,
        'egress.summary.count': d.count,
        'egress.bytes.sent': e.sent,
        'egress.bytes.received': e.received,
        'egress.summary.duration_p50_ms': round3(d.quantile(0.5)),
        'egress.summary.duration_p90_ms': round3(d.quantile(0.9)),
        'egress.summary.duration_p99_ms': round3(d.quantile(0.99)),
        'egress.summary.duration_max_ms': round3(d.max),
      });
    }
  }

  /** A timer for the end of the open interval, while it has something to write (unref'd). */
  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = this.now();
        if (now >= this.end) this.rotate(now);
        if (this.entries.size > 0) this.arm();
      },
      Math.max(0, this.end - this.now()),
    );
    this.timer.unref?.();
  }

  private boundaryAfter(t: number): number {
    return (Math.floor(t / this.intervalMs) + 1) * this.intervalMs;
  }
}
