/**
 * Options of the edge filter: their types, their defaults (all in {@link EDGE_DEFAULTS}), and validation
 * with every problem listed at once, each with its path so that a caller reading the options from flags
 * or a file (the `egress-guard edge` command) can say where it came from.
 */
import net from 'node:net';
import {
  didYouMean,
  EgressOptionsError,
  type EventEmitter,
  type Policy,
  parseDuration,
} from '@egress-guard/policy';
import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { EdgeResolver } from './claims.js';

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
  /** Time limit of one look-up (A and AAAA in parallel), and of the DNS guard's upstream exchange. Default `5s`. */
  timeout?: DurationInput | undefined;
  /**
   * DNS guard listeners (UDP and TCP on each): `host:port` text (`0.0.0.0:53`, `[::]:53`) or
   * `{ host, port }`; `port: 0` picks a free one. Questions for names the querying service's policy does not
   * allow are refused and never forwarded. Default: none. See docs/edge.md, "DNS guard".
   */
  listen?: Array<string | { host?: string | undefined; port: number }> | undefined;
  /** Shortest time a name → address binding from a DNS guard answer is kept, whatever its TTL. Default `5m`. */
  minTtl?: DurationInput | undefined;
  /** How the DNS guard answers a refused question: `refused` (REFUSED) or `nxdomain` (NXDOMAIN). Default `refused`. */
  refusal?: 'refused' | 'nxdomain' | undefined;
  /** DNS guard questions per second per source address (burst twice that); beyond, dropped. Default `200`. */
  rateLimit?: number | string | undefined;
  /**
   * The hosts file the edge's resolver reads first, as the system resolver does (names listed there are
   * never asked of DNS; re-read when it changes), or `false` to ask DNS for every name. Not used with a
   * custom `resolver` or `lookup`. Default `/etc/hosts`.
   */
  hostsFile?: string | false | undefined;
}

/** {@link EdgeDnsInput} with defaults applied. */
export interface EdgeDns {
  listen: Array<{ host: string; port: number }>;
  minTtl: number;
  refusal: 'refused' | 'nxdomain';
  rateLimit: number;
  hostsFile: string | false;
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
   * once). Default `false` for the library; the `egress-guard edge` command sets it.
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
  /**
   * Processes that accept connections: `1` (the library's default) runs the edge in this process; more
   * runs one primary (policy, admin server, flow log) and that many worker processes on the same
   * listeners (`startEdgeWorkers`; the `egress-guard edge` command defaults to the number of cores).
   * See docs/edge.md, "Workers".
   */
  workers?: number | undefined;
  /**
   * The secrets file (or directory) of the explicit proxy's service credentials. When given, every
   * explicit-proxy connection must send `Proxy-Authorization` (Basic `SERVICE:TOKEN`, or Bearer `TOKEN`),
   * answered `407` otherwise, and the service it names selects its `services` section, whatever the
   * source address. Read again on every reload. See docs/edge.md, "Service identity". Default: none
   * (the service comes from `sources`).
   */
  proxyAuth?: string | undefined;
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
  workers: number;
  proxyAuth: string | undefined;
}

/** Every default, in one place. Durations in milliseconds. */
export const EDGE_DEFAULTS = {
  listenerHost: '127.0.0.1',
  sniUpstreamPort: 443,
  adminHost: '127.0.0.1',
  /** Admin address of the `egress-guard edge` command when `--admin` is not given (`--no-admin` turns it off). */
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
    listen: [],
    minTtl: 300_000,
    refusal: 'refused',
    rateLimit: 200,
    hostsFile: '/etc/hosts',
  } satisfies EdgeDns,
  watchDebounce: 250,
  /** Library default of {@link EdgeOptions.signals}; the `egress-guard edge` command sets `true`. */
  signals: false,
  defaultMetrics: true,
  /** Library default of {@link EdgeOptions.workers}: this process only. */
  workers: 1,
} as const;

/** Smallest accepted {@link EdgeLimitsInput.helloMaxBytes}. */
const MIN_HELLO_MAX_BYTES = 1024;

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

// ---------------------------------------------------------------------------------------------------
// The schema. Each leaf carries its own message; cross-field checks run even when some fields are
// invalid (`when: always`), so one pass lists every problem. Defaults come from EDGE_DEFAULTS only.
// ---------------------------------------------------------------------------------------------------

const KINDS = ['explicit', 'transparent', 'sni'] as const satisfies readonly ListenerKind[];

/** Runs a refinement even when earlier parts of the value failed, so every problem is listed at once. */
const always = { when: () => true };

/** `got 70000`, `got "soon"`: the offending value, as the user wrote it. */
const got = (input: unknown) => `got ${JSON.stringify(input)}`;

/** An error map that replaces only the type error of a container (its other issues keep their codes). */
const onTypeError = (message: string) => (issue: { code?: string }) =>
  issue.code === 'invalid_type' ? message : undefined;

const bindHostMessage = (issue: { input?: unknown }) =>
  `expected an IP address to bind (e.g. 127.0.0.1, 0.0.0.0, ::), ${got(issue.input)}`;
const bindHost = z
  .string({ error: bindHostMessage })
  .refine((host) => host === 'localhost' || net.isIP(host) !== 0, { error: bindHostMessage });

/*
 * Whole numbers are a number plus a refinement rather than `z.int()`: zod's integer check aborts the
 * parse outright (as `z.custom` does by default), which would skip the cross-field checks and hide their
 * problems; a refinement lets them run.
 */

/** A port number; `min` 0 lets the system pick a free one (listeners and admin). */
function portSchema(min: 0 | 1) {
  const message = (issue: { input?: unknown }) => `expected a port ${min}-65535, ${got(issue.input)}`;
  return z
    .number({ error: message })
    .refine((n) => Number.isInteger(n) && n >= min && n <= 65535, { error: message });
}

const countMessage = (issue: { input?: unknown }) => `expected a positive whole number, ${got(issue.input)}`;
const positiveInt = z
  .number({ error: countMessage })
  .refine((n) => Number.isSafeInteger(n) && n >= 1, { error: countMessage });
/** A positive whole number, or its decimal text (flags and config files give text). */
const count = z.union(
  [
    positiveInt,
    z
      .string({ error: countMessage })
      .regex(/^\d+$/, { error: countMessage })
      .transform(Number)
      .pipe(positiveInt),
  ],
  { error: countMessage },
);

const durationMessage = (input: unknown) =>
  `expected a positive duration such as 250ms, 5s, 2m or a number of milliseconds, ${got(input)}`;
/** `250ms`, `5s`, `2m`, `1h` or milliseconds, parsed by the policy's own {@link parseDuration}. */
const duration = z
  .union([z.number(), z.string()], { error: (issue) => durationMessage(issue.input) })
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: durationMessage(value) });
      return z.NEVER;
    }
    return ms;
  });

/**
 * A value checked by a predicate. Unlike zod's default for `z.custom`, a failure does not abort the
 * refinements of the enclosing objects, so cross-field problems are still listed.
 */
const custom = <T>(check: (value: unknown) => boolean, message: string) =>
  z.custom<T>(check, { error: message, abort: false });
const fn = <T>(message: string) => custom<T>((v) => typeof v === 'function', message);

const listenerShape = {
  kind: z.enum(KINDS, {
    error: (issue) => `expected one of ${KINDS.join(', ')}, ${got(issue.input)}`,
  }),
  host: bindHost.default(EDGE_DEFAULTS.listenerHost),
  port: portSchema(0),
  upstreamPort: portSchema(1).optional(),
  originalDestination: fn<OriginalDestinationReader>('expected a function').optional(),
};

const listenerSchema = z
  .strictObject(listenerShape, { error: onTypeError('expected an object') })
  .superRefine((l, ctx) => {
    if (typeof l !== 'object' || l === null) return;
    if (l.upstreamPort !== undefined && l.kind !== 'sni') {
      ctx.addIssue({
        code: 'custom',
        path: ['upstreamPort'],
        message: 'only sni listeners have an upstream port',
      });
    }
    if (l.originalDestination !== undefined && l.kind !== 'transparent') {
      ctx.addIssue({
        code: 'custom',
        path: ['originalDestination'],
        message: 'only transparent listeners read an original destination',
      });
    }
  }, always)
  .transform((l) => ({
    ...l,
    upstreamPort: l.kind === 'sni' ? (l.upstreamPort ?? EDGE_DEFAULTS.sniUpstreamPort) : undefined,
  }));

const listenersMessage = 'at least one listener is required (explicit, transparent or sni)';
const listenersSchema = z
  .array(listenerSchema, { error: onTypeError(listenersMessage) })
  .min(1, { error: listenersMessage })
  .superRefine((listeners, ctx) => {
    if (!Array.isArray(listeners)) return;
    const seen = new Set<string>();
    for (const l of listeners as unknown[]) {
      if (typeof l !== 'object' || l === null) continue;
      const { host, port } = l as { host?: unknown; port?: unknown };
      if (typeof port !== 'number' || port === 0) continue;
      const key = `${typeof host === 'string' ? host : EDGE_DEFAULTS.listenerHost}:${port}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `${key} is listed twice` });
      seen.add(key);
    }
  }, always);

const adminShape = { host: bindHost.default(EDGE_DEFAULTS.adminHost), port: portSchema(0) };

const limitsShape = {
  maxConnections: count.default(EDGE_DEFAULTS.limits.maxConnections),
  maxConnectionsPerSource: count.default(EDGE_DEFAULTS.limits.maxConnectionsPerSource),
  helloTimeout: duration.default(EDGE_DEFAULTS.limits.helloTimeout),
  helloMaxBytes: count
    .refine((n) => n >= MIN_HELLO_MAX_BYTES, { error: `at least ${MIN_HELLO_MAX_BYTES} bytes` })
    .default(EDGE_DEFAULTS.limits.helloMaxBytes),
  connectTimeout: duration.default(EDGE_DEFAULTS.limits.connectTimeout),
  idleTimeout: duration.default(EDGE_DEFAULTS.limits.idleTimeout),
  drainTimeout: duration.default(EDGE_DEFAULTS.limits.drainTimeout),
} satisfies Record<keyof EdgeLimits, z.ZodType>;

const serversMessage = 'expected a list of addresses such as 10.0.0.2 or 10.0.0.2:53';
const dnsShape = {
  servers: z
    .array(
      z
        .string({
          error: (issue) => `expected an address such as 10.0.0.2 or 10.0.0.2:53, ${got(issue.input)}`,
        })
        .min(1, { error: 'expected an address such as 10.0.0.2 or 10.0.0.2:53, got ""' }),
      { error: serversMessage },
    )
    .optional(),
  minRetention: duration.default(EDGE_DEFAULTS.dns.minRetention),
  maxRetention: duration.default(EDGE_DEFAULTS.dns.maxRetention),
  maxNames: count.default(EDGE_DEFAULTS.dns.maxNames),
  timeout: duration.default(EDGE_DEFAULTS.dns.timeout),
  listen: z
    .array(
      z.union(
        [
          z.string().transform((text, ctx) => {
            const parsed = parseListenAddress(text, EDGE_DEFAULTS.listenerHost);
            if (typeof parsed === 'string') {
              ctx.addIssue({ code: 'custom', message: parsed });
              return z.NEVER;
            }
            return parsed;
          }),
          z.strictObject({ host: bindHost.default(EDGE_DEFAULTS.listenerHost), port: portSchema(0) }),
        ],
        { error: (issue) => `expected host:port or { host, port }, ${got(issue.input)}` },
      ),
      { error: 'expected a list of DNS listen addresses such as 0.0.0.0:53' },
    )
    .default([]),
  minTtl: duration.default(EDGE_DEFAULTS.dns.minTtl),
  refusal: z
    .enum(['refused', 'nxdomain'], { error: (issue) => `expected refused or nxdomain, ${got(issue.input)}` })
    .default(EDGE_DEFAULTS.dns.refusal),
  rateLimit: count.default(EDGE_DEFAULTS.dns.rateLimit),
  hostsFile: z
    .union([z.string().min(1), z.literal(false)], {
      error: (issue) => `expected a file path, or false to ask DNS for every name, ${got(issue.input)}`,
    })
    .default(EDGE_DEFAULTS.dns.hostsFile),
} satisfies Record<keyof EdgeDns, z.ZodType>;

const mappingOf = <S extends z.core.$ZodLooseShape>(shape: S, message: string) =>
  z.strictObject(shape, { error: onTypeError(message) });

const booleanSchema = z.boolean({ error: 'expected true or false' });
const policyMessage = 'required: a policy file path or a Policy (from loadPolicyFile)';

const optionsShape = {
  policy: custom<string | Policy>(
    (v) => (typeof v === 'string' && v.length > 0) || isPolicy(v),
    policyMessage,
  ),
  listeners: listenersSchema,
  admin: mappingOf(adminShape, 'expected { host, port }').optional(),
  limits: mappingOf(limitsShape, 'expected a mapping of limits').prefault({}),
  dns: mappingOf(dnsShape, 'expected a mapping of DNS settings').prefault({}),
  watch: booleanSchema.optional(),
  watchDebounce: duration.default(EDGE_DEFAULTS.watchDebounce),
  signals: booleanSchema.default(EDGE_DEFAULTS.signals),
  events: z.custom<EventEmitter>().optional(),
  logger: z.custom<Logger>().optional(),
  destination: z.custom<DestinationStream>().optional(),
  resolver: custom<EdgeResolver>(
    (v) =>
      typeof v === 'object' &&
      v !== null &&
      typeof (v as EdgeResolver).resolve4 === 'function' &&
      typeof (v as EdgeResolver).resolve6 === 'function',
    'expected an object with resolve4 and resolve6 (like dns.promises.Resolver)',
  ).optional(),
  lookup: fn<net.LookupFunction>('expected a function').optional(),
  registry: z.custom<Registry>().optional(),
  defaultMetrics: booleanSchema.default(EDGE_DEFAULTS.defaultMetrics),
  workers: count.default(EDGE_DEFAULTS.workers),
  proxyAuth: z
    .string({ error: 'expected the path of the proxy credentials file' })
    .min(1, { error: 'expected the path of the proxy credentials file' })
    .optional(),
} satisfies Record<keyof EdgeOptions, z.ZodType>;

const optionsSchema = z
  .strictObject(optionsShape, { error: onTypeError('options must be an object') })
  .superRefine((o, ctx) => {
    if (typeof o !== 'object' || o === null) return;
    // Problems that name two options have no single path: the message names both.
    if (o.resolver !== undefined && o.lookup !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'resolver, lookup: give one of them, not both' });
    }
    const dns = o.dns as { servers?: unknown } | undefined;
    if (o.resolver !== undefined && typeof dns === 'object' && dns?.servers !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'resolver, dns.servers: a custom resolver chooses its own servers',
      });
    }
    const listen = (o.dns as { listen?: unknown } | undefined)?.listen;
    if (typeof o.workers === 'number' && o.workers > 1 && Array.isArray(listen) && listen.length > 0) {
      // The guard's bindings feed the claims check of the process that holds them.
      ctx.addIssue({
        code: 'custom',
        message:
          'workers, dns.listen: the DNS guard runs in a single-process edge; set workers: 1 (--workers 1)',
      });
    }
  }, always)
  .transform(
    (o): ResolvedEdgeOptions => ({
      ...o,
      admin: o.admin,
      dns: { ...o.dns, servers: o.dns.servers },
      // Watching only makes sense for a file; a Policy object is replaced through reload(next).
      watch: o.watch ?? typeof o.policy === 'string',
      events: o.events,
      logger: o.logger,
      destination: o.destination,
      resolver: o.resolver,
      lookup: o.lookup,
      registry: o.registry,
      proxyAuth: o.proxyAuth,
    }),
  );

/** Known keys of each object of the options, for "did you mean" hints. */
const KNOWN_KEYS = {
  options: Object.keys(optionsShape),
  listener: Object.keys(listenerShape),
  admin: Object.keys(adminShape),
  limits: Object.keys(limitsShape),
  dns: Object.keys(dnsShape),
} as const;

function knownKeysAt(path: readonly PropertyKey[]): readonly string[] {
  const last = path.at(-1);
  if (path.length === 0) return KNOWN_KEYS.options;
  if (typeof last === 'number') return KNOWN_KEYS.listener;
  if (last === 'admin' || last === 'limits' || last === 'dns') return KNOWN_KEYS[last];
  return [];
}

/** One problem with the options: where (a path into the input) and what. */
export interface OptionProblem {
  path: PropertyKey[];
  message: string;
  /** Set for unknown keys: `path` then ends with the key, and a position should point at the key. */
  unknownKey?: boolean;
}

/** `listeners[0].port`, `limits.helloTimeout`. */
export function formatOptionPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** `path: message`, or the message alone for a problem of the whole options. */
export function formatOptionProblem(p: OptionProblem): string {
  return p.path.length === 0 ? p.message : `${formatOptionPath(p.path)}: ${p.message}`;
}

/**
 * Turns zod issues into problems, one per unknown key, with "did you mean" hints among `knownKeys(path)`,
 * the keys of the object at that path.
 */
export function optionProblemsOf(
  error: z.ZodError,
  input: unknown,
  knownKeys: (path: readonly PropertyKey[]) => readonly string[],
): OptionProblem[] {
  const problems: OptionProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code !== 'unrecognized_keys') {
      problems.push({ path: [...issue.path], message: issue.message });
      continue;
    }
    const owner = valueAt(input, issue.path);
    for (const key of issue.keys) {
      // An option set to undefined is an option not given (as with `{ ...defaults, x: undefined }`).
      if (
        typeof owner === 'object' &&
        owner !== null &&
        (owner as Record<string, unknown>)[key] === undefined
      ) {
        continue;
      }
      const known = knownKeys(issue.path);
      problems.push({
        path: [...issue.path, key],
        message: `unknown option (${hintFor(key, known)})`,
        unknownKey: true,
      });
    }
  }
  return problems;
}

function hintFor(key: string, known: readonly string[]): string {
  const guess = didYouMean(key, known);
  return guess ? `did you mean "${guess}"?` : `known options here: ${known.join(', ')}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const seg of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

/**
 * Validates with the schema, like {@link resolveEdgeOptions} but without throwing: every problem with its
 * path into `input` (so a caller can say which flag or place in a file it came from), or the options with
 * every default applied.
 */
export function validateEdgeOptions(
  input: unknown,
): { ok: true; options: ResolvedEdgeOptions } | { ok: false; problems: OptionProblem[] } {
  const result = optionsSchema.safeParse(input);
  if (result.success) return { ok: true, options: result.data };
  return { ok: false, problems: optionProblemsOf(result.error, input, knownKeysAt) };
}

/**
 * Validates options and applies defaults (all from {@link EDGE_DEFAULTS}): listener `host` `127.0.0.1`,
 * sni `upstreamPort` `443`, admin `host` `127.0.0.1`, every limit and DNS setting, `watchDebounce` `250ms`,
 * `watch` `true` for a policy path, `signals` `false`, `defaultMetrics` `true`. Durations become milliseconds;
 * counts given as text become numbers.
 *
 * @throws {@link EdgeConfigError} listing every problem at once, each as `path: message`; unknown options
 * come with a "did you mean" hint.
 */
export function resolveEdgeOptions(input: EdgeOptions): ResolvedEdgeOptions {
  const result = validateEdgeOptions(input);
  if (!result.ok) throw new EdgeConfigError(result.problems.map(formatOptionProblem));
  return result.options;
}

function isPolicy(value: unknown): value is Policy {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Policy).decide === 'function' &&
    typeof (value as Policy).hash === 'string'
  );
}

/**
 * Parses a listen address: `host:port`, `[v6]:port` or `:port` (bind to `defaultHost`).
 *
 * @returns The host and port, or a message saying what is wrong.
 */
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

/**
 * Parses an sni listener: `host:port` or `host:port=upstreamPort`.
 *
 * @returns The host, port and upstream port if given, or a message saying what is wrong.
 */
export function parseSniListen(text: string): { host: string; port: number; upstreamPort?: number } | string {
  const eq = text.lastIndexOf('=');
  const listen = parseListenAddress(eq < 0 ? text : text.slice(0, eq), EDGE_DEFAULTS.listenerHost);
  if (typeof listen === 'string') return listen;
  if (eq < 0) return listen;
  const up = text.slice(eq + 1);
  if (!/^\d{1,5}$/.test(up) || Number(up) < 1 || Number(up) > 65535) return `invalid upstream port "${up}"`;
  return { ...listen, upstreamPort: Number(up) };
}
