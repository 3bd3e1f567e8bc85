/**
 * Watches the policy file and its directory and calls back, debounced, when either changes. The
 * directory matters: editors save by writing a new file and renaming it over the old one, and Kubernetes
 * updates a mounted ConfigMap by swapping a `..data` symlink, so a watch on the file alone goes quiet
 * after the first change. The callback reloads; an unchanged file (same hash) is a no-op there.
 */
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/** A running watch; `close()` stops it. */
export class PolicyWatcher {
  private fileWatcher: FSWatcher | undefined;
  private dirWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly file: string;
  private readonly name: string;

  /**
   * @param file The policy file.
   * @param debounceMs Quiet time after the last event before `onChange` runs.
   * @param onChange Called once per burst of events.
   */
  constructor(
    file: string,
    private readonly debounceMs: number,
    private readonly onChange: () => void,
  ) {
    this.file = resolve(file);
    this.name = basename(this.file);
    this.dirWatcher = this.open(dirname(this.file), (filename) => {
      if (filename === null || filename === this.name || filename.startsWith('..')) this.changed();
    });
    this.armFile();
  }

  /** Stops watching. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.fileWatcher?.close();
    this.dirWatcher?.close();
  }

  private armFile(): void {
    this.fileWatcher?.close();
    this.fileWatcher = this.open(this.file, () => this.changed());
  }

  private changed(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      // The file may be a new inode now (rename over it): watch the new one.
      this.armFile();
      this.onChange();
    }, this.debounceMs);
  }

  private open(path: string, listener: (filename: string | null) => void): FSWatcher | undefined {
    try {
      const watcher = watch(path, { persistent: false }, (_event, filename) =>
        listener(typeof filename === 'string' ? filename : null),
      );
      // A watched path that disappears must not crash the process; the directory watch re-arms it.
      watcher.on('error', () => watcher.close());
      return watcher;
    } catch {
      return undefined;
    }
  }
}
