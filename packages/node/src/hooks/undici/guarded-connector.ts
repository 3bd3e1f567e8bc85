import { createRequire } from 'node:module';
import tls from 'node:tls';
import { type Decision, decideVerifyDisabled, timeoutError } from '@egress-guard/policy';
import { LRUCache } from 'lru-cache';
import type { buildConnector } from 'undici';
import type { GuardCore } from '../../guard/guard-core.js';
import { dialChecksOf, recordDecision } from '../../pipeline/record.js';
import { guardedLookup } from '../../socket/guarded-lookup.js';

// The union type of undici's BuildOptions hides the TLS fields; the connector reads them loosely.
type ConnectOptions = buildConnector.BuildOptions & {
  rejectUnauthorized?: boolean;
  lookup?: unknown;
  ca?: unknown;
  timeout?: number | null;
};
type Connector = buildConnector.connector;

// undici is loaded when the first connector is built (the first connection of the guard's own Agent,
// which has loaded undici already), not when the SDK is: see guarded-dispatcher.ts.
let loadedBuildConnector: typeof buildConnector | undefined;
function undiciBuildConnector(): typeof buildConnector {
  loadedBuildConnector ??= (
    createRequire(typeof __filename === 'string' ? __filename : import.meta.url)(
      'undici',
    ) as typeof import('undici')
  ).buildConnector;
  return loadedBuildConnector;
}

/**
 * undici's `connect` for the guard's Agent: decides the transport (is this host allowed at all on this
 * port, over TLS or not), checks every dialled address through a guarded lookup, checks IP literals
 * (which never reach a lookup), sets the rule's TLS floor and connect timeout, and refuses a caller's
 * `rejectUnauthorized: false` unless the rule says `tls.verify: false`.
 */
export function guardedConnector(guard: GuardCore, base: ConnectOptions = {}): Connector {
  const cache = new LRUCache<string, { hash: string; connect: Connector }>({ max: 1000 });
  return (opts, callback) => {
    const tls = opts.protocol === 'https:';
    const port = Number(opts.port) || (tls ? 443 : 80);
    const decision = guard.decideTransport(opts.hostname, port, tls);
    const at = { scheme: decision.scheme, host: opts.hostname, port };
    if (!decision.allowed) {
      recordDecision(guard, decision, at, 'undici.connect');
      return callback(guard.errorFor(decision), null);
    }
    if (tls && base.rejectUnauthorized === false && decision.tls.verify !== false) {
      const denial = decideVerifyDisabled(decision);
      recordDecision(guard, denial, at, 'undici.connect.verify-disabled');
      if (!denial.allowed) return callback(guard.errorFor(denial), null);
    }
    const key = `${opts.protocol}//${opts.hostname}:${port}`;
    let entry = cache.get(key);
    if (!entry || entry.hash !== decision.policyHash) {
      entry = { hash: decision.policyHash, connect: build(guard, base, decision, opts.hostname, port) };
      cache.set(key, entry);
    }
    connectWithin(entry.connect, opts, callback, decision, base.timeout);
  };
}

/**
 * Connects with the rule's connect limit on Node's own timer (undici's connect timer is coarse: a
 * 300 ms limit fired after about a second).
 */
function connectWithin(
  connect: Connector,
  opts: Parameters<Connector>[0],
  callback: Parameters<Connector>[1],
  decision: Decision,
  callerLimit: number | null | undefined,
): unknown {
  const limit = Math.min(callerLimit || Number.POSITIVE_INFINITY, decision.timeouts.connect);
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  // buildConnector's connect returns the socket it made (its type says void).
  const socket = (connect as (...a: unknown[]) => { destroy(e: Error): void } | undefined)(
    opts,
    (error: Error | null, connected: unknown) => {
      settled = true;
      clearTimeout(timer);
      (callback as (e: Error | null, s: unknown) => void)(error, connected);
    },
  );
  if (!settled && socket) {
    timer = setTimeout(() => socket.destroy(timeoutError('connect', limit, decision)), limit);
    timer.unref();
  }
  return socket;
}

function build(
  guard: GuardCore,
  base: ConnectOptions,
  decision: Decision,
  host: string,
  port: number,
): Connector {
  const context = {
    scheme: decision.scheme,
    host,
    port,
    service: guard.service,
    decision,
    hook: 'undici.connect',
    id: undefined,
  };
  const options: ConnectOptions & Record<string, unknown> = {
    ...base,
    // The connect limit runs on Node's timer in connectWithin; undici's own is off.
    timeout: 0,
    minVersion: decision.tls.minVersion,
    rejectUnauthorized: !(base.rejectUnauthorized === false && decision.tls.verify === false),
    lookup: guardedLookup(dialChecksOf(guard), context, base.lookup as never),
  };
  // `ca` is extra trust: Node's own roots stay, so public hosts keep verifying through the guard's Agent.
  if (guard.ca !== undefined && base.ca === undefined)
    options.ca = [...tls.rootCertificates, ...[guard.ca].flat()];
  return undiciBuildConnector()(options as buildConnector.BuildOptions);
}
