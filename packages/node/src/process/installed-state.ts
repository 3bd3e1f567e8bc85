import type { EgressGuard } from '../egress-guard.js';
import type { GuardOptions } from '../guard/guard-options.js';

/** Every hook `install()` can turn off, and whether it is on. */
export interface HookSwitches {
  fetch: boolean;
  undici: boolean;
  http: boolean;
  http2: boolean;
  dns: boolean;
  workers: boolean;
}

/** Who installed the guard: named in errors and warnings, so that a conflict says where to look. */
export type InstallOrigin = 'preload' | 'install()' | 'worker';

/** What the installed guard was asked for, resolved: what a later `install()` is compared with. */
export interface InstalledSettings {
  origin: InstallOrigin;
  /** The policy file, absolute and with symlinks resolved; undefined for a policy given as an object. */
  policyFile: string | undefined;
  /** The hash of the policy at install time (a reload changes the guard's, not this one). */
  policyHash: string;
  service: string | undefined;
  hooks: HookSwitches;
  /** The options as given, for the worker configuration and for warnings about ignored options. */
  options: GuardOptions;
}

/** The process-wide record of the installed guard. */
export interface InstalledState {
  /** Layout of this record: a copy of the SDK that finds a layout it does not know refuses to guess. */
  layout: typeof LAYOUT;
  guard: EgressGuard;
  /** Undoes each patch, in the order applied (`uninstall()` runs them in reverse). */
  restore: Array<() => void>;
  settings: InstalledSettings;
}

// One slot per thread (globalThis), shared by every copy of the SDK loaded in it: the ESM and CJS
// builds, the index and register entries, two versions in one tree. A module-level variable would give
// each copy its own guard, and every request would be decided (and logged) once per copy.
const SLOT = Symbol.for('egress-guard.installed');
const LAYOUT = 1;

type Holder = Record<symbol, unknown>;

/**
 * The installed guard's record, or undefined. Throws (a plain Error: the message matters, not the class)
 * when another copy of the SDK left a record of a layout this one does not know: two guards would result.
 */
export function readInstalled(): InstalledState | undefined {
  const value = (globalThis as Holder)[SLOT] as Partial<InstalledState> | undefined;
  if (value === undefined) return undefined;
  if (value.layout !== LAYOUT) {
    throw new Error(
      `egress-guard: a guard is already installed by another copy of @egress-guard/node whose record this copy cannot read (layout ${String(value.layout)}); install the guard with one version of the SDK`,
    );
  }
  return value as InstalledState;
}

/** Records the installed guard (or clears the record). Not enumerable: it is no one else's business. */
export function writeInstalled(state: InstalledState | undefined): void {
  if (state === undefined) {
    delete (globalThis as Holder)[SLOT];
    return;
  }
  Object.defineProperty(globalThis, SLOT, {
    value: state,
    configurable: true,
    writable: true,
    enumerable: false,
  });
}

/** A fresh record for a guard about to be patched in. */
export function newInstalledState(guard: EgressGuard, settings: InstalledSettings): InstalledState {
  return { layout: LAYOUT, guard, restore: [], settings };
}
