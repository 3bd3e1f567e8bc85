/**
 * Options of the edge filter: their types, their defaults (all in {@link EDGE_DEFAULTS}), validation
 * with every problem listed at once, and {@link parseEdgeArgs} for the `egress-guard edge` command.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { EgressOptionsError, type EventEmitter, type Policy, parseDuration } from '@egress-guard/policy';
import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EdgeResolver } from './claims.js';
import { parseConfigText } from './config-file.js';

/** The three ways connections reach the edge. */
export type ListenerKind = 'explicit' | 'transparent' | 'sni';

/** Reads the pre-NAT destination of a redirected connection; throws when there is none. */
export type OriginalDestinationReader = (socket: net.Socket) => {
  address: string;
  port: number;
  family?: 4 | 6;
};

/** A duration: milliseconds, or text such as `250ms`, `5s`, `2m`, `1h`. */
export type DurationInput = number | string;

/** One listening socket. */
export interface ListenerOptions {
  /**
   * `explicit`: an HTTP proxy (`CONNECT host:port`, absolute-form `http://` requests) for clients with
   * `HTTPS_PROXY`/`HTTP_PROXY`. `transparent`: connections redirected by iptables/nftables REDIRECT; the
   * original destination is read from the socket. `sni`: the destination is the TLS SNI (or HTTP Host)
   * and {@link ListenerOptions.upstreamPort}; weaker, since there is no fact to check the claim against.
   */
  kind: ListenerKind;
  /** Bind address (an IP literal, or `localhost`). Default `127.0.0.1`. */
  host?: string | undefined;
  /** Port to listen on; `0` picks a free one (see `EdgeServer.listeners`). */
  port: number;
  /** `sni` listeners only: the port dialled upstream. Default `443`. */
  upstreamPort?: number | undefined;
  /**
   * `transparent` listeners only: how the original destination is read. Default: `SO_ORIGINAL_DST`
   * (`originalDestination` from `./original-destination.js`). Give a function for TPROXY (the socket's
   * local address) or for tests.
   */
  originalDestination?: OriginalDestinationReader | undefined;
}

/** Limits on connections and time. Durations accept `5s`-style text or milliseconds. */
export interface EdgeLimitsInput {
  /** Connections open at once, all listeners together. Default `10000`. */
  maxConnections?: number | undefined;
  /** Connections open at once from one client address. Default `256`. */
  maxConnectionsPerSource?: number | undefined;
  /**
   * Time from accept until the first bytes are complete (CONNECT request and TLS ClientHello, HTTP head
   * or SSH banner); then `hello_timeout`. The same limit applies to the upstream's ServerHello. Default `10s`.
   */
  helloTimeout?: DurationInput | undefined;
  /** Cap on the bytes buffered before a decision (a ClientHello or request head); then `hello_too_large`. Default `16384`. */
  helloMaxBytes?: number | undefined;
  /** Ceiling on the upstream connect time; a rule's lower `timeouts.connect` wins. Default `10s`. */
  connectTimeout?: DurationInput | undefined;
  /** Ceiling on the time a flow may carry no bytes either way; a rule's lower `timeouts.idle` wins. Default `10m`. */
  idleTimeout?: DurationInput | undefined;
  /** How long `drain()` (SIGTERM) waits for open flows before closing them. Default `30s`. */
  drainTimeout?: DurationInput | undefined;
}

/** {@link EdgeLimitsInput} with every default applied and durations in milliseconds. */
export interface EdgeLimits {
  maxConnections: number;
  maxConnectionsPerSource: number;
  helloTimeout: number;
  helloMaxBytes: number;
  connectTimeout: number;
  idleTimeout: number;
  drainTimeout: number;
}

/** How the edge resolves names (for dialling and for the transparent-mode claim check). */
export interface EdgeDnsInput {
  /** Resolver addresses (`10.0.0.2`, `10.0.0.2:5353`, `[fd00::53]:53`). Default: the system's (`/etc/resolv.conf`). */
  servers?: string[] | undefined;
  /**
   * Shortest time an answer is kept for the transparent claim check, whatever its TTL, so that round-robin
   * names with TTL 0 do not flap between the client's resolution and the edge's. Default `5s`.
   */
  minRetention?: DurationInput | undefined;
  /** Longest time an answer is kept, whatever its TTL. Default `1h`. */
  maxRetention?: DurationInput | undefined;
  /** Names kept in the answer cache; the oldest is dropped beyond it. Default `10000`. */
  maxNames?: number | undefined;
  /** Time limit of one look-up (A and AAAA in parallel). Default `5s`. */
  timeout?: DurationInput | undefined;
}

/** {@link EdgeDnsInput} with defaults applied. */
export interface EdgeDns {
  servers: string[] | undefined;
  minRetention: number;
  maxRetention: number;
  maxNames: number;
  timeout: number;
}

/** Options of {@link startEdge}. */
export interface EdgeOptions {
  /**
   * The policy: a file path (YAML or JSON; reloaded on SIGHUP, on `reload()` and on file change) or a
   * loaded `Policy` (replace it with `reload(next)`). Required.
   */
  policy: string | Policy;
  /** At least one listener. */
  listeners: ListenerOptions[];
  /** Admin HTTP server with `/metrics`, `/healthz`, `/readyz`. Default: none. `port: 0` picks a free port. */
  admin?: { host?: string | undefined; port: number } | undefined;
  limits?: EdgeLimitsInput | undefined;
  dns?: EdgeDnsInput | undefined;
  /** Watch the policy file (and its directory) and reload on change. Default `true` when `policy` is a path. */
  watch?: boolean | undefined;
  /** Quiet time after the last file event before reloading. Default `250ms`. */
  watchDebounce?: DurationInput | undefined;
  /**
   * Install process handlers: SIGHUP reloads, SIGTERM and SIGINT drain then close (a second one closes at
   * once). Default `false` for the library; {@link parseEdgeArgs} sets it for the command.
   */
  signals?: boolean | undefined;
  /** Where audit events go: an emitter from `createEventEmitter`. Default: one on `logger`/`destination`, else stdout. */
  events?: EventEmitter | undefined;
  /** The application's pino logger, used when `events` is not given. */
  logger?: Logger | undefined;
  /** A pino destination stream, used when neither `events` nor `logger` is given. */
  destination?: DestinationStream | undefined;
  /** Resolver used instead of `dns.promises.Resolver` (tests, or a custom DNS client). */
  resolver?: EdgeResolver | undefined;
  /** A `dns.lookup`-compatible function used instead of the resolver (answers carry no TTL). */
  lookup?: net.LookupFunction | undefined;
  /**
   * Prometheus registry to register the edge's metrics in (one edge per registry: the names are fixed).
   * Default: a new, dedicated Registry, never prom-client's global one.
   */
  registry?: Registry | undefined;
  /** Also collect prom-client's default process metrics into the registry. Default `true`. */
  defaultMetrics?: boolean | undefined;
}

/** {@link EdgeOptions} after validation, with every default applied. */
export interface ResolvedEdgeOptions {
  policy: string | Policy;
  listeners: Array<Required<Pick<ListenerOptions, 'kind' | 'host' | 'port'>> & ListenerOptions>;
  admin: { host: string; port: number } | undefined;
  limits: EdgeLimits;
  dns: EdgeDns;
  watch: boolean;
  watchDebounce: number;
  signals: boolean;
  events: EventEmitter | undefined;
  logger: Logger | undefined;
  destination: DestinationStream | undefined;
  resolver: EdgeResolver | undefined;
  lookup: net.LookupFunction | undefined;
  registry: Registry | undefined;
  defaultMetrics: boolean;
}

/** Every default, in one place. Durations in milliseconds. */
export const EDGE_DEFAULTS = {
  listenerHost: '127.0.0.1',
  sniUpstreamPort: 443,
  adminHost: '127.0.0.1',
  /** Admin address used by {@link parseEdgeArgs} when `--admin` is not given (`--no-admin` turns it off). */
  cliAdmin: '127.0.0.1:9901',
  limits: {
    maxConnections: 10_000,
    maxConnectionsPerSource: 256,
    helloTimeout: 10_000,
    helloMaxBytes: 16_384,
    connectTimeout: 10_000,
    idleTimeout: 600_000,
    drainTimeout: 30_000,
  } satisfies EdgeLimits,
  dns: {
    servers: undefined,
    minRetention: 5_000,
    maxRetention: 3_600_000,
    maxNames: 10_000,
    timeout: 5_000,
  } satisfies EdgeDns,
  watchDebounce: 250,
} as const;

/** Invalid edge options: every problem, one per line, each naming the option. */
export class EdgeConfigError extends EgressOptionsError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], where = 'edge options') {
    super(
      `invalid ${where}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

const KINDS: readonly ListenerKind[] = ['explicit', 'transparent', 'sni'];
const OPTION_KEYS = new Set([
  'policy',
  'listeners',
  'admin',
  'limits',
  'dns',
  'watch',
  'watchDebounce',
  'signals',
  'events',
  'logger',
  'destination',
  'resolver',
  'lookup',
  'registry',
  'defaultMetrics',
]);
const LISTENER_KEYS = new Set(['kind', 'host', 'port', 'upstreamPort', 'originalDestination']);
const LIMIT_KEYS = Object.keys(EDGE_DEFAULTS.limits);
const DNS_KEYS = Object.keys(EDGE_DEFAULTS.dns);
const DURATION_LIMITS = new Set(['helloTimeout', 'connectTimeout', 'idleTimeout', 'drainTimeout']);

/**
 * Validates options and applies defaults. Throws {@link EdgeConfigError} listing every problem.
 */
export function resolveEdgeOptions(input: EdgeOptions): ResolvedEdgeOptions {
  const problems: string[] = [];
  if (typeof input !== 'object' || input === null) throw new EdgeConfigError(['options must be an object']);
  unknownKeys(input as unknown as Record<string, unknown>, OPTION_KEYS, '', problems);

  const policy = input.policy;
  if (!(typeof policy === 'string' && policy.length > 0) && !isPolicy(policy)) {
    problems.push('policy: required: a policy file path or a Policy (from loadPolicyFile)');
  }

  const listeners: ResolvedEdgeOptions['listeners'] = [];
  if (!Array.isArray(input.listeners) || input.listeners.length === 0) {
    problems.push('listeners: at least one listener is required (explicit, transparent or sni)');
  } else {
    input.listeners.forEach((l, i) => {
      const where = `listeners[${i}]`;
      if (typeof l !== 'object' || l === null) {
        problems.push(`${where}: expected an object`);
        return;
      }
      unknownKeys(l as unknown as Record<string, unknown>, LISTENER_KEYS, `${where}.`, problems);
      if (!KINDS.includes(l.kind)) {
        problems.push(`${where}.kind: expected one of ${KINDS.join(', ')}, got ${JSON.stringify(l.kind)}`);
      }
      const host = l.host ?? EDGE_DEFAULTS.listenerHost;
      checkBindHost(host, `${where}.host`, problems);
      checkPort(l.port, `${where}.port`, problems, true);
      if (l.upstreamPort !== undefined) {
        if (l.kind !== 'sni')
          problems.push(`${where}.upstreamPort: only sni listeners have an upstream port`);
        checkPort(l.upstreamPort, `${where}.upstreamPort`, problems, false);
      }
      if (l.originalDestination !== undefined) {
        if (l.kind !== 'transparent') {
          problems.push(
            `${where}.originalDestination: only transparent listeners read an original destination`,
          );
        }
        if (typeof l.originalDestination !== 'function') {
          problems.push(`${where}.originalDestination: expected a function`);
        }
      }
      listeners.push({
        ...l,
        host,
        upstreamPort: l.kind === 'sni' ? (l.upstreamPort ?? EDGE_DEFAULTS.sniUpstreamPort) : undefined,
      });
    });
    const seen = new Set<string>();
    for (const l of listeners) {
      if (l.port === 0) continue;
      const key = `${l.host}|${l.port}`;
      if (seen.has(key)) problems.push(`listeners: ${l.host}:${l.port} is listed twice`);
      seen.add(key);
    }
  }

  let admin: ResolvedEdgeOptions['admin'];
  if (input.admin !== undefined) {
    if (typeof input.admin !== 'object' || input.admin === null) {
      problems.push('admin: expected { host, port }');
    } else {
      const host = input.admin.host ?? EDGE_DEFAULTS.adminHost;
      checkBindHost(host, 'admin.host', problems);
      checkPort(input.admin.port, 'admin.port', problems, true);
      admin = { host, port: input.admin.port };
    }
  }

  const limits = { ...EDGE_DEFAULTS.limits } as EdgeLimits;
  if (input.limits !== undefined) {
    const raw = input.limits as Record<string, unknown>;
    unknownKeys(raw, new Set(LIMIT_KEYS), 'limits.', problems);
    for (const key of LIMIT_KEYS) {
      const value = raw[key];
      if (value === undefined) continue;
      const parsed = DURATION_LIMITS.has(key)
        ? durationOf(value, `limits.${key}`, problems)
        : countOf(value, `limits.${key}`, problems);
      if (parsed !== undefined) (limits as unknown as Record<string, number>)[key] = parsed;
    }
    if (limits.helloMaxBytes < 1024) problems.push('limits.helloMaxBytes: at least 1024 bytes');
  }

  const dns: EdgeDns = { ...EDGE_DEFAULTS.dns };
  if (input.dns !== undefined) {
    const raw = input.dns as Record<string, unknown>;
    unknownKeys(raw, new Set(DNS_KEYS), 'dns.', problems);
    if (raw.servers !== undefined) {
      if (!Array.isArray(raw.servers) || raw.servers.some((s) => typeof s !== 'string' || s === '')) {
        problems.push('dns.servers: expected a list of addresses such as 10.0.0.2 or 10.0.0.2:53');
      } else dns.servers = raw.servers as string[];
    }
    for (const key of ['minRetention', 'maxRetention', 'timeout'] as const) {
      if (raw[key] === undefined) continue;
      const v = durationOf(raw[key], `dns.${key}`, problems);
      if (v !== undefined) dns[key] = v;
    }
    if (raw.maxNames !== undefined) {
      const v = countOf(raw.maxNames, 'dns.maxNames', problems);
      if (v !== undefined) dns.maxNames = v;
    }
  }

  let watchDebounce: number = EDGE_DEFAULTS.watchDebounce;
  if (input.watchDebounce !== undefined) {
    watchDebounce = durationOf(input.watchDebounce, 'watchDebounce', problems) ?? watchDebounce;
  }
  for (const key of ['watch', 'signals', 'defaultMetrics'] as const) {
    if (input[key] !== undefined && typeof input[key] !== 'boolean')
      problems.push(`${key}: expected true or false`);
  }
  if (input.resolver !== undefined && input.lookup !== undefined) {
    problems.push('resolver, lookup: give one of them, not both');
  }
  if (input.resolver !== undefined && input.dns?.servers !== undefined) {
    problems.push('resolver, dns.servers: a custom resolver chooses its own servers');
  }
  if (
    input.resolver !== undefined &&
    (typeof input.resolver.resolve4 !== 'function' || typeof input.resolver.resolve6 !== 'function')
  ) {
    problems.push('resolver: expected an object with resolve4 and resolve6 (like dns.promises.Resolver)');
  }
  if (input.lookup !== undefined && typeof input.lookup !== 'function')
    problems.push('lookup: expected a function');

  if (problems.length > 0) throw new EdgeConfigError(problems);
  return {
    policy: input.policy,
    listeners,
    admin,
    limits,
    dns,
    watch: input.watch ?? typeof input.policy === 'string',
    watchDebounce,
    signals: input.signals ?? false,
    events: input.events,
    logger: input.logger,
    destination: input.destination,
    resolver: input.resolver,
    lookup: input.lookup,
    registry: input.registry,
    defaultMetrics: input.defaultMetrics ?? true,
  };
}

function isPolicy(value: unknown): value is Policy {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Policy).decide === 'function' &&
    typeof (value as Policy).hash === 'string'
  );
}

function unknownKeys(
  obj: Record<string, unknown>,
  known: Set<string>,
  prefix: string,
  problems: string[],
): void {
  for (const key of Object.keys(obj)) {
    if (known.has(key) || obj[key] === undefined) continue;
    const hint = closest(key, [...known]);
    problems.push(`${prefix}${key}: unknown option${hint ? ` (did you mean "${hint}"?)` : ''}`);
  }
}

/** The known name within edit distance 2, if any. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d <= 2 && (!best || d < best.d)) best = { name: c, d };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function checkBindHost(host: unknown, where: string, problems: string[]): void {
  if (typeof host !== 'string' || (host !== 'localhost' && net.isIP(host) === 0)) {
    problems.push(
      `${where}: expected an IP address to bind (e.g. 127.0.0.1, 0.0.0.0, ::), got ${JSON.stringify(host)}`,
    );
  }
}

function checkPort(port: unknown, where: string, problems: string[], zeroOk: boolean): void {
  const min = zeroOk ? 0 : 1;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    problems.push(`${where}: expected a port ${min}-65535, got ${JSON.stringify(port)}`);
  }
}

function durationOf(value: unknown, where: string, problems: string[]): number | undefined {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    problems.push(
      `${where}: expected a positive duration such as 250ms, 5s, 2m or a number of milliseconds, got ${JSON.stringify(value)}`,
    );
    return undefined;
  }
  return ms;
}

function countOf(value: unknown, where: string, problems: string[]): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    problems.push(`${where}: expected a positive whole number, got ${JSON.stringify(value)}`);
    return undefined;
  }
  return n;
}

/** `host:port`, `[v6]:port` or `:port` (bind to the default host). */
export function parseListenAddress(
  text: string,
  defaultHost: string,
): { host: string; port: number } | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return `expected host:port (e.g. 127.0.0.1:3128 or [::]:3128), got ${JSON.stringify(text)}`;
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? defaultHost : m[2]);
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range`;
  if (host !== 'localhost' && net.isIP(host) === 0) return `"${host}" is not an IP address to bind`;
  return { host, port };
}

/** The `--sni` syntax: `host:port` or `host:port=upstreamPort`. */
function parseSniListen(text: string): { host: string; port: number; upstreamPort?: number } | string {
  const eq = text.lastIndexOf('=');
  const listen = parseListenAddress(eq < 0 ? text : text.slice(0, eq), EDGE_DEFAULTS.listenerHost);
  if (typeof listen === 'string') return listen;
  if (eq < 0) return listen;
  const up = text.slice(eq + 1);
  if (!/^\d{1,5}$/.test(up) || Number(up) < 1 || Number(up) > 65535) return `invalid upstream port "${up}"`;
  return { ...listen, upstreamPort: Number(up) };
}

/** Flags and their config-file keys. Values: `list` repeatable, `value` single, `bool` no argument. */
const FLAGS: Record<string, { kind: 'list' | 'value' | 'bool'; key: string }> = {
  '--policy': { kind: 'value', key: 'policy' },
  '--config': { kind: 'value', key: 'config' },
  '--explicit': { kind: 'list', key: 'explicit' },
  '--transparent': { kind: 'list', key: 'transparent' },
  '--sni': { kind: 'list', key: 'sni' },
  '--admin': { kind: 'value', key: 'admin' },
  '--no-admin': { kind: 'bool', key: 'noAdmin' },
  '--max-connections': { kind: 'value', key: 'limits.maxConnections' },
  '--max-connections-per-source': { kind: 'value', key: 'limits.maxConnectionsPerSource' },
  '--hello-timeout': { kind: 'value', key: 'limits.helloTimeout' },
  '--hello-max-bytes': { kind: 'value', key: 'limits.helloMaxBytes' },
  '--connect-timeout': { kind: 'value', key: 'limits.connectTimeout' },
  '--idle-timeout': { kind: 'value', key: 'limits.idleTimeout' },
  '--drain-timeout': { kind: 'value', key: 'limits.drainTimeout' },
  '--dns-server': { kind: 'list', key: 'dns.servers' },
  '--dns-min-retention': { kind: 'value', key: 'dns.minRetention' },
  '--no-watch': { kind: 'bool', key: 'noWatch' },
  '--watch-debounce': { kind: 'value', key: 'watchDebounce' },
};

/** Keys a config file may hold (the flags without `--`, in camelCase, limits and dns nested). */
const FILE_KEYS = new Set([
  'policy',
  'explicit',
  'transparent',
  'sni',
  'admin',
  'limits',
  'dns',
  'watch',
  'watchDebounce',
]);

/** The flags {@link parseEdgeArgs} understands, for the command's help text. */
export const EDGE_USAGE = `egress-guard edge --policy egress.yaml [listeners] [options]

listeners (each may be repeated; at least one):
  --explicit HOST:PORT          HTTP proxy (CONNECT and absolute-form http://), e.g. 127.0.0.1:3128
  --transparent HOST:PORT       iptables/nftables REDIRECT target, e.g. 0.0.0.0:15001
  --sni HOST:PORT[=UPSTREAM]    routed by TLS SNI (weaker: no fact to check), upstream port default 443

options:
  --config FILE                 JSON or YAML file with the same settings (flags win)
  --admin HOST:PORT             /metrics, /healthz, /readyz (default ${EDGE_DEFAULTS.cliAdmin}); --no-admin
  --max-connections N           default ${EDGE_DEFAULTS.limits.maxConnections}
  --max-connections-per-source N  default ${EDGE_DEFAULTS.limits.maxConnectionsPerSource}
  --hello-timeout DURATION      default 10s
  --hello-max-bytes N           default ${EDGE_DEFAULTS.limits.helloMaxBytes}
  --connect-timeout DURATION    default 10s (a rule's lower timeouts.connect wins)
  --idle-timeout DURATION       default 10m (a rule's lower timeouts.idle wins)
  --drain-timeout DURATION      default 30s
  --dns-server ADDR[:PORT]      resolver for names the edge dials (default: the system's)
  --dns-min-retention DURATION  default 5s
  --no-watch                    do not reload when the policy file changes (SIGHUP still reloads)
  --watch-debounce DURATION     default 250ms`;

/**
 * Turns `egress-guard edge` flags (and the `--config` file they name) into validated {@link EdgeOptions}
 * with `signals: true` and the admin server on {@link EDGE_DEFAULTS.cliAdmin} unless `--no-admin`. Flags win
 * over the file; listener flags replace the file's listeners of the same kind. Paths in the file are
 * relative to the file. Throws {@link EdgeConfigError} listing every problem.
 */
export function parseEdgeArgs(argv: readonly string[]): EdgeOptions {
  const problems: string[] = [];
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[name];
    if (!spec) {
      const hint = closest(name, Object.keys(FLAGS));
      problems.push(
        `${arg}: unknown ${arg.startsWith('-') ? 'flag' : 'argument'}${hint ? ` (did you mean ${hint}?)` : ''}`,
      );
      continue;
    }
    if (spec.kind === 'bool') {
      if (eq > 0) problems.push(`${name}: takes no value`);
      flags[spec.key] = true;
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) {
        problems.push(`${name}: needs a value`);
        continue;
      }
      i++;
    }
    if (spec.kind === 'list') flags[spec.key] = [...((flags[spec.key] as string[]) ?? []), value];
    else if (flags[spec.key] !== undefined) problems.push(`${name}: given twice`);
    else flags[spec.key] = value;
  }

  let file: Record<string, unknown> = {};
  let fileDir = process.cwd();
  const configPath = flags.config as string | undefined;
  if (configPath !== undefined) {
    try {
      const text = readFileSync(configPath, 'utf8');
      const parsed = parseConfigText(text, configPath);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        problems.push(`${configPath}: expected a mapping of settings at the top level`);
      } else {
        file = parsed as Record<string, unknown>;
        fileDir = dirname(resolvePath(configPath));
        unknownKeys(file, FILE_KEYS, `${configPath}: `, problems);
      }
    } catch (error) {
      problems.push(
        error instanceof EdgeConfigError
          ? error.problems.join('; ')
          : `${configPath}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  }
  const where = (key: string) => (flags[key] !== undefined ? `--${key}` : `${configPath ?? ''}: ${key}`);

  const policyFlag = flags.policy as string | undefined;
  const policyFile = typeof file.policy === 'string' ? resolvePath(fileDir, file.policy) : undefined;
  if (file.policy !== undefined && typeof file.policy !== 'string')
    problems.push(`${where('policy')}: expected a path`);
  const policy = policyFlag ?? policyFile;
  if (policy === undefined) problems.push('--policy: required (the policy file the edge enforces)');

  const listeners: ListenerOptions[] = [];
  for (const kind of KINDS) {
    const fromFlags = flags[kind] as string[] | undefined;
    const fromFile = file[kind];
    let list: string[] = [];
    if (fromFlags) list = fromFlags;
    else if (fromFile !== undefined) {
      if (typeof fromFile === 'string') list = [fromFile];
      else if (Array.isArray(fromFile) && fromFile.every((x) => typeof x === 'string'))
        list = fromFile as string[];
      else problems.push(`${where(kind)}: expected host:port or a list of them`);
    }
    for (const text of list) {
      const parsed =
        kind === 'sni' ? parseSniListen(text) : parseListenAddress(text, EDGE_DEFAULTS.listenerHost);
      if (typeof parsed === 'string') problems.push(`--${kind} ${text}: ${parsed}`);
      else listeners.push({ kind, ...parsed });
    }
  }
  if (listeners.length === 0 && !problems.some((p) => p.startsWith('--explicit') || p.startsWith('--sni'))) {
    problems.push('listeners: give at least one of --explicit, --transparent, --sni');
  }

  let admin: EdgeOptions['admin'];
  if (!flags.noAdmin) {
    const text = (flags.admin as string | undefined) ?? file.admin ?? EDGE_DEFAULTS.cliAdmin;
    if (text === false || text === null) admin = undefined;
    else if (typeof text !== 'string') problems.push(`${where('admin')}: expected host:port`);
    else {
      const parsed = parseListenAddress(text, EDGE_DEFAULTS.adminHost);
      if (typeof parsed === 'string') problems.push(`--admin ${text}: ${parsed}`);
      else admin = parsed;
    }
  }

  const limits: Record<string, unknown> = {};
  if (file.limits !== undefined) {
    if (typeof file.limits !== 'object' || file.limits === null)
      problems.push(`${configPath}: limits: expected a mapping`);
    else Object.assign(limits, file.limits);
  }
  const dns: Record<string, unknown> = {};
  if (file.dns !== undefined) {
    if (typeof file.dns !== 'object' || file.dns === null)
      problems.push(`${configPath}: dns: expected a mapping`);
    else Object.assign(dns, file.dns);
  }
  for (const [key, value] of Object.entries(flags)) {
    if (key.startsWith('limits.')) limits[key.slice(7)] = value;
    if (key.startsWith('dns.')) dns[key.slice(4)] = value;
  }

  const options: EdgeOptions = {
    policy: policy ?? '',
    listeners,
    admin,
    limits: limits as EdgeLimitsInput,
    dns: dns as EdgeDnsInput,
    watch: flags.noWatch ? false : typeof file.watch === 'boolean' ? file.watch : true,
    signals: true,
  };
  const debounce = flags.watchDebounce ?? file.watchDebounce;
  if (debounce !== undefined) options.watchDebounce = debounce as DurationInput;

  if (problems.length > 0) throw new EdgeConfigError(problems, 'edge arguments');
  try {
    resolveEdgeOptions(options);
  } catch (error) {
    if (error instanceof EdgeConfigError) throw new EdgeConfigError(error.problems, 'edge arguments');
    throw error;
  }
  return options;
}
