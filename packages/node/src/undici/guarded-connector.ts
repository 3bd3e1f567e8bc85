import tls from 'node:tls';
import { type Decision, decideVerifyDisabled } from '@egress-guard/policy';
import { buildConnector } from 'undici';
import type { EgressGuard } from '../egress-guard.js';
import { guardedLookup } from '../guarded-lookup.js';

// The union type of undici's BuildOptions hides the TLS fields; the connector reads them loosely.
type ConnectOptions = buildConnector.BuildOptions & {
  rejectUnauthorized?: boolean;
  lookup?: unknown;
  ca?: unknown;
  timeout?: number | null;
};
type Connector = buildConnector.connector;

/**
 * undici's `connect` for the guard's Agent: decides the transport (is this host allowed at all on this
 * port, over TLS or not), checks every dialled address through a guarded lookup, checks IP literals
 * (which never reach a lookup), sets the rule's TLS floor and connect timeout, and refuses a caller's
 * `rejectUnauthorized: false` unless the rule says `tls.verify: false`.
 */
export function guardedConnector(guard: EgressGuard, base: ConnectOptions = {}): Connector {
  const cache = new Map<string, { hash: string; connect: Connector }>();
  return (opts, callback) => {
    const tls = opts.protocol === 'https:';
    const port = Number(opts.port) || (tls ? 443 : 80);
    const decision = guard.decideTransport(opts.hostname, port, tls);
    if (!decision.allowed) return callback(guard.errorFor(decision), null);
    if (tls && base.rejectUnauthorized === false && decision.tls.verify !== false) {
      const denial = decideVerifyDisabled(decision);
      if (!denial.allowed) return callback(guard.errorFor(denial), null);
    }
    const key = `${opts.protocol}//${opts.hostname}:${port}`;
    let entry = cache.get(key);
    if (!entry || entry.hash !== decision.policyHash) {
      if (cache.size > 1000) cache.clear();
      entry = { hash: decision.policyHash, connect: build(guard, base, decision, opts.hostname, port) };
      cache.set(key, entry);
    }
    return entry.connect(opts, callback);
  };
}

function build(
  guard: EgressGuard,
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
    timeout: Math.min(base.timeout ?? Number.POSITIVE_INFINITY, decision.timeouts.connect),
    minVersion: decision.tls.minVersion,
    rejectUnauthorized: base.rejectUnauthorized === false && decision.tls.verify === false ? false : true,
    lookup: guardedLookup(guard, context, base.lookup as never),
  };
  // `ca` is extra trust: Node's own roots stay, so public hosts keep verifying through the guard's Agent.
  if (guard.ca !== undefined && base.ca === undefined)
    options.ca = [...tls.rootCertificates, ...[guard.ca].flat()];
  return buildConnector(options as buildConnector.BuildOptions);
}
