/** Something that can write out its buffer synchronously. */
export interface SyncFlushable {
  flushSync(): void;
}

/** Signals after which buffered events are flushed when `flushOnExit` is on. */
export const EXIT_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

const sinks = new Set<SyncFlushable>();
let installed = false;

function flushAll(): void {
  for (const sink of sinks) sink.flushSync();
}

function onSignal(signal: NodeJS.Signals): void {
  flushAll();
  // With our listener gone and nobody else listening, re-raising gives the default action: the process
  // ends by that signal, exactly as it would have without egress-guard. If the application listens
  // too, the decision to exit is its own, and the 'exit' handler flushes whatever comes after.
  if (process.listenerCount(signal) === 1) {
    uninstall();
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', flushAll);
  for (const signal of EXIT_SIGNALS) process.on(signal, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', flushAll);
  for (const signal of EXIT_SIGNALS) process.off(signal, onSignal);
}

/**
 * Flushes `sink` synchronously on `exit`, `SIGTERM` and `SIGINT`. One set of process handlers serves
 * every registered sink. Returns the function that unregisters it (and removes the handlers with the last).
 */
export function registerExitFlush(sink: SyncFlushable): () => void {
  sinks.add(sink);
  install();
  return () => {
    sinks.delete(sink);
    if (sinks.size === 0) uninstall();
  };
}
