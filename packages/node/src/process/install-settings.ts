import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { EgressOptionsError } from '@egress-guard/policy';
import type { EgressGuard } from '../egress-guard.js';
import type { GuardOptions } from '../guard/guard-options.js';
import type { HookSwitches, InstalledSettings, InstalledState, InstallOrigin } from './installed-state.js';

/** The options `install()` takes: the guard's, plus hook switches. */
export interface InstallSettingsInput extends GuardOptions {
  hooks?: Partial<HookSwitches> | undefined;
}

/** Every hook on unless turned off explicitly. */
export function hookSwitches(hooks: Partial<HookSwitches> | undefined): HookSwitches {
  return {
    fetch: hooks?.fetch !== false,
    undici: hooks?.undici !== false,
    http: hooks?.http !== false,
    http2: hooks?.http2 !== false,
    dns: hooks?.dns !== false,
    workers: hooks?.workers !== false,
  };
}

/**
 * A policy file as one name: absolute and with symlinks resolved, so that `./egress.yaml`, its absolute
 * path and a Kubernetes ConfigMap's `..data` symlink all compare equal.
 */
export function canonicalPolicyFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  const absolute = resolve(file);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/** The policy file and service options resolve to, the way `createGuard()` resolves them. */
function resolvedRequest(options: InstallSettingsInput): { policyFile?: string; service?: string } {
  const file = options.policyFile ?? (options.policy ? undefined : process.env.EGRESS_GUARD_POLICY);
  const service = options.service ?? process.env.EGRESS_GUARD_SERVICE;
  return { policyFile: file || undefined, service: service || undefined };
}

/** What the guard just created from `options` was asked for, for later `install()` calls to compare. */
export function settingsOf(
  guard: EgressGuard,
  options: InstallSettingsInput,
  origin: InstallOrigin,
): InstalledSettings {
  const { policyFile, service } = resolvedRequest(options);
  return {
    origin,
    policyFile: canonicalPolicyFile(policyFile),
    policyHash: guard.policy.hash,
    service,
    hooks: hookSwitches(options.hooks),
    options,
  };
}

const ORIGINS: Record<InstallOrigin, string> = {
  preload: 'by the preload (@egress-guard/node/register)',
  'install()': 'by an earlier install()',
  worker: 'in this worker thread, by the guard of the thread that started it',
};

function describePolicy(file: string | undefined, hash: string): string {
  return file ? `policy file ${file}` : `a policy given as an object (hash ${hash.slice(0, 12)})`;
}

/** Which requested settings the installed guard does not have: each would be a second policy. */
function conflictsWith(installed: InstalledState, options: InstallSettingsInput): string[] {
  const have = installed.settings;
  const { policyFile, service } = resolvedRequest(options);
  const conflicts: string[] = [];
  if (options.policy) {
    const hash = options.policy.hash;
    if (hash !== have.policyHash && hash !== installed.guard.policy.hash)
      conflicts.push(
        `${describePolicy(undefined, hash)} instead of ${describePolicy(have.policyFile, have.policyHash)}`,
      );
  } else if (policyFile && canonicalPolicyFile(policyFile) !== have.policyFile) {
    conflicts.push(
      `policy file ${canonicalPolicyFile(policyFile)} instead of ${describePolicy(have.policyFile, have.policyHash)}`,
    );
  }
  if (service !== undefined && service !== have.service)
    conflicts.push(`service "${service}" instead of ${have.service ? `"${have.service}"` : 'none'}`);
  const wanted = hookSwitches(options.hooks);
  for (const [hook, on] of Object.entries(wanted) as Array<[keyof HookSwitches, boolean]>)
    if (on && !have.hooks[hook]) conflicts.push(`the ${hook} hook, which the installed guard has turned off`);
  return conflicts;
}

// Options that change where events go or how the guard works, but not what it allows.
const NON_POLICY_OPTIONS = [
  'logger',
  'destination',
  'format',
  'flushOnExit',
  'envelope',
  'logQueryStrings',
  'lookup',
  'ca',
  'now',
  'watch',
] as const;

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'function' || typeof b === 'function') return false;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    // A logger or a stream (circular): only the same object is the same.
    return false;
  }
}

/** Options given explicitly that the installed guard does not have, and keeps not having. */
function ignoredBy(installed: InstalledState, options: InstallSettingsInput): string[] {
  const given = installed.settings.options as Record<string, unknown>;
  const asked = options as Record<string, unknown>;
  const ignored = NON_POLICY_OPTIONS.filter(
    (k) => asked[k] !== undefined && !sameValue(asked[k], given[k]),
  ).map(String);
  for (const [hook, on] of Object.entries(installed.settings.hooks))
    if (on && options.hooks?.[hook as keyof HookSwitches] === false) ignored.push(`hooks.${hook}: false`);
  return ignored;
}

/**
 * What `install()` does when a guard is already installed in this thread (by the preload, another
 * `install()`, or another copy of the SDK): one guard per process, so it returns the installed guard,
 * provided the options ask for nothing it does not enforce.
 *
 * - A different policy (file, object or service), or a hook the installed guard has off: throws
 *   EgressOptionsError, before anything changes. Returning the installed guard would leave the caller
 *   believing its own policy is in force; installing a second would decide every request twice, by two
 *   policies. A security engineer wants the start-up to fail, loudly, with both policies named.
 * - Options that do not change what is allowed (logger, destination, ...): the installed guard is returned
 *   and a process warning (`EGRESS_GUARD_OPTIONS_IGNORED`) names what was ignored.
 */
export function adoptInstalled(installed: InstalledState, options: InstallSettingsInput): EgressGuard {
  const have = installed.settings;
  const conflicts = conflictsWith(installed, options);
  const where = `egress-guard is already installed in this process ${ORIGINS[have.origin]}, with ${describePolicy(have.policyFile, have.policyHash)}${have.service ? ` (service "${have.service}")` : ''}`;
  if (conflicts.length > 0) {
    throw new EgressOptionsError(
      `${where}; install() asked for ${conflicts.join(', and ')}. One guard, and one policy, per process: remove the preload or the other install(), or call install() without options (installedGuard() returns the guard in force)`,
    );
  }
  const ignored = ignoredBy(installed, options);
  if (ignored.length > 0) {
    process.emitWarning(
      `${where}; install() returns that guard and ignores the options it was given: ${ignored.join(', ')}`,
      { code: 'EGRESS_GUARD_OPTIONS_IGNORED' },
    );
  }
  return installed.guard;
}
