/**
 * The messages between the primary and its worker processes (node:cluster's IPC channel, JSON). One
 * union per direction, each tagged by `t`, so that both sides are checked against the same shapes.
 */
import type { BoundListener } from '../edge-server.js';

/** What a worker needs to run: the options that can cross a process boundary, and the policy's text. */
export interface WorkerConfig {
  /** Options as validated by the primary (functions and objects left out: they cannot cross). */
  options: Record<string, unknown>;
  /** The policy file's text as the primary read it, and its path: every worker parses the same bytes. */
  policy: { text: string; file: string };
}

/** Primary to worker. */
export type ToWorker =
  /** The first message: what to run. Answered by `ready` or `failed`. */
  | { t: 'start'; config: WorkerConfig }
  /** A new policy (the text the primary read and validated); answered by `policy-applied`. */
  | { t: 'policy'; seq: number; text: string; file: string }
  /** A `/metrics` scrape: answered by `metrics` with the registry as JSON. */
  | { t: 'metrics'; id: number }
  /** Stop accepting, let flows end (up to `timeoutMs`), write every event, exit 0. */
  | { t: 'drain'; timeoutMs: number }
  /** End every flow now, write every event, exit 0. */
  | { t: 'close' };

/** Worker to primary. */
export type FromWorker =
  /**
   * The worker listens for messages now (a message sent before that would be lost): the primary
   * answers with `start`.
   */
  | { t: 'hello' }
  /** Listening; the listeners as bound. */
  | { t: 'ready'; listeners: BoundListener[] }
  /** Could not start (bad listener, policy text that does not parse): the message says why. */
  | { t: 'failed'; message: string }
  /** Whole event lines (each ends with a newline), in the order the worker wrote them. */
  | { t: 'events'; lines: string }
  /** The policy of `seq` is in force in this worker. */
  | { t: 'policy-applied'; seq: number; hash: string }
  /** `registry.getMetricsAsJSON()` for scrape `id`. */
  | { t: 'metrics'; id: number; metrics: unknown[] };

/** True for a message of this protocol (the channel also carries node:cluster's own messages). */
export function isWorkerMessage(message: unknown): message is FromWorker {
  return (
    typeof message === 'object' && message !== null && typeof (message as { t?: unknown }).t === 'string'
  );
}
