/**
 * Pieces shared by the threat-class and client suites: finding the guard's error in whatever a client
 * wraps it in, a tripwire beneath the guard that keeps every test on loopback, a same-port pair of
 * servers on two loopback addresses, and a counting lookup.
 */
import dns, { type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import { parseIpLiteral, unmapIpv4 } from '@egress-guard/policy';
import { expect } from 'vitest';
import { EgressError } from '../../src/index.js';
import type { RecordingServer } from '../fixtures/harness.js';

export * from '../fixtures/harness.js';

/** The EgressError in an error's `cause` chain (the error itself included), or undefined. */
export function egressCause(error: unknown): EgressError | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    if (current instanceof EgressError) return current;
    const next = (current as { cause?: unknown }).cause;
    if (next === undefined && current instanceof AggregateError) {
      const found = current.errors.map(egressCause).find(Boolean);
      if (found) return found;
    }
    current = next;
  }
  return undefined;
}

/** Asserts that the guard's error, with these fields, is somewhere in the error's cause chain. */
export function expectEgress(
  error: unknown,
  fields: { code?: string; reason?: string; host?: string; port?: number; rule?: string },
): EgressError & Record<string, any> {
  const found = egressCause(error);
  if (!found) {
    throw new Error(`expected an EgressError in the cause chain, got: ${describeChain(error)}`);
  }
  expect(found).toMatchObject(fields);
  return found as EgressError & Record<string, any>;
}

function describeChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let i = 0; current && i < 6; i++) {
    const e = current as { name?: string; code?: string; message?: string; cause?: unknown };
    parts.push(`${e.name ?? typeof e}(${e.code ?? ''}): ${e.message ?? String(e)}`);
    current = e.cause;
  }
  return parts.join(' <- ') || String(error);
}

/** The rejection of a promise that must reject (fails the test if it resolves). */
export async function failureOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** The 'error' an emitter emits (fails if `success` fires first). */
export function errorEvent(emitter: NodeJS.EventEmitter, success?: string): Promise<any> {
  return new Promise((resolve, reject) => {
    emitter.once('error', resolve);
    if (success)
      emitter.once(success, () => reject(new Error(`"${success}" fired, but the call should have failed`)));
  });
}

/** Addresses that stay on this host: loopback, the unspecified addresses, and mapped loopback. */
export function isLocal(address: string): boolean {
  const parsed = parseIpLiteral(address.startsWith('[') ? address.slice(1, -1) : address);
  if (!parsed) return false;
  const ip = unmapIpv4(parsed);
  if (ip.family === 4) return ip.bytes[0] === 127 || ip.canonical === '0.0.0.0';
  return ip.canonical === '::1' || ip.canonical === '::';
}

/** The name a denied request's placeholder socket "connects" to (its look-up fails: nothing is dialled). */
export const GUARD_PLACEHOLDER = 'egress-guard-denied.invalid';

/** What the tripwire saw beneath the guard. */
export interface Tripwire {
  /**
   * Every connect the guard let through to Node: host as given (a name or an IP literal) and port. The
   * guard's own placeholder sockets for denied requests and sessions (host `egress-guard-denied.invalid`,
   * whose look-up fails with the guard's error before any syscall) are left out.
   */
  connects: Array<{ host: string; port: number }>;
  /** Non-local addresses it refused instead of dialling: each one is a hole in the guard. */
  refused: string[];
  restore(): void;
}

/**
 * Wraps `net.Socket.prototype.connect` BEFORE `install()`, so that it sits beneath the guard: it records
 * every connection the guard lets through, and refuses (without any syscall) any that would leave
 * loopback, literal or resolved. Tests aimed at NAT64, 6to4, Teredo and other non-local spellings prove
 * the block by `connects` staying empty, and no bug in the guard can ever send a packet off this host.
 * Restore it after `uninstall()`.
 */
export function installTripwire(): Tripwire {
  const original = net.Socket.prototype.connect;
  const connects: Tripwire['connects'] = [];
  const refused: string[] = [];
  const tripwire = function connect(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const options = (Array.isArray(first) ? first[0] : first) as Record<string, unknown> | number | string;
    let host: string;
    let port: number;
    let lookup: unknown;
    if (options && typeof options === 'object') {
      if (options.path !== undefined) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
      host = String(options.host ?? 'localhost');
      port = Number(options.port);
      lookup = options.lookup;
    } else if (typeof options === 'string' && !/^\d+$/.test(options)) {
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    } else {
      port = Number(options);
      host = typeof args[1] === 'string' ? args[1] : 'localhost';
    }
    const bare = host.startsWith('[') ? host.slice(1, -1) : host;
    if (bare !== GUARD_PLACEHOLDER) connects.push({ host: bare, port });
    if (net.isIP(bare)) {
      if (isLocal(bare)) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
      refused.push(bare);
      process.nextTick(() => this.destroy(new Error(`tripwire: refused to dial ${bare}`)));
      return this;
    }
    const base = (typeof lookup === 'function' ? lookup : dns.lookup) as LookupFunction;
    const checked = ((name: string, opts: dns.LookupOptions, callback: (...a: unknown[]) => void) =>
      base(name, opts, ((error: Error | null, address: string | LookupAddress[], family?: number) => {
        if (error) return callback(error, address, family);
        const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
        const outside = list.find((a) => !isLocal(a));
        if (outside !== undefined) {
          refused.push(outside);
          return callback(new Error(`tripwire: ${name} resolved to ${outside}`), '', 0);
        }
        callback(null, address, family);
      }) as never)) as unknown as LookupFunction;
    if (Array.isArray(first)) {
      first[0] = { ...(first[0] as object), lookup: checked };
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    }
    if (options && typeof options === 'object') {
      return (original as (...a: unknown[]) => net.Socket).apply(this, [
        { ...options, lookup: checked },
        ...args.slice(1),
      ]);
    }
    const cb = args.find((a) => typeof a === 'function');
    return (original as (...a: unknown[]) => net.Socket).apply(this, [
      { port, host, lookup: checked },
      ...(cb ? [cb] : []),
    ]);
  } as typeof original;
  net.Socket.prototype.connect = tripwire;
  return {
    connects,
    refused,
    restore() {
      if (net.Socket.prototype.connect === tripwire) net.Socket.prototype.connect = original;
    },
  };
}

/** A lookup that counts the calls per name, for proving a lookup was (or was not) asked. */
export function countingLookup(base: LookupFunction): LookupFunction & { calls: string[] } {
  const calls: string[] = [];
  const lookup = ((hostname: string, options: unknown, callback: unknown) => {
    calls.push(hostname);
    return (base as (...a: unknown[]) => void)(hostname, options, callback);
  }) as unknown as LookupFunction & { calls: string[] };
  lookup.calls = calls;
  return lookup;
}

/**
 * Two servers on one port, one per loopback address (Linux routes all of 127/8 to lo), so that a name
 * answered with either address reaches "its" server: the proof of which address was actually dialled.
 */
export async function samePort<T extends RecordingServer>(
  start: (host: string) => Promise<T>,
  hosts: [string, string],
): Promise<[T, T]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await start(hosts[0]);
    try {
      const second = await startOn(start, hosts[1], first.port);
      return [first, second];
    } catch {
      await first.close();
    }
  }
  throw new Error(`could not bind ${hosts.join(' and ')} on one port`);
}

async function startOn<T extends RecordingServer>(
  start: (host: string) => Promise<T>,
  host: string,
  port: number,
): Promise<T> {
  // listenEphemeral picks port 0; bind a probe first to learn whether the port is free on this host.
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(port, host, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  // The kit's servers always listen on an ephemeral port: move the server to `port` afterwards.
  const server = await start(host);
  await new Promise<void>((resolve) => server.server.close(() => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.server.listen(port, host, () => resolve());
  });
  return Object.assign(server, {
    port,
    url: server.url.replace(/:\d+$/, `:${port}`),
    origin: server.origin.replace(/:\d+$/, `:${port}`),
  });
}
