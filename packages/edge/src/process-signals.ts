/**
 * What a running edge process (a single edge, or the primary of several workers) does with signals and
 * policy changes: SIGHUP reloads, SIGTERM/SIGINT drain then close (a second signal closes at once), and
 * one event per loaded or reloaded policy. Shared so that both shapes behave identically.
 */
import { diffPolicies, EgressPolicyError, type EventEmitter, type Policy } from '@egress-guard/policy';

/** What the signals act on. */
export interface SignalTarget {
  reload(): Promise<unknown>;
  drain(): Promise<unknown>;
  close(): Promise<unknown>;
}

/** Installs the handlers; returns them so that `close()` can remove them (`removeSignalHandlers`). */
export function installSignalHandlers(target: SignalTarget): Array<[NodeJS.Signals, () => void]> {
  let stopping = false;
  // Without a policy file there is nothing to re-read; the edge keeps running.
  const onHup = () => {
    target.reload().catch(() => {});
  };
  const onStop = () => {
    if (stopping) {
      void target.close().then(exitSoon);
      return;
    }
    stopping = true;
    void target
      .drain()
      .then(() => target.close())
      .then(exitSoon);
  };
  const handlers: Array<[NodeJS.Signals, () => void]> = [
    ['SIGHUP', onHup],
    ['SIGTERM', onStop],
    ['SIGINT', onStop],
  ];
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return handlers;
}

/** Removes handlers installed by {@link installSignalHandlers}, emptying the list. */
export function removeSignalHandlers(handlers: Array<[NodeJS.Signals, () => void]>): void {
  for (const [signal, handler] of handlers) process.off(signal, handler);
  handlers.length = 0;
}

/** The handlers replaced the default exit on SIGTERM: exit once closed, unless something else holds on. */
function exitSoon(): void {
  process.exitCode ??= 0;
  const timer = setTimeout(() => process.exit(), 2000);
  timer.unref();
}

/** Writes the `egress.policy.loaded` / `egress.policy.reloaded` event of the edge. */
export function emitPolicyEvent(
  events: EventEmitter,
  name: 'egress.policy.loaded' | 'egress.policy.reloaded',
  file: string | undefined,
  previous: Policy | undefined,
  next: Policy,
): void {
  events.emit({
    'event.name': name,
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.policy.hash': next.hash,
    'egress.policy.previous_hash': previous?.hash,
    'egress.policy.file': file,
    'egress.policy.diff': diffPolicies(previous, next),
  });
}

/** Writes `egress.policy.rejected` for a policy file that failed to load: the policy in force stays. */
export function emitPolicyRejected(
  events: EventEmitter,
  file: string | undefined,
  inForce: Policy,
  error: unknown,
): void {
  events.emit({
    'event.name': 'egress.policy.rejected',
    'egress.schema': 1,
    'egress.source': 'edge',
    'egress.policy.hash': inForce.hash,
    'egress.policy.file': file,
    'egress.policy.problems':
      error instanceof EgressPolicyError
        ? error.problems.map(
            (p) => `${p.line}:${p.column} ${p.path} ${p.message}${p.hint ? ` (${p.hint})` : ''}`,
          )
        : [(error as Error).message ?? String(error)],
  });
}
