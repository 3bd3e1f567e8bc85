/**
 * The hosts file (`/etc/hosts`), read the way the system resolver reads it: names listed there are
 * answered from it and never asked of DNS (nsswitch's usual `hosts: files dns`). Without it the edge,
 * which asks DNS servers directly, could not dial `localhost` or a name an operator pinned in the file.
 */
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';

/** Options of {@link HostsFile}. */
export interface HostsFileOptions {
  /**
   * Least time between two checks of the file for a change (a `stat`, re-read when its identity, size or
   * modification time changed). Default `1000` ms.
   */
  checkIntervalMs?: number | undefined;
  /** Clock, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** Addresses of one name, by family, in file order. */
interface HostsEntry {
  v4: string[];
  v6: string[];
}

/**
 * A hosts file, re-read when it changes. A file that is missing or unreadable lists nothing (names are
 * then asked of DNS, as the system resolver would); a line that does not start with an IP address is
 * skipped, as glibc skips it.
 */
export class HostsFile {
  private readonly checkInterval: number;
  private readonly now: () => number;
  private table = new Map<string, HostsEntry>();
  private identity = '';
  private nextCheck = 0;

  constructor(
    /** Path of the file. */
    readonly path: string,
    options: HostsFileOptions = {},
  ) {
    this.checkInterval = options.checkIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /**
   * The addresses the file gives `name` (lower case, no trailing dot) for `family`, or undefined when
   * the file does not list the name at all: then, and only then, DNS is asked. A name listed with IPv4
   * addresses only has no IPv6 addresses (an empty list), as with the system resolver.
   */
  lookup(name: string, family: 4 | 6): readonly string[] | undefined {
    const now = this.now();
    if (now >= this.nextCheck) {
      this.nextCheck = now + this.checkInterval;
      this.refresh(false);
    }
    const entry = this.table.get(name);
    if (!entry) return undefined;
    return family === 4 ? entry.v4 : entry.v6;
  }

  /** Reads the file again if it changed (`force`: whatever its stat says). */
  refresh(force = true): void {
    let identity: string;
    try {
      const s = statSync(this.path);
      identity = `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      identity = 'missing';
    }
    if (!force && identity === this.identity) return;
    this.identity = identity;
    let text = '';
    if (identity !== 'missing') {
      try {
        text = readFileSync(this.path, 'utf8');
      } catch {
        // Unreadable: nothing listed, so DNS answers, as for a missing file.
      }
    }
    this.table = parseHostsFile(text);
  }
}

/** Parses hosts-file text into name → addresses. Names are lower-cased without a trailing dot. */
export function parseHostsFile(text: string): Map<string, HostsEntry> {
  const table = new Map<string, HostsEntry>();
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const fields = (hash < 0 ? raw : raw.slice(0, hash)).trim().split(/\s+/);
    const address = fields[0] ?? '';
    const family = net.isIP(address);
    // Zone-scoped addresses (fe80::1%eth0) name an interface, which the edge never dials.
    if (family === 0 || fields.length < 2) continue;
    for (const field of fields.slice(1)) {
      const name = field.toLowerCase().replace(/\.$/, '');
      if (name === '') continue;
      let entry = table.get(name);
      if (!entry) {
        entry = { v4: [], v6: [] };
        table.set(name, entry);
      }
      const list = family === 4 ? entry.v4 : entry.v6;
      if (!list.includes(address)) list.push(address);
    }
  }
  return table;
}
