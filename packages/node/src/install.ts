import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { createGuard, type EgressGuard } from './egress-guard.js';
import type { GuardOptions } from './guard/guard-options.js';
import { patchDns } from './hooks/dns.js';
import { patchFetch } from './hooks/fetch.js';
import { patchHttp } from './hooks/http.js';
import { patchHttp2 } from './hooks/http2.js';
import { patchProcessBinding } from './hooks/process-binding.js';
import { patchSocketConnect } from './hooks/socket-connect.js';
import { patchTlsConnect } from './hooks/tls-connect.js';
import { patchUndiciModules } from './hooks/undici-module.js';
import { adoptInstalled, settingsOf } from './process/install-settings.js';
import {
  type InstalledState,
  type InstallOrigin,
  newInstalledState,
  readInstalled,
  writeInstalled,
} from './process/installed-state.js';
import { patchWorkerThreads, workerPlanFor } from './process/worker-threads.js';

/** Options of `install()`: the guard's options, plus which hooks to install (all by default). */
export interface InstallOptions extends GuardOptions {
  /**
   * Turn single hooks off. Every hook is on by default; the socket layer is always on. `workers`: worker
   * threads started after `install()` get the same guard (or are refused when they cannot).
   */
  hooks?:
    | { fetch?: boolean; undici?: boolean; http?: boolean; http2?: boolean; dns?: boolean; workers?: boolean }
    | undefined;
}

/**
 * Installs the guard process-wide: global fetch and WebSocket, undici (every copy it can find),
 * http/https/http2, net/tls, dns, and worker threads started afterwards.
 * Throws EgressPolicyError or EgressOptionsError, before patching anything, if the policy or options are bad.
 *
 * One guard per process, whichever copy of the SDK installed it (the preload, the ESM or the CommonJS
 * build): when one is installed, `install()` returns it, provided the options ask for nothing it does not
 * enforce. Options naming another policy file or policy, another service, or a hook the installed guard
 * has off throw EgressOptionsError (never two policies, never a caller silently left with another
 * policy than the one it named); options that do not change what is allowed (`logger`, `destination`,
 * ...) are ignored with a process warning, code `EGRESS_GUARD_OPTIONS_IGNORED`.
 */
export function install(options: InstallOptions = {}): EgressGuard {
  return installAs('install()', options);
}

/**
 * `install()`, saying who installs (the preload, a worker's preload): errors about a conflicting second
 * `install()` name it. Internal: the preload entry's.
 */
export function installAs(origin: InstallOrigin, options: InstallOptions): EgressGuard {
  const existing = readInstalled();
  if (existing) return adoptInstalled(existing, options);
  const guard = createGuard(options);
  const state = newInstalledState(guard, settingsOf(guard, options, origin));
  // Recorded before patching: a patch that runs code (e.g. a module it loads) already sees the guard.
  writeInstalled(state);
  patchAll(state);
  // ESM importers of node:http etc. see the patched functions only after this.
  syncBuiltinESMExports();
  return guard;
}

function patchAll(state: InstalledState): void {
  // Read at each call, from the process-wide record: the hooks of whichever copy patched serve the guard
  // every copy returns, and go quiet as soon as uninstall() (from any copy) clears the record.
  const current = () => readInstalled()?.guard;
  const { restore, guard } = state;
  const { hooks } = state.settings;
  restore.push(patchSocketConnect(current), patchTlsConnect(current), patchProcessBinding(current));
  if (hooks.dns) restore.push(patchDns(current));
  if (hooks.fetch) restore.push(patchFetch(guard));
  if (hooks.undici) restore.push(patchUndiciModules(current, undiciSearchPaths()));
  if (hooks.http) restore.push(patchHttp(current));
  if (hooks.http2) restore.push(patchHttp2(current));
  if (hooks.workers) restore.push(patchWorkerThreads(() => planWhileInstalled()));
}

function planWhileInstalled() {
  const state = readInstalled();
  return state ? workerPlanFor(state) : undefined;
}

/**
 * Restores everything `install()` patched and closes the guard, whichever copy of the SDK installed it.
 * Harmless when nothing is installed.
 */
export async function uninstall(): Promise<void> {
  const current = readInstalled();
  if (!current) return;
  writeInstalled(undefined);
  for (const restore of current.restore.reverse()) restore();
  syncBuiltinESMExports();
  await current.guard.close();
}

/** The guard installed in this process (by `install()` or the preload, from any copy of the SDK), if any. */
export function installedGuard(): EgressGuard | undefined {
  return readInstalled()?.guard;
}

/** Where copies of undici may be: beside this package, and the application's (cwd and main module). */
function undiciSearchPaths(): string[] {
  const paths = [join(process.cwd(), 'package.json')];
  try {
    paths.unshift(createRequire(join(process.cwd(), 'noop.js')).resolve('@egress-guard/node'));
  } catch {
    // not resolvable from cwd: fine
  }
  paths.unshift(typeof __filename === 'string' ? __filename : new URL(import.meta.url).pathname);
  const main = typeof require === 'function' ? require.main?.filename : process.argv[1];
  if (main) paths.push(main);
  return paths;
}
