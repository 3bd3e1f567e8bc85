import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import workerThreads, { SHARE_ENV, type WorkerOptions } from 'node:worker_threads';
import { EgressOptionsError } from '@egress-guard/policy';
import { canonicalPolicyFile } from './install-settings.js';
import type { InstalledState } from './installed-state.js';
import { encodeWorkerConfig, WORKER_CONFIG_ENV } from './worker-config.js';

/** How to guard a worker: the preload to run in it, and the settings to give that preload. */
export interface WorkerGuardPlan {
  /** Absolute path of the CommonJS preload (dist/register.cjs). */
  preload: string;
  /** The configuration (env value), given the worker's NODE_OPTIONS before the preload was added. */
  config(nodeOptions: string | null): string;
  /** Why a worker sharing this thread's env (SHARE_ENV) would not get this guard; undefined if it would. */
  sharedEnvProblem(): string | undefined;
}

type WorkerClass = typeof workerThreads.Worker;

/**
 * Guards every worker thread started after `install()`. A worker is a new JavaScript realm with its own,
 * unpatched `net`, `fetch` and `undici`; Node runs `--import` preloads only in workers started from a
 * file (not `eval: true`), and neither kind of preload when the caller sets `execArgv`. So each new
 * Worker gets the SDK's CommonJS preload through NODE_OPTIONS in its env (which Node parses for a worker
 * given an env, on Node 20-26, whatever its execArgv), and this thread's settings in another variable;
 * the preload installs the same guard before the worker's code runs, then puts the env back.
 *
 * A worker that cannot be guarded is not started: the constructor throws EgressOptionsError.
 */
export function patchWorkerThreads(plan: () => WorkerGuardPlan | undefined): () => void {
  const Original: WorkerClass = workerThreads.Worker;
  // A subclass, so that `instanceof Worker` and static members keep working for the application.
  class Worker extends Original {
    constructor(filename: string | URL, options?: WorkerOptions) {
      const current = plan();
      const guarded = current ? guardedOptions(current, options ?? {}) : options;
      try {
        super(filename, guarded);
      } catch (error) {
        throw explain(error, guarded !== options);
      }
    }
  }
  Object.defineProperty(Worker, 'name', { value: 'Worker' });
  workerThreads.Worker = Worker;
  return () => {
    if (workerThreads.Worker === Worker) workerThreads.Worker = Original;
  };
}

/** The worker's options with the preload and the configuration added. */
function guardedOptions(plan: WorkerGuardPlan, options: WorkerOptions): WorkerOptions {
  if (options.env === SHARE_ENV) return sharedEnvOptions(plan, options);
  // Not an object: Node rejects it with its own error.
  if (options.env !== undefined && (typeof options.env !== 'object' || options.env === null)) return options;
  // Node's default env for a worker is a copy of this thread's process.env, taken now: the same here.
  const env: Record<string, string | undefined> = { ...((options.env as NodeJS.ProcessEnv) ?? process.env) };
  const given = env.NODE_OPTIONS === undefined ? null : String(env.NODE_OPTIONS);
  const rest = withoutTitle(given ?? '');
  // First, so that the guard is in place before any other preload of the worker runs.
  env.NODE_OPTIONS = `--require ${quoted(plan.preload)}${rest ? ` ${rest}` : ''}`;
  env[WORKER_CONFIG_ENV] = plan.config(given);
  return { ...options, env };
}

/**
 * A worker that shares this thread's env cannot be given variables of its own: the preload goes in its
 * execArgv, and it reads the policy from the shared EGRESS_GUARD_POLICY, which must be this guard's.
 */
function sharedEnvOptions(plan: WorkerGuardPlan, options: WorkerOptions): WorkerOptions {
  const problem = plan.sharedEnvProblem();
  if (problem) {
    throw new EgressOptionsError(
      `egress-guard cannot guard this worker thread: it shares this thread's environment (env: SHARE_ENV), and ${problem}; give the worker its own env (the default), or name the guard's policy in EGRESS_GUARD_POLICY`,
    );
  }
  const execArgv = options.execArgv ?? process.execArgv;
  if (!Array.isArray(execArgv)) return options;
  return { ...options, execArgv: ['--require', plan.preload, ...execArgv] };
}

/**
 * Node refuses, in a worker's env or execArgv, a few flags it accepts for the process. `--title` is the one
 * found in NODE_OPTIONS in practice; a process has one title, which a worker cannot set anyway.
 */
function withoutTitle(nodeOptions: string): string {
  return nodeOptions
    .replace(/(^|\s)--title(=("[^"]*"|\S*)|\s+("[^"]*"|\S+))/g, '$1')
    .replace(/\s+/g, ' ')
    .trim();
}

/** A path as one NODE_OPTIONS argument (Node's parser takes double quotes and backslash escapes). */
function quoted(path: string): string {
  return `"${path.replace(/["\\]/g, '\\$&')}"`;
}

/** Node refused the worker's flags: say why the SDK added them, and what to do. */
function explain(error: unknown, changed: boolean): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (!changed || code !== 'ERR_WORKER_INVALID_EXEC_ARGV') return error;
  const wrapped = new EgressOptionsError(
    `egress-guard cannot guard this worker thread: Node refused the flags that load the guard's preload in it (${(error as Error).message}); remove the flags Node names from NODE_OPTIONS or execArgv`,
  );
  Object.defineProperty(wrapped, 'cause', { value: error, configurable: true, writable: true });
  return wrapped;
}

let preloadFile: string | undefined;

/** dist/register.cjs: beside the built SDK, else wherever this package resolves (tests run from src). */
function workerPreload(): string {
  if (preloadFile) return preloadFile;
  const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
  const beside = join(dirname(here), 'register.cjs');
  let found: string | undefined = existsSync(beside) ? beside : undefined;
  try {
    found ??= createRequire(here).resolve('@egress-guard/node/register');
  } catch {
    // not resolvable either: refused below
  }
  if (!found?.endsWith('.cjs')) {
    throw new EgressOptionsError(
      `egress-guard cannot guard this worker thread: its preload (register.cjs) is not beside the SDK (${dirname(here)}) and @egress-guard/node/register does not resolve; was the SDK bundled? Ship @egress-guard/node as a dependency, or turn the guard off for workers with install({ hooks: { workers: false } })`,
    );
  }
  preloadFile = found;
  return found;
}

/** The plan for workers started while `state` is installed. */
export function workerPlanFor(state: InstalledState): WorkerGuardPlan {
  const { settings } = state;
  return {
    preload: workerPreload(),
    config: (nodeOptions) => encodeWorkerConfig(settings, state.guard.policy.document, nodeOptions),
    sharedEnvProblem: () => {
      const file = canonicalPolicyFile(process.env.EGRESS_GUARD_POLICY);
      const service = process.env.EGRESS_GUARD_SERVICE || undefined;
      if (!settings.policyFile) return 'the guard was installed with a policy given as an object';
      if (file !== settings.policyFile)
        return `EGRESS_GUARD_POLICY (${file ?? 'unset'}) is not the guard's policy file (${settings.policyFile})`;
      if (service !== settings.service)
        return `EGRESS_GUARD_SERVICE (${service ?? 'unset'}) is not the guard's service (${settings.service ?? 'none'})`;
      return undefined;
    },
  };
}
