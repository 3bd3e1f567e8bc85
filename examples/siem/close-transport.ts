import { once } from 'node:events';
import type { EventEmitter } from '@egress-guard/policy';

/** How long closing may take before the recipe gives up on the transport (a receiver may be gone). */
export const CLOSE_TIMEOUT_MS = 10_000;

/**
 * Flushes the emitter, ends the transport (its worker writes or sends what it holds) and waits for it
 * to close, at most `timeoutMs`: shutting down must not hang on a receiver that went away.
 */
export async function closeTransport(
  events: EventEmitter,
  transport: NodeJS.EventEmitter & { end(): void },
  timeoutMs = CLOSE_TIMEOUT_MS,
): Promise<void> {
  await events.close();
  const closed = once(transport, 'close').catch(() => undefined);
  transport.end();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
