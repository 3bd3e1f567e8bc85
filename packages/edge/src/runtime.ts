/**
 * What every listener and flow shares with the server that runs it: the policy in force (which a reload
 * swaps), limits, the resolver cache, metrics and the flow log.
 */
import type { EventEmitter, Policy } from '@egress-guard/policy';
import type { ResolverCache } from './claims.js';
import type { EdgeLimits } from './config.js';
import type { Connection } from './connection.js';
import type { FlowRecord } from './flow-record.js';
import type { PlainHttpServer } from './http-context.js';
import type { EdgeMetrics } from './metrics.js';
import type { ProxyAuth } from './proxy-auth/index.js';

/** Services a listener needs from the edge server. */
export interface EdgeRuntime {
  /** The policy in force now; a flow reads it once, when it decides, and keeps that decision. */
  readonly policy: Policy;
  readonly limits: EdgeLimits;
  readonly resolver: ResolverCache;
  readonly metrics: EdgeMetrics;
  readonly events: EventEmitter;
  /** True once drain or close began: plaintext keep-alive connections are closed after their response. */
  readonly draining: boolean;
  readonly http: PlainHttpServer;
  /** The explicit proxy's service credentials, when `proxyAuth` is configured: then they are required. */
  readonly proxyAuth: ProxyAuth | undefined;
  /** A new flow record (id, listener, source) for a flow on `conn`. */
  newFlow(conn: Connection): FlowRecord;
}
