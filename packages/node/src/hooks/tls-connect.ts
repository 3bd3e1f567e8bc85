import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import {
  type Decision,
  decideTlsVersion,
  decideVerifyDisabled,
  errorForDecision,
  meetsTlsFloor,
} from '@egress-guard/policy';
import type { GuardCore } from '../guard/guard-core.js';
import { decideAndRecord, dialChecksOf, recordCompletion, recordDecision } from '../pipeline/record.js';
import { contextOf } from '../socket/connection-context.js';
import { guardedLookup } from '../socket/guarded-lookup.js';
import { completeOnClose } from './socket-connect.js';

/**
 * Patches `tls.connect`, which every TLS client reaches (https agents, undici, http2, raw callers):
 * sets the rule's TLS floor on the socket, refuses `rejectUnauthorized: false` unless the rule allows it
 * (and logs each use when it does), checks the negotiated version once more after the handshake, and
 * decides raw TLS connections (scheme `tls`) that no hook decided before.
 */
export function patchTlsConnect(current: () => GuardCore | undefined): () => void {
  const original = tls.connect;
  const patched = function connect(...args: unknown[]): tls.TLSSocket {
    const guard = current();
    if (!guard) return (original as (...a: unknown[]) => tls.TLSSocket)(...args);
    const { options, callback } = normalize(args);
    const host = options.host ?? 'localhost';
    const port = Number(options.port ?? 443);
    let context = contextOf(options.lookup);
    let decision: Decision;
    let raw: { id: string; started: number } | undefined;
    if (context) decision = context.decision;
    else {
      // TLS over a socket the caller already connected (e.g. a CONNECT tunnel through a proxy): that socket
      // was decided when it connected; the name inside the tunnel is decided here.
      const name = options.socket ? options.servername || host : host;
      const recent = guard.recentRequest(name, port);
      const started = performance.now();
      const checked = recent
        ? {
            decision:
              recent === 'tls'
                ? guard.decide({ scheme: 'tls', host: name, port })
                : guard.decideTransport(name, port, true),
            id: undefined,
          }
        : decideAndRecord(guard, { scheme: 'tls', host: name, port }, 'tls');
      decision = checked.decision;
      if (!decision.allowed) {
        if (checked.id)
          recordCompletion(guard, checked.id, 'tls', decision, {
            outcome: 'denied',
            durationMs: 0,
            'error.type': decision.reason,
          });
        return refused(guard.errorFor(decision), callback);
      }
      if (checked.id) raw = { id: checked.id, started };
      context = {
        scheme: decision.scheme,
        host: name,
        port,
        service: guard.service,
        decision,
        hook: 'tls',
        id: checked.id,
      };
      if (!options.socket)
        options.lookup = guardedLookup(dialChecksOf(guard), context, options.lookup as never);
    }
    // Send the name that was decided as SNI (Node's tls.connect sends none unless told): the edge checks
    // that the SNI matches the destination and refuses a hello without one (sni_missing).
    if (options.servername === undefined && !options.socket && net.isIP(host.replace(/^\[|\]$/g, '')) === 0)
      options.servername = host;
    const floor = decision.tls.minVersion;
    // Report mode blocks nothing: a TLS would-deny is logged and the connection goes ahead as the caller asked.
    const report = decision.mode === 'report';
    const dest = { scheme: decision.scheme, host: decision.host ?? host, port };
    const refuse = (denial: Decision, error: Error) => {
      if (raw)
        recordCompletion(guard, raw.id, 'tls', decision, {
          outcome: 'tls',
          durationMs: performance.now() - raw.started,
          'error.type': denial.reason,
        });
      return refused(error, callback);
    };
    const checkedByHook = context.tlsChecked === true;
    if (!checkedByHook && options.maxVersion && !meetsTlsFloor(options.maxVersion, floor)) {
      const denial = decideTlsVersion(decision, `the caller capped TLS at ${options.maxVersion}`);
      recordDecision(guard, denial, dest, 'tls.floor');
      if (!denial.allowed) return refuse(denial, errorForDecision(denial));
    }
    if (!report && (!options.minVersion || !meetsTlsFloor(options.minVersion, floor)))
      options.minVersion = floor;
    // NODE_TLS_REJECT_UNAUTHORIZED=0 is the process-wide way of turning verification off: the same rule applies.
    const verifyOff =
      options.rejectUnauthorized === false ||
      (options.rejectUnauthorized === undefined && process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0');
    if (verifyOff && !checkedByHook) {
      if (decision.tls.verify !== false) {
        const denial = decideVerifyDisabled(decision);
        recordDecision(guard, denial, dest, 'tls.verify-disabled');
        if (!denial.allowed) return refuse(denial, guard.errorFor(denial));
      } else {
        // Allowed by the rule, and logged on every use.
        decideAndRecord(guard, dest, 'tls.verify-disabled');
      }
    }
    const socket = (original as (...a: unknown[]) => tls.TLSSocket)(options, callback);
    if (raw) completeOnClose(socket, guard, raw.id, 'tls', decision, raw.started);
    if (!report) translateVersionErrors(socket, decision);
    socket.once('secureConnect', () => {
      const version = socket.getProtocol() ?? 'unknown';
      if (meetsTlsFloor(version, floor)) return;
      const denial = decideTlsVersion(decision, `the server negotiated ${version}`);
      recordDecision(guard, denial, dest, 'tls.floor');
      if (!denial.allowed) socket.destroy(errorForDecision(denial));
    });
    return socket;
  } as typeof tls.connect;
  tls.connect = patched;
  return () => {
    if (tls.connect === patched) tls.connect = original;
  };
}

// OpenSSL's ways of saying that no TLS version both sides accept exists (a server below the floor).
const VERSION_ERRORS = new Set([
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_VERSION_TOO_LOW',
]);

/**
 * A handshake that fails because the server does not speak the floor surfaces as OpenSSL's error: the
 * caller gets the guard's EgressTlsError instead (reason tls_version, the rule, how to fix it), with
 * OpenSSL's error as its cause.
 */
function translateVersionErrors(socket: tls.TLSSocket, decision: Decision): void {
  const emit = socket.emit;
  let established = false;
  socket.once('secureConnect', () => {
    established = true;
  });
  socket.emit = function (this: tls.TLSSocket, event: string | symbol, ...args: unknown[]) {
    const error = args[0] as NodeJS.ErrnoException | undefined;
    if (
      event === 'error' &&
      !established &&
      error &&
      typeof error.code === 'string' &&
      VERSION_ERRORS.has(error.code)
    ) {
      const denial = decideTlsVersion(
        decision,
        `the server does not accept ${decision.tls.minVersion} or later (${error.code})`,
      );
      args[0] = errorForDecision(denial, error);
    }
    return (emit as (this: tls.TLSSocket, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof socket.emit;
}

/** tls.connect(options[, cb]) | (port[, host][, options][, cb]) | (path[, options][, cb]). */
function normalize(args: unknown[]): {
  options: ConnectionOptions & { lookup?: unknown };
  callback: (() => void) | undefined;
} {
  const callback = args.find((a) => typeof a === 'function') as (() => void) | undefined;
  const rest = args.filter((a) => typeof a !== 'function');
  let options: ConnectionOptions = {};
  if (typeof rest[0] === 'object' && rest[0] !== null) options = { ...(rest[0] as ConnectionOptions) };
  else {
    const extra = rest.find((a, i) => i > 0 && typeof a === 'object' && a !== null) as
      | ConnectionOptions
      | undefined;
    options = { ...extra };
    if (typeof rest[0] === 'number' || /^\d+$/.test(String(rest[0]))) {
      options.port = Number(rest[0]);
      if (typeof rest[1] === 'string') options.host = rest[1];
    } else if (typeof rest[0] === 'string') options.path = rest[0];
  }
  return { options, callback };
}

/** A TLS socket that never connects and fails with the guard's error. */
function refused(error: Error, callback: (() => void) | undefined): tls.TLSSocket {
  const socket = new tls.TLSSocket(new net.Socket());
  void callback;
  process.nextTick(() => socket.destroy(error));
  return socket;
}
