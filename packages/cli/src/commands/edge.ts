import { EdgeConfigError, startEdge, startEdgeWorkers } from '@egress-guard/edge';
import { EgressPolicyError, formatProblem } from '@egress-guard/policy';
import type { CliIo } from '../io.js';
import { UsageError } from '../io.js';
import { edgeUsage, parseEdgeArgs } from './edge-args.js';

/**
 * `egress-guard edge --policy egress.yaml --explicit 127.0.0.1:3128 ...`: runs the edge filter until
 * SIGTERM/SIGINT (graceful drain), reloading on SIGHUP and on file change. Flow events go to stdout.
 */
export async function edge(args: string[], io: CliIo): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.out(edgeUsage());
    return 0;
  }
  let options: ReturnType<typeof parseEdgeArgs>;
  try {
    options = parseEdgeArgs(args);
  } catch (error) {
    if (error instanceof EdgeConfigError)
      throw new UsageError(`${error.message}\n(egress-guard edge --help lists the flags)`);
    throw error;
  }
  // parseEdgeArgs has validated it; flags and the file give it as text.
  const workers = Number(options.workers ?? 1);
  let server: Awaited<ReturnType<typeof startEdge | typeof startEdgeWorkers>>;
  try {
    // More than one worker: a primary and worker processes (docs/edge.md, "Workers").
    server = workers > 1 ? await startEdgeWorkers(options) : await startEdge(options);
  } catch (error) {
    if (error instanceof EgressPolicyError) {
      for (const p of error.problems) io.err(formatProblem(p));
      return 1;
    }
    if (error instanceof EdgeConfigError) throw new UsageError(error.message);
    throw error;
  }
  const listening = server.listeners.map((l) => `${l.kind} ${l.host}:${l.port}`).join(', ');
  const admin = server.adminAddress
    ? `, admin http://${server.adminAddress.host}:${server.adminAddress.port}`
    : '';
  const workersNote = workers > 1 ? `, ${workers} workers` : '';
  io.err(
    `egress-guard edge: listening (${listening})${admin}${workersNote}; policy sha256:${server.policy.hash}`,
  );
  return 0;
}
