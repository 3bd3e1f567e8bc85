import type { InstallSettingsInput } from './install-settings.js';
import type { HookSwitches, InstalledSettings } from './installed-state.js';

/**
 * The variable that carries the guard's settings from a thread to a worker it starts. Set only in the env
 * of a worker the SDK starts (never in the process's own), read only off the main thread, and removed
 * by the worker's preload before any application code runs.
 */
export const WORKER_CONFIG_ENV = 'EGRESS_GUARD_WORKER';

/** What a worker needs to install the same guard as the thread that started it. */
export interface WorkerConfig {
  v: 1;
  /** The policy file (absolute), or */
  policyFile?: string | undefined;
  /** the validated policy document, for a policy given as an object. */
  policyDocument?: unknown;
  service?: string | undefined;
  hooks: HookSwitches;
  watch?: boolean | undefined;
  logQueryStrings?: boolean | undefined;
  format?: InstallSettingsInput['format'];
  envelope?: InstallSettingsInput['envelope'];
  /** Extra CAs, as PEM text. */
  ca?: string[] | undefined;
  /** NODE_OPTIONS as the worker's env had it before the preload was added (null: unset), restored after. */
  nodeOptions: string | null;
}

function caText(ca: InstallSettingsInput['ca']): string[] | undefined {
  if (ca === undefined) return undefined;
  return (Array.isArray(ca) ? ca : [ca]).map((c) => c.toString());
}

/**
 * The worker configuration for a guard installed with `settings`, as the env value. Options that cannot
 * cross a thread (a logger, a destination stream, a lookup function, a clock) are left out: the worker's
 * guard writes its events to its own stdout and resolves with `dns.lookup`.
 */
export function encodeWorkerConfig(
  settings: InstalledSettings,
  document: unknown,
  nodeOptions: string | null,
): string {
  const { options } = settings;
  const config: WorkerConfig = {
    v: 1,
    // A file the guard watches is read afresh by the worker: it gets the policy in force, reloads included.
    ...(settings.policyFile ? { policyFile: settings.policyFile } : { policyDocument: document }),
    service: settings.service,
    hooks: settings.hooks,
    watch: options.watch,
    logQueryStrings: options.logQueryStrings,
    format: options.format,
    envelope: options.envelope,
    ca: caText(options.ca),
    nodeOptions,
  };
  return JSON.stringify(config);
}

/**
 * Reads the worker configuration from this worker's env, then puts the env back as the code that started
 * the worker gave it (NODE_OPTIONS without the preload, no configuration variable), so that child
 * processes and `process.env` readers see no trace of the SDK. Undefined when there is none.
 * Throws when the variable is present but unreadable: the worker must not start unguarded.
 */
export function takeWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig | undefined {
  const text = env[WORKER_CONFIG_ENV];
  if (text === undefined) return undefined;
  let config: WorkerConfig;
  try {
    config = JSON.parse(text) as WorkerConfig;
  } catch {
    throw new Error(`${WORKER_CONFIG_ENV} is not valid JSON`);
  }
  if (config?.v !== 1) throw new Error(`${WORKER_CONFIG_ENV} has an unknown layout`);
  delete env[WORKER_CONFIG_ENV];
  if (config.nodeOptions === null) delete env.NODE_OPTIONS;
  else env.NODE_OPTIONS = config.nodeOptions;
  return config;
}

/** `install()` options from a worker configuration (the policy document is compiled by the caller). */
export function workerInstallOptions(
  config: WorkerConfig,
  compile: (document: unknown) => NonNullable<InstallSettingsInput['policy']>,
): InstallSettingsInput {
  return {
    policyFile: config.policyFile,
    policy: config.policyDocument === undefined ? undefined : compile(config.policyDocument),
    // '' rather than undefined: no service means none, not whatever EGRESS_GUARD_SERVICE the worker's env has.
    service: config.service ?? '',
    hooks: config.hooks,
    watch: config.watch,
    logQueryStrings: config.logQueryStrings,
    format: config.format,
    envelope: config.envelope,
    ca: config.ca,
  };
}
