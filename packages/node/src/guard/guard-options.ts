import type { LookupFunction } from 'node:net';
import type { AuditOptions, EmitterOptions, Policy } from '@egress-guard/policy';
import type { DestinationStream, Logger } from 'pino';

/** Options of `createGuard()` and `install()`. Validated once, at construction. */
export interface GuardOptions {
  /** A loaded policy, or the path of a policy file. One of `policy` and `policyFile` is required. */
  policy?: Policy | undefined;
  /** Path of the policy file (YAML or JSON). Default: `EGRESS_GUARD_POLICY`. */
  policyFile?: string | undefined;
  /** Reload when the file changes. Default: true when `policyFile` is given. */
  watch?: boolean | undefined;
  /** The service this process is (a key of the policy's `services`). Default: `EGRESS_GUARD_SERVICE`. */
  service?: string | undefined;
  /** The application's pino logger: events are written through it. */
  logger?: Logger | undefined;
  /** A pino destination for events, when no logger is given. Default: JSON lines on stdout. */
  destination?: DestinationStream | undefined;
  /** Event line format: `native` (default) or `ocsf` (see docs/events.md). */
  format?: EmitterOptions['format'];
  /** Flush buffered events on exit, SIGTERM and SIGINT. Default false: a library does not take over signals unasked. */
  flushOnExit?: boolean | undefined;
  /** Add epoch `time`, `pid` and `hostname` to each line (for syslog/OTLP transports). See docs/events.md. */
  envelope?: EmitterOptions['envelope'];
  /**
   * How allowed traffic is audited: `{ allowed: 'each' }` (default) writes a decision and a completion
   * event per request; `{ allowed: 'summary', intervalMs }` writes one `egress.summary` event per rule,
   * origin and outcome per interval (default 60 s) with counts, bytes and latency quantiles. Denials,
   * would-denies, TLS refusals, breaker changes and anything not summarisable stay one event each. See
   * docs/events.md for when to use it.
   */
  audit?: AuditOptions | undefined;
  /** Log query strings in `url.full`. Default false: they are redacted (`?REDACTED`). */
  logQueryStrings?: boolean | undefined;
  /** How names are resolved before the guard checks each address. Default: `dns.lookup`. */
  lookup?: LookupFunction | undefined;
  /** Extra CA certificates trusted by the guard's own dispatcher and agents (e.g. a private CA). */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  /** The clock, for `reportUntil`. Default `Date.now`. */
  now?: (() => number) | undefined;
}
