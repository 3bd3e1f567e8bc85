import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { createGuard, type EgressGuard } from './egress-guard.js';
import type { GuardOptions } from './guard-options.js';
import { patchDns } from './patches/dns.js';
import { patchFetch } from './patches/fetch.js';
import { patchHttp } from './patches/http.js';
import { patchHttp2 } from './patches/http2.js';
import { patchProcessBinding } from './patches/process-binding.js';
import { patchSocketConnect } from './patches/socket-connect.js';
import { patchTlsConnect } from './patches/tls-connect.js';
import { patchUndiciModules } from './patches/undici-module.js';

/** Options of `install()`: the guard's options, plus which hooks to install (all by default). */
export interface InstallOptions extends GuardOptions {
  /** Turn single hooks off. Every hook is on by default; the socket layer is always on. */
  hooks?: { fetch?: boolean; undici?: boolean; http?: boolean; http2?: boolean; dns?: boolean } | undefined;
}

let installed: { guard: EgressGuard; restore: Array<() => void> } | undefined;

/**
 * Installs the guard process-wide: global fetch and WebSocket, undici (every copy it can find),
 * http/https/http2, net/tls and dns. Installing twice returns the guard already installed.
 * Throws EgressPolicyError or EgressOptionsError, before patching anything, if the policy or options are bad.
 */
export function install(options: InstallOptions = {}): EgressGuard {
  if (installed) return installed.guard;
  const guard = createGuard(options);
  const current = () => installed?.guard;
  const hooks = options.hooks ?? {};
  const restore: Array<() => void> = [];
  installed = { guard, restore };
  restore.push(patchSocketConnect(current), patchTlsConnect(current), patchProcessBinding(current));
  if (hooks.dns !== false) restore.push(patchDns(current));
  if (hooks.fetch !== false) restore.push(patchFetch(guard));
  if (hooks.undici !== false) restore.push(patchUndiciModules(current, undiciSearchPaths()));
  if (hooks.http !== false) restore.push(patchHttp(current));
  if (hooks.http2 !== false) restore.push(patchHttp2(current));
  // ESM importers of node:http etc. see the patched functions only after this.
  syncBuiltinESMExports();
  return guard;
}

/** Restores everything `install()` patched and closes the guard. Harmless when nothing is installed. */
export async function uninstall(): Promise<void> {
  const current = installed;
  if (!current) return;
  installed = undefined;
  for (const restore of current.restore.reverse()) restore();
  syncBuiltinESMExports();
  await current.guard.close();
}

/** The guard `install()` installed, if any. */
export function installedGuard(): EgressGuard | undefined {
  return installed?.guard;
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
