/**
 * The flags of `egress-guard edge`, read with `node:util` `parseArgs` from one table ({@link EDGE_FLAGS}),
 * merged with the `--config` file the edge package reads, and turned into `EdgeOptions`. Every problem is
 * listed at once, each said in the user's terms: the flag that gave the value, or its place in the file.
 *
 * Adding a flag is one entry in {@link EDGE_FLAGS}. A flag whose `setting` is an option path of
 * `EdgeOptions` (`workers`, `dns.minTtl`) needs nothing else here: its value goes to that option, the config
 * file's key of the same path is its fallback (add a new top-level key to the edge's config-file.ts shape),
 * and the option's validation problems are reported against the flag.
 */
import { availableParallelism } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type ConfigDocument,
  type ConfigProblem,
  EDGE_DEFAULTS,
  EdgeConfigError,
  type EdgeFileSettings,
  type EdgeOptions,
  formatOptionProblem,
  type ListenerKind,
  type ListenerOptions,
  type OptionProblem,
  parseListenAddress,
  parseSniListen,
  problemInFile,
  readEdgeConfigFile,
  validateEdgeOptions,
} from '@egress-guard/edge';
import { didYouMean, formatProblem } from '@egress-guard/policy';

/** One flag of `egress-guard edge`. */
export interface EdgeFlag {
  /** The flag without `--`. */
  name: string;
  /** `value`: one value; `list`: repeatable, each adds one; `switch`: no value, sets {@link EdgeFlag.value}. */
  kind: 'value' | 'list' | 'switch';
  /**
   * What it sets, as a dotted path: for most flags the `EdgeOptions` path (`limits.helloTimeout`), which is
   * also the key in the config file. Special: `config` (the file itself), `policy` (a path, relative to the
   * config file when it comes from there), `explicit`/`transparent`/`sni` (listener addresses), `admin`.
   */
  setting: string;
  /** The value a switch sets. */
  value?: unknown;
  /** Help: the argument (`DURATION`, `HOST:PORT`); none for switches. */
  arg?: string;
  /** Help: what it does and its default. */
  help: string;
  /** Listed under "listeners" in the help rather than "options". */
  listener?: boolean;
}

/** Every flag of `egress-guard edge`, in the order of the help. */
export const EDGE_FLAGS: readonly EdgeFlag[] = [
  {
    name: 'policy',
    kind: 'value',
    setting: 'policy',
    arg: 'FILE',
    help: 'the policy file the edge enforces (required)',
  },
  {
    name: 'explicit',
    kind: 'list',
    setting: 'explicit',
    arg: 'HOST:PORT',
    help: 'HTTP proxy (CONNECT and absolute-form http://), e.g. 127.0.0.1:3128',
    listener: true,
  },
  {
    name: 'transparent',
    kind: 'list',
    setting: 'transparent',
    arg: 'HOST:PORT',
    help: 'iptables/nftables REDIRECT target, e.g. 0.0.0.0:15001',
    listener: true,
  },
  {
    name: 'sni',
    kind: 'list',
    setting: 'sni',
    arg: 'HOST:PORT[=UPSTREAM]',
    help: 'routed by TLS SNI (weaker: no fact to check), upstream port default 443',
    listener: true,
  },
  {
    name: 'config',
    kind: 'value',
    setting: 'config',
    arg: 'FILE',
    help: 'JSON or YAML file with the same settings (flags win)',
  },
  {
    name: 'admin',
    kind: 'value',
    setting: 'admin',
    arg: 'HOST:PORT',
    help: `/metrics, /healthz, /readyz (default ${EDGE_DEFAULTS.cliAdmin})`,
  },
  { name: 'no-admin', kind: 'switch', setting: 'admin', value: false, help: 'no admin server' },
  {
    name: 'max-connections',
    kind: 'value',
    setting: 'limits.maxConnections',
    arg: 'N',
    help: `default ${EDGE_DEFAULTS.limits.maxConnections}`,
  },
  {
    name: 'max-connections-per-source',
    kind: 'value',
    setting: 'limits.maxConnectionsPerSource',
    arg: 'N',
    help: `default ${EDGE_DEFAULTS.limits.maxConnectionsPerSource}`,
  },
  {
    name: 'hello-timeout',
    kind: 'value',
    setting: 'limits.helloTimeout',
    arg: 'DURATION',
    help: 'default 10s',
  },
  {
    name: 'hello-max-bytes',
    kind: 'value',
    setting: 'limits.helloMaxBytes',
    arg: 'N',
    help: `default ${EDGE_DEFAULTS.limits.helloMaxBytes}`,
  },
  {
    name: 'connect-timeout',
    kind: 'value',
    setting: 'limits.connectTimeout',
    arg: 'DURATION',
    help: "default 10s (a rule's lower timeouts.connect wins)",
  },
  {
    name: 'idle-timeout',
    kind: 'value',
    setting: 'limits.idleTimeout',
    arg: 'DURATION',
    help: "default 10m (a rule's lower timeouts.idle wins)",
  },
  {
    name: 'drain-timeout',
    kind: 'value',
    setting: 'limits.drainTimeout',
    arg: 'DURATION',
    help: 'default 30s',
  },
  {
    name: 'dns-server',
    kind: 'list',
    setting: 'dns.servers',
    arg: 'ADDR[:PORT]',
    help: "resolver for names the edge dials (default: the system's)",
  },
  {
    name: 'dns-min-retention',
    kind: 'value',
    setting: 'dns.minRetention',
    arg: 'DURATION',
    help: 'default 5s',
  },
  {
    name: 'dns',
    kind: 'list',
    setting: 'dns.listen',
    arg: 'HOST:PORT',
    help: "DNS guard on UDP and TCP (repeatable): forwards to --dns-server only names the client's policy allows",
  },
  {
    name: 'dns-min-ttl',
    kind: 'value',
    setting: 'dns.minTtl',
    arg: 'DURATION',
    help: 'shortest time a DNS guard answer binds name to address, default 5m',
  },
  {
    name: 'dns-refusal',
    kind: 'value',
    setting: 'dns.refusal',
    arg: 'refused|nxdomain',
    help: 'how the DNS guard answers a refused name, default refused',
  },
  {
    name: 'dns-rate-limit',
    kind: 'value',
    setting: 'dns.rateLimit',
    arg: 'N',
    help: `DNS guard questions per second per source, default ${EDGE_DEFAULTS.dns.rateLimit}`,
  },
  {
    name: 'hosts-file',
    kind: 'value',
    setting: 'dns.hostsFile',
    arg: 'FILE',
    help: 'names answered before DNS, re-read on change (default /etc/hosts)',
  },
  {
    name: 'no-hosts-file',
    kind: 'switch',
    setting: 'dns.hostsFile',
    value: false,
    help: 'ask DNS for every name, localhost included',
  },
  {
    name: 'proxy-auth',
    kind: 'value',
    setting: 'proxyAuth',
    arg: 'FILE|DIR',
    help: 'service credentials for --explicit: required, and they choose the service (docs/edge.md)',
  },
  {
    name: 'no-watch',
    kind: 'switch',
    setting: 'watch',
    value: false,
    help: 'do not reload when the policy file changes (SIGHUP still reloads)',
  },
  { name: 'watch-debounce', kind: 'value', setting: 'watchDebounce', arg: 'DURATION', help: 'default 250ms' },
  {
    name: 'workers',
    kind: 'value',
    setting: 'workers',
    arg: 'N',
    help: 'processes accepting connections on the same listeners, default: the number of cores (1: one process)',
  },
];

const LISTENER_KINDS = ['explicit', 'transparent', 'sni'] as const satisfies readonly ListenerKind[];
/** Settings that are not copied to the option of the same path. */
const SPECIAL = new Set<string>(['config', 'policy', 'admin', ...LISTENER_KINDS]);

/** The help of `egress-guard edge`, made from {@link EDGE_FLAGS}. */
export function edgeUsage(): string {
  const line = (f: EdgeFlag) => {
    const head = `  --${f.name}${f.arg ? ` ${f.arg}` : ''}`;
    return `${head.padEnd(32)}${head.length >= 32 ? ' ' : ''}${f.help}`;
  };
  return [
    'usage: egress-guard edge --policy egress.yaml [listeners] [options]',
    '',
    'listeners (each may be repeated; at least one):',
    ...EDGE_FLAGS.filter((f) => f.listener).map(line),
    '',
    'options:',
    ...EDGE_FLAGS.filter((f) => !f.listener).map(line),
    '  --help, -h                    this help',
  ].join('\n');
}

/** Values given on the command line, by setting, with the flag that gave each. */
type FlagValues = Map<string, { flag: EdgeFlag; value: unknown }>;

/** Where a value came from: a flag, or a place in the config file (a path into it). */
type Origin = { flag: EdgeFlag } | { file: PropertyKey[] };

/**
 * Turns `egress-guard edge` flags (and the `--config` file they name) into `EdgeOptions` for `startEdge`,
 * with `signals: true`, `watch: true` and the admin server on `EDGE_DEFAULTS.cliAdmin` unless `--no-admin`.
 * Flags win over the file: listener flags replace the file's listeners of the same kind, and settings
 * inside `limits` and `dns` win key by key. Paths in the file are relative to the file. The options are
 * validated here so that every problem can name its flag or its place.
 *
 * @throws `EdgeConfigError` listing every problem at once: flag problems name the flag; problems in the
 * file are `file:line:column path: message`, unknown keys with a "did you mean" hint.
 */
export function parseEdgeArgs(argv: readonly string[]): EdgeOptions {
  const problems: string[] = [];
  const flags = readFlags(argv, problems);
  const flagValue = (setting: string) => flags.get(setting)?.value;

  // The config file: its problems have places, listed after the others in file order.
  const placed: ConfigProblem[] = [];
  let file: EdgeFileSettings = {};
  let doc: ConfigDocument | undefined;
  let fileDir = process.cwd();
  const configPath = flagValue('config') as string | undefined;
  if (configPath !== undefined) {
    const read = readEdgeConfigFile(configPath);
    if (read.unreadable) problems.push(`${configPath}: ${read.unreadable}`);
    placed.push(...read.problems);
    file = read.settings;
    doc = read.doc;
    fileDir = dirname(resolvePath(configPath));
  }
  const inFile = (path: PropertyKey[]): Origin => ({ file: path });

  // The policy path.
  const policyFlag = flags.get('policy');
  const policy =
    (policyFlag?.value as string | undefined) ??
    (file.policy === undefined ? undefined : resolvePath(fileDir, file.policy));
  const policyOrigin: Origin = policyFlag ? { flag: policyFlag.flag } : inFile(['policy']);
  // A policy key of the wrong shape in the file has been reported already.
  if (policy === undefined && !(doc && hasKey(doc.data, 'policy'))) {
    problems.push('--policy: required (the policy file the edge enforces)');
  }

  // Listeners, kind by kind.
  const listeners: ListenerOptions[] = [];
  const listenerOrigins: Origin[] = [];
  let listenerProblems = false;
  for (const kind of LISTENER_KINDS) {
    const given = flags.get(kind);
    const fromFile = file[kind];
    const texts: Array<{ text: string; origin: Origin }> = given
      ? (given.value as string[]).map((text) => ({ text, origin: { flag: given.flag } }))
      : typeof fromFile === 'string'
        ? [{ text: fromFile, origin: inFile([kind]) }]
        : (fromFile ?? []).map((text, i) => ({ text, origin: inFile([kind, i]) }));
    for (const { text, origin } of texts) {
      const parsed =
        kind === 'sni' ? parseSniListen(text) : parseListenAddress(text, EDGE_DEFAULTS.listenerHost);
      if (typeof parsed !== 'string') {
        listeners.push({ kind, ...parsed });
        listenerOrigins.push(origin);
        continue;
      }
      listenerProblems = true;
      if ('flag' in origin) problems.push(`--${kind} ${text}: ${parsed}`);
      else placed.push(problemInFile(doc!, { path: origin.file, message: parsed }));
    }
  }
  if (listeners.length === 0 && !listenerProblems) {
    problems.push('listeners: give at least one of --explicit, --transparent, --sni');
  }

  // The admin server: on by default for the command.
  let admin: EdgeOptions['admin'];
  const adminFlag = flags.get('admin');
  const adminText = adminFlag
    ? adminFlag.value
    : file.admin === undefined
      ? EDGE_DEFAULTS.cliAdmin
      : file.admin;
  if (typeof adminText === 'string') {
    const parsed = parseListenAddress(adminText, EDGE_DEFAULTS.adminHost);
    if (typeof parsed !== 'string') admin = parsed;
    else if (adminFlag) problems.push(`--${adminFlag.flag.name} ${adminText}: ${parsed}`);
    else placed.push(problemInFile(doc!, { path: ['admin'], message: parsed }));
  }

  // Every other setting is the option of the same path: the file's, then the flags' key by key.
  // The command runs one worker per core unless told otherwise (docs/edge.md, "Workers").
  const options: Record<string, unknown> = { watch: true, workers: availableParallelism() };
  for (const [key, value] of Object.entries(file)) {
    if (SPECIAL.has(key) || value === undefined) continue;
    options[key] = isMapping(value) ? { ...value } : value;
  }
  // Files named in the config file are relative to it.
  if (typeof options.proxyAuth === 'string') options.proxyAuth = resolvePath(fileDir, options.proxyAuth);
  const fileDns = options.dns as Record<string, unknown> | undefined;
  if (typeof fileDns?.hostsFile === 'string' && fileDns.hostsFile !== '') {
    fileDns.hostsFile = resolvePath(fileDir, fileDns.hostsFile);
  }
  for (const [setting, { value }] of flags) {
    if (!SPECIAL.has(setting)) setAt(options, setting.split('.'), value);
  }
  Object.assign(options, { policy: policy ?? '', listeners, admin, signals: true });
  // The DNS guard runs in a single-process edge: one process unless workers are asked for explicitly.
  const dnsListen = (options.dns as { listen?: unknown } | undefined)?.listen;
  if (
    Array.isArray(dnsListen) &&
    dnsListen.length > 0 &&
    !flags.has('workers') &&
    file.workers === undefined
  ) {
    options.workers = 1;
  }

  const checked = validateEdgeOptions(options);
  if (!checked.ok) {
    for (const p of checked.problems) {
      const [head, second] = p.path;
      // Already reported in the flags' or the file's own terms.
      if (head === 'policy' && policy === undefined) continue;
      if (head === 'listeners' && p.path.length === 1 && listeners.length === 0) continue;
      const origin: Origin | undefined =
        head === 'policy'
          ? policyOrigin
          : head === 'listeners' && typeof second === 'number'
            ? listenerOrigins[second]
            : head === 'admin'
              ? adminFlag
                ? { flag: adminFlag.flag }
                : inFile(['admin'])
              : plainOrigin(p.path, flags);
      if (origin && 'flag' in origin) problems.push(`--${origin.flag.name}: ${p.message}`);
      else if (origin && doc) placed.push(problemInFile(doc, p, origin.file));
      else problems.push(formatOptionProblem(p));
    }
  }

  placed.sort((a, b) => a.line - b.line || a.column - b.column);
  problems.push(...placed.map((p) => formatProblem(p)));
  if (problems.length > 0) throw new EdgeConfigError(problems, 'edge arguments');
  return options as unknown as EdgeOptions;
}

/** The flag that set an option at `path` (or a parent of it), else its place in the file. */
function plainOrigin(path: OptionProblem['path'], flags: FlagValues): Origin | undefined {
  if (path.length === 0) return undefined;
  for (let n = path.length; n > 0; n--) {
    const given = flags.get(path.slice(0, n).map(String).join('.'));
    if (given) return { flag: given.flag };
  }
  return { file: path };
}

/** Reads argv with `parseArgs` into values by setting; every mistake is a problem, none stops the rest. */
function readFlags(argv: readonly string[], problems: string[]): FlagValues {
  const byName = new Map(EDGE_FLAGS.map((f) => [f.name, f]));
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(
      EDGE_FLAGS.map((f) => [f.name, { type: f.kind === 'switch' ? 'boolean' : 'string' } as const]),
    ),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: FlagValues = new Map();
  for (const token of tokens) {
    if (token.kind === 'positional') {
      problems.push(`${token.value}: unknown argument`);
      continue;
    }
    if (token.kind !== 'option') continue;
    const flag = byName.get(token.name);
    if (!flag || !token.rawName.startsWith('--')) {
      const hint = didYouMean(
        `--${token.name}`,
        EDGE_FLAGS.map((f) => `--${f.name}`),
      );
      problems.push(`${token.rawName}: unknown flag${hint ? ` (did you mean ${hint}?)` : ''}`);
      continue;
    }
    if (flag.kind === 'switch') {
      if (token.value !== undefined) problems.push(`--${flag.name}: takes no value`);
      values.set(flag.setting, { flag, value: flag.value });
      continue;
    }
    // parseArgs (not strict) takes the next argument as the value even when it is a flag.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      problems.push(`--${flag.name}: needs a value`);
      continue;
    }
    const previous = values.get(flag.setting);
    if (flag.kind === 'list') {
      values.set(flag.setting, { flag, value: [...((previous?.value as string[]) ?? []), token.value] });
    } else if (previous) problems.push(`--${flag.name}: given twice`);
    else values.set(flag.setting, { flag, value: token.value });
  }
  return values;
}

function setAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isMapping(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasKey(data: unknown, key: string): boolean {
  return isMapping(data) && Object.hasOwn(data, key);
}
