/**
 * One tunnelled connection's life: sniff the first bytes (with a cap and a time limit), check the
 * claims against the facts, decide, dial what was checked, verify the upstream's first answer (the
 * ServerHello's version, the SSH banner), then splice both ways and write the close event.
 *
 * Plaintext HTTP is handed to the HTTP forwarder, which decides every request on its own.
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  blankDecision,
  CONNECTION_SCHEMES,
  type Decision,
  decideAnyScheme,
  normaliseHostName,
  type Policy,
  parseHost,
  refineDecision,
} from '@egress-guard/policy';
import { canonicalAddress } from './claims.js';
import type { Connection } from './connection.js';
import { Checks, type DestinationQuery, resolveDestination } from './destination.js';
import { DialError, dial } from './dialer.js';
import { type FirstBytes, readFirstBytes } from './first-bytes.js';
import type { FlowOutcome, FlowRecord } from './flow-record.js';
import type { HttpContext } from './http-forwarder.js';
import type { EdgeRuntime } from './runtime.js';
import {
  type ClientHelloInfo,
  detectProtocol,
  effectiveMaxVersion,
  type HelloParse,
  type HttpHeadParse,
  parseClientHello,
  parseHttpHead,
  parseServerHello,
  parseSshBanner,
  type ServerHelloParse,
  type SshBannerParse,
} from './sniff/index.js';
import {
  ALERT,
  fatalAlert,
  leadingChangeCipherSpec,
  TLS_VERSION_NUMBERS,
  tlsVersionName,
} from './tls-wire.js';

/** Where a tunnel goes, as far as the listener knows before reading the client's bytes. */
export type TunnelTarget =
  /** Explicit proxy: the CONNECT target (a name or an IP literal, as sent). */
  | { kind: 'connect'; host: string; port: number }
  /** Transparent: the address and port the client connected to before the redirect. */
  | { kind: 'original'; address: string; port: number }
  /** SNI-routed: only the port; the name comes from the SNI (or HTTP Host). */
  | { kind: 'sni'; port: number };

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

/** The client's first message, as far as the sniffers could read it. */
type FirstMessage =
  | { protocol: 'tls'; parse: Done<HelloParse> }
  | { protocol: 'http'; parse: Done<HttpHeadParse> }
  | { protocol: 'ssh'; parse: Done<SshBannerParse> }
  | { protocol: 'unknown' };

/** The upstream's verdict on the first answer it sent. */
type Verified =
  | { ok: true }
  | {
      ok: false;
      outcome: FlowOutcome;
      closeReason: string;
      toClient?: Buffer | undefined;
      errorType?: string;
    };

/** Everything needed to dial and relay an allowed flow. */
interface RelayPlan {
  decision: Decision;
  addresses: string[];
  port: number;
  /** The client's bytes read so far, forwarded first and unchanged. */
  first: Buffer;
  verify?: ((upstream: net.Socket) => Promise<Verified>) | undefined;
  /** Sent to the client when the upstream cannot be reached (a TLS alert). */
  failReply?: Buffer | undefined;
}

const EMPTY = Buffer.alloc(0);
/** A ServerHello and what a TLS 1.2 server sends with it fit well within this. */
const SERVER_HELLO_MAX = 16_384 + 4 * 5;

/** Parses whatever protocol the first bytes start; undefined while more bytes are needed. */
function parseFirst(buffer: Buffer, maxBytes: number): FirstMessage | undefined {
  switch (detectProtocol(buffer)) {
    case 'need-more':
      return undefined;
    case 'tls': {
      const parse = parseClientHello(buffer, maxBytes);
      return parse.status === 'need-more' ? undefined : { protocol: 'tls', parse };
    }
    case 'http': {
      const parse = parseHttpHead(buffer, maxBytes);
      return parse.status === 'need-more' ? undefined : { protocol: 'http', parse };
    }
    case 'ssh': {
      const parse = parseSshBanner(buffer, maxBytes, { role: 'client' });
      return parse.status === 'need-more' ? undefined : { protocol: 'ssh', parse };
    }
    default:
      return { protocol: 'unknown' };
  }
}

/**
 * Ends a refused connection gently: the reply (an HTTP error or a TLS alert) is flushed and the socket
 * destroyed once the peer closes or after a second, unread input discarded.
 */
export function closeGently(socket: net.Socket, reply?: Buffer | string): void {
  if (socket.destroyed) return;
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  if (!socket.writable) socket.destroy();
  else if (reply === undefined) socket.end();
  else socket.end(reply);
}

/** Writes the decision (a refusal), closes the client with `reply`, writes the completion. */
export function refuse(
  conn: Connection,
  flow: FlowRecord,
  decision: Decision,
  reply?: Buffer | string,
): void {
  flow.decide(decision);
  closeGently(conn.client, reply);
  flow.complete('denied', decision.reason);
}

/**
 * Runs a tunnel: reads the client's first bytes (`initial` holds any already read), decides, and relays.
 * Never throws; every outcome ends in one decision event and one completion event (plaintext HTTP: one
 * pair per request, written by the forwarder).
 */
export async function runTunnel(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  initial: Buffer,
): Promise<void> {
  const max = rt.limits.helloMaxBytes;
  const read = await readFirstBytes(conn.client, initial, (b) => parseFirst(b, max), {
    deadline: conn.helloDeadline,
    maxBytes: max,
  });
  const policy = rt.policy;
  const service = policy.serviceForAddress(conn.source);
  const port = target.port;
  if (read.status !== 'ok') {
    refuseUnread(rt, conn, read, contextDecision(policy, service, target, port));
    return;
  }
  const msg = read.value;
  switch (msg.protocol) {
    case 'tls':
      return tlsFlow(rt, conn, target, read.buffer, msg.parse, policy, service);
    case 'ssh':
      return sshFlow(rt, conn, target, read.buffer, msg.parse, policy, service);
    case 'http': {
      const parse = msg.parse;
      if (parse.status !== 'ok' || parse.method === 'CONNECT') {
        const flow = rt.newFlow(conn);
        const reason =
          parse.status === 'error' && parse.reason === 'too_large'
            ? 'hello_too_large'
            : 'protocol_not_allowed';
        const detail =
          parse.status === 'error'
            ? `the request head is not acceptable HTTP/1.x: ${parse.detail}`
            : 'CONNECT inside a tunnel';
        refuse(
          conn,
          flow,
          refineDecision(contextDecision(policy, service, target, port), reason, detail, true),
          httpError(400, reason, detail),
        );
        return;
      }
      rt.http.serve(conn, read.buffer, httpContextOf(target));
      return;
    }
    default:
      return rawFlow(rt, conn, target, read.buffer, policy, service);
  }
}

function httpContextOf(target: TunnelTarget): HttpContext {
  switch (target.kind) {
    case 'connect':
      return { kind: 'connect', host: target.host, port: target.port };
    case 'original':
      return { kind: 'original', address: target.address, port: target.port };
    default:
      return { kind: 'sni', port: target.port };
  }
}

/** A decision about what is known of the destination before any byte: the base for edge reasons. */
function contextDecision(
  policy: Policy,
  service: string | undefined,
  target: TunnelTarget,
  port: number,
): Decision {
  const now = Date.now();
  if (target.kind === 'connect')
    return decideAnyScheme(policy, CONNECTION_SCHEMES.tls, { host: target.host, port, service }, now);
  if (target.kind === 'original')
    return policy.decide({ scheme: 'tcp', address: target.address, port, service }, now);
  return blankDecision(policy, service, port, now);
}

function refuseUnread(rt: EdgeRuntime, conn: Connection, read: FirstBytes<unknown>, base: Decision): void {
  const flow = rt.newFlow(conn);
  const seconds = rt.limits.helloTimeout / 1000;
  if (read.status === 'timeout') {
    refuse(
      conn,
      flow,
      refineDecision(
        base,
        'hello_timeout',
        `no complete hello within ${seconds}s (${read.buffer.length} bytes received)`,
        true,
      ),
    );
  } else if (read.status === 'too_large') {
    refuse(
      conn,
      flow,
      refineDecision(
        base,
        'hello_too_large',
        `more than ${rt.limits.helloMaxBytes} bytes without a complete hello`,
        true,
      ),
    );
  } else {
    // The client closed (or failed) before its first message was complete: nothing to relay.
    flow.decide(
      refineDecision(
        base,
        'protocol_not_allowed',
        `the client closed after ${read.buffer.length} bytes, before a complete hello`,
        true,
      ),
    );
    conn.client.destroy();
    flow.complete('denied', conn.abortReason ?? 'client_closed');
  }
}

async function tlsFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  parse: Done<HelloParse>,
  policy: Policy,
  service: string | undefined,
): Promise<void> {
  const flow = rt.newFlow(conn);
  const port = target.port;
  const now = Date.now();
  if (parse.status === 'error') {
    const base = contextDecision(policy, service, target, port);
    const reason =
      parse.reason === 'too_large'
        ? 'hello_too_large'
        : parse.reason === 'unsupported_version'
          ? 'tls_version'
          : 'protocol_not_allowed';
    const alert = reason === 'tls_version' ? fatalAlert(ALERT.protocolVersion, 0x0301) : undefined;
    refuse(conn, flow, refineDecision(base, reason, `ClientHello refused: ${parse.detail}`, true), alert);
    return;
  }
  const hello = parse.hello;
  const clientVersion = effectiveMaxVersion(hello);
  flow.facts.serverName = hello.serverName;
  flow.facts.alpn = hello.alpn;
  flow.facts.clientVersion = clientVersion;
  const recordVersion = hello.recordVersion >> 8 === 3 ? hello.recordVersion : 0x0301;
  const alertReply = (description: number) => fatalAlert(description, recordVersion);

  const sni = hello.serverName === undefined ? undefined : normaliseHostName(hello.serverName);
  // The name the policy is asked about: the CONNECT host (explicit) or the SNI (transparent, sni-routed).
  const connect = connectHost(target);
  const name = target.kind === 'connect' ? connect.name : sni;
  const literal = connect.literal;
  const host = name ?? literal;

  const hostDecision =
    host !== undefined
      ? decideAnyScheme(policy, CONNECTION_SCHEMES.tls, { host, port, service }, now)
      : target.kind === 'original'
        ? decideAnyScheme(policy, CONNECTION_SCHEMES.tls, { address: target.address, port, service }, now)
        : blankDecision(policy, service, port, now);

  const checks = new Checks();
  const stop = (): void => refuse(conn, flow, checks.denied!, alertReply(checks.alert));

  if (hello.hasEch) {
    const how = `the ClientHello carries encrypted_client_hello, so its server_name${sni ? ` (${sni})` : ''} is the provider's public name, not the destination; clients must not use ECH through the edge`;
    if (checks.fail(refineDecision(hostDecision, 'ech_present', how))) return stop();
  }
  if (hello.serverName !== undefined && (sni === undefined || parseHost(sni).kind !== 'name')) {
    // RFC 6066: server_name holds a DNS name, never an address; anything else is refused, not guessed at.
    const how = `server_name ${JSON.stringify(hello.serverName)} is not a valid DNS name`;
    if (checks.fail(refineDecision(hostDecision, 'invalid_destination', how, true))) return stop();
  }
  if (sni === undefined && literal === undefined) {
    const how = 'the ClientHello carries no server_name, so the destination cannot be checked';
    // Nothing to route by on an SNI listener, even in report mode.
    if (checks.fail(refineDecision(hostDecision, 'sni_missing', how, target.kind === 'sni'))) return stop();
  }
  if (target.kind === 'connect' && sni !== undefined && sni !== name) {
    const how =
      literal !== undefined
        ? `CONNECT names the address ${literal} but the ClientHello names ${sni}`
        : `CONNECT names ${target.host} but the ClientHello names ${sni}; the tunnel must carry the name it was opened for`;
    if (checks.fail(refineDecision(hostDecision, 'sni_mismatch', how), ALERT.unrecognizedName)) return stop();
  }
  if (checks.fail(hostDecision)) return stop();
  const floor = TLS_VERSION_NUMBERS[hostDecision.tls.minVersion];
  if (clientVersion < floor) {
    const how = `the client offers at most ${tlsVersionName(clientVersion)}, below the rule's minVersion ${hostDecision.tls.minVersion}`;
    if (checks.fail(refineDecision(hostDecision, 'tls_version', how), ALERT.protocolVersion)) return stop();
  }

  const q: DestinationQuery = {
    scheme: hostDecision.scheme,
    port,
    service,
    name,
    literal,
    original: target.kind === 'original' ? target.address : undefined,
  };
  const resolved = await destinationOrEnd(rt, conn, flow, checks, policy, q, alertReply);
  if (!resolved) return;
  const decision = resolved.decision;
  flow.decide(decision);
  await relay(rt, conn, flow, {
    decision,
    addresses: resolved.dial,
    port,
    first: buffer,
    failReply: alertReply(ALERT.internalError),
    verify: (upstream) =>
      verifyServerHello(rt, conn, flow, upstream, { decision, floor, hello, recordVersion }),
  });
}

/**
 * Resolves and decides the addresses to dial, then ends the flow itself when there is nothing to dial.
 * Returns the decision and addresses to relay to, or undefined when the flow already ended.
 */
async function destinationOrEnd(
  rt: EdgeRuntime,
  conn: Connection,
  flow: FlowRecord,
  checks: Checks,
  policy: Policy,
  q: DestinationQuery,
  alertReply?: (d: number) => Buffer,
): Promise<{ decision: Decision; dial: string[] } | undefined> {
  const result = await resolveDestination(rt, policy, q, checks);
  const fallback = () =>
    checks.reported ??
    policy.decide({
      scheme: q.scheme,
      host: q.name ?? q.literal,
      address: q.original,
      port: q.port,
      service: q.service,
    });
  if (conn.client.destroyed) {
    flow.decide(fallback());
    flow.complete('ok', conn.abortReason ?? 'client_closed');
    return undefined;
  }
  if (checks.denied) {
    refuse(conn, flow, checks.denied, alertReply?.(checks.alert));
    return undefined;
  }
  if (result.status === 'nothing') {
    const d = refineDecision(
      checks.reported ?? blankDecision(policy, q.service, q.port),
      'sni_missing',
      'no name to route by',
      true,
    );
    refuse(conn, flow, d, alertReply?.(ALERT.accessDenied));
    return undefined;
  }
  if (result.status === 'unresolved') {
    flow.decide(fallback());
    closeGently(conn.client, alertReply?.(ALERT.internalError));
    flow.complete('error', 'upstream_unreachable', 'ENOTFOUND');
    return undefined;
  }
  return { decision: checks.reported ?? result.decision, dial: result.dial };
}

/** The name or literal a CONNECT target names (the decider's reading of it). */
function connectHost(target: TunnelTarget): { name?: string | undefined; literal?: string | undefined } {
  if (target.kind !== 'connect') return {};
  const parsed = parseHost(target.host);
  if (parsed.kind === 'ip') return { literal: canonicalAddress(parsed.ip.canonical) };
  if (parsed.kind === 'name') return { name: parsed.name };
  return {};
}

async function sshFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  parse: Done<SshBannerParse>,
  policy: Policy,
  service: string | undefined,
): Promise<void> {
  const flow = rt.newFlow(conn);
  const port = target.port;
  const now = Date.now();
  if (parse.status === 'error') {
    const base = contextDecision(policy, service, target, port);
    const reason = parse.reason === 'too_large' ? 'hello_too_large' : 'protocol_not_allowed';
    const how =
      parse.reason === 'ssh1'
        ? `SSH protocol 1 is not allowed (${parse.detail})`
        : `SSH banner refused: ${parse.detail}`;
    refuse(conn, flow, refineDecision(base, reason, how, true));
    return;
  }
  if (target.kind === 'sni') {
    const how = 'an SSH connection carries no name to route by on an SNI listener';
    refuse(
      conn,
      flow,
      refineDecision(blankDecision(policy, service, port, now), 'protocol_not_allowed', how, true),
    );
    return;
  }
  const { name, literal } = connectHost(target);
  // Transparent SSH has no name to claim: only `addresses` rules can allow it.
  const hostDecision = decideTarget(policy, 'ssh', target, name ?? literal, service, now);
  const checks = new Checks();
  if (checks.fail(hostDecision)) return refuse(conn, flow, checks.denied!);
  await resolveAndRelay(
    rt,
    conn,
    flow,
    checks,
    policy,
    { scheme: 'ssh', target, name, literal, service },
    buffer,
    (upstream) => verifySshBanner(rt, conn, upstream),
  );
}

/**
 * The tail of a nameless flow (SSH, raw TCP) once its target is allowed: resolve what to dial (each
 * address decided again), record the decision, relay the buffered first bytes and splice.
 */
async function resolveAndRelay(
  rt: EdgeRuntime,
  conn: Connection,
  flow: ReturnType<EdgeRuntime['newFlow']>,
  checks: Checks,
  policy: Policy,
  at: {
    scheme: 'ssh' | 'tcp';
    target: Exclude<TunnelTarget, { kind: 'sni' }>;
    name: string | undefined;
    literal: string | undefined;
    service: string | undefined;
  },
  buffer: Buffer,
  verify?: Parameters<typeof relay>[3]['verify'],
): Promise<void> {
  const port = at.target.port;
  const q: DestinationQuery = {
    scheme: at.scheme,
    port,
    service: at.service,
    name: at.name,
    literal: at.literal,
    original: at.target.kind === 'original' ? at.target.address : undefined,
  };
  const resolved = await destinationOrEnd(rt, conn, flow, checks, policy, q);
  if (!resolved) return;
  flow.decide(resolved.decision);
  await relay(rt, conn, flow, {
    decision: resolved.decision,
    addresses: resolved.dial,
    port,
    first: buffer,
    verify,
  });
}

/**
 * Decides a flow that carries no name of its own (SSH, raw TCP): by the original address in transparent
 * mode (only `addresses` rules can allow it), by the CONNECT host otherwise.
 */
function decideTarget(
  policy: Policy,
  scheme: 'ssh' | 'tcp',
  target: Exclude<TunnelTarget, { kind: 'sni' }>,
  host: string | undefined,
  service: string | undefined,
  now: number,
) {
  return target.kind === 'original'
    ? policy.decide({ scheme, address: target.address, port: target.port, service }, now)
    : policy.decide({ scheme, host: host ?? target.host, port: target.port, service }, now);
}

/** Bytes that are neither TLS, HTTP nor SSH: relayed only where a rule allows `tcp` to the destination. */
async function rawFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  policy: Policy,
  service: string | undefined,
): Promise<void> {
  const flow = rt.newFlow(conn);
  const port = target.port;
  const now = Date.now();
  const how = 'the first bytes are neither TLS, HTTP nor SSH-2, and no rule allows tcp to this destination';
  if (target.kind === 'sni') {
    refuse(
      conn,
      flow,
      refineDecision(blankDecision(policy, service, port, now), 'protocol_not_allowed', how, true),
    );
    return;
  }
  const { name, literal } = connectHost(target);
  const tcp = decideTarget(policy, 'tcp', target, name ?? literal, service, now);
  // A refusal here is about the bytes, not the name: say so, unless a deny rule named the destination.
  const first =
    !tcp.allowed || tcp.result === 'reported'
      ? tcp.reason === 'explicit_deny'
        ? tcp
        : refineDecision(tcp, 'protocol_not_allowed', how)
      : tcp;
  const checks = new Checks();
  if (checks.fail(first)) return refuse(conn, flow, checks.denied!);
  await resolveAndRelay(
    rt,
    conn,
    flow,
    checks,
    policy,
    { scheme: 'tcp', target, name, literal, service },
    buffer,
  );
}

/**
 * Dials the checked addresses, forwards the client's first bytes unchanged, lets `verify` read the
 * upstream's first answer, then splices both ways until both sides close.
 */
async function relay(rt: EdgeRuntime, conn: Connection, flow: FlowRecord, plan: RelayPlan): Promise<void> {
  const client = conn.client;
  const timeoutMs = Math.min(plan.decision.timeouts.connect, rt.limits.connectTimeout);
  const abort = new AbortController();
  const onClientClose = () => abort.abort();
  client.once('close', onClientClose);
  const started = performance.now();
  let upstream: net.Socket;
  try {
    upstream = await dial({ addresses: plan.addresses, port: plan.port, timeoutMs, signal: abort.signal });
  } catch (error) {
    client.off('close', onClientClose);
    const code = error instanceof DialError ? error.code : 'ERROR';
    if (code === 'ABORTED') {
      flow.complete('ok', conn.abortReason ?? 'client_closed');
      return;
    }
    closeGently(client, plan.failReply);
    flow.complete(code === 'timeout' ? 'timeout' : 'error', 'upstream_unreachable', code);
    return;
  }
  client.off('close', onClientClose);
  conn.addUpstream(upstream);
  rt.metrics.connect.observe({ listener: conn.listener }, (performance.now() - started) / 1000);
  if (client.destroyed) {
    upstream.destroy();
    flow.complete('ok', conn.abortReason ?? 'client_closed');
    return;
  }
  if (plan.first.length > 0) upstream.write(plan.first);
  if (plan.verify) {
    const verified = await plan.verify(upstream);
    if (!verified.ok) {
      flow.sent = upstream.bytesWritten;
      flow.received = upstream.bytesRead;
      upstream.destroy();
      closeGently(client, verified.toClient);
      flow.complete(verified.outcome, conn.abortReason ?? verified.closeReason, verified.errorType);
      return;
    }
  }
  splice(conn, flow, upstream, Math.min(plan.decision.timeouts.idle, rt.limits.idleTimeout));
}

/** Pipes both ways, passes on half-closes, enforces the idle limit, and writes the completion once both sides closed. */
export function splice(conn: Connection, flow: FlowRecord, upstream: net.Socket, idleMs: number): void {
  const client = conn.client;
  let closeReason: string | undefined;
  let outcome: FlowOutcome = 'ok';
  let errorType: string | undefined;
  const note = (reason: string, o: FlowOutcome = 'ok', error?: string) => {
    if (closeReason !== undefined) return;
    closeReason = reason;
    outcome = o;
    errorType = error;
  };
  const onIdle = () => {
    note('idle_timeout', 'timeout');
    client.destroy();
    upstream.destroy();
  };
  client.setTimeout(idleMs, onIdle);
  upstream.setTimeout(idleMs, onIdle);
  client.on('end', () => note('client_closed'));
  upstream.on('end', () => note('upstream_closed'));
  client.on('error', (e: NodeJS.ErrnoException) => {
    note('client_error', 'error', e.code ?? e.message);
    upstream.destroy();
  });
  upstream.on('error', (e: NodeJS.ErrnoException) => {
    note('upstream_error', 'error', e.code ?? e.message);
    client.destroy();
  });
  let closed = 0;
  const onClosed = () => {
    if (++closed < 2) return;
    flow.sent = upstream.bytesWritten;
    flow.received = upstream.bytesRead;
    const aborted = conn.abortReason;
    flow.complete(aborted ? 'ok' : outcome, aborted ?? closeReason ?? 'closed', errorType);
  };
  // When one side is gone for good, the other gets what is queued for it, then is closed.
  const finishOther = (other: net.Socket) => {
    if (other.destroyed) return;
    other.end();
    const timer = setTimeout(() => other.destroy(), 2000);
    timer.unref();
    other.once('close', () => clearTimeout(timer));
  };
  // A socket may already be closed (the peer left while the upstream's first answer was read).
  const onceClosed = (socket: net.Socket, other: net.Socket) => {
    const run = () => {
      onClosed();
      finishOther(other);
    };
    if (socket.closed) queueMicrotask(run);
    else socket.once('close', run);
  };
  onceClosed(client, upstream);
  onceClosed(upstream, client);
  client.pipe(upstream);
  upstream.pipe(client);
}

/** Reads the ServerHello (and, after a HelloRetryRequest, the client's second hello) and checks the floor. */
async function verifyServerHello(
  rt: EdgeRuntime,
  conn: Connection,
  flow: FlowRecord,
  upstream: net.Socket,
  ctx: { decision: Decision; floor: number; hello: ClientHelloInfo; recordVersion: number },
): Promise<Verified> {
  const alert = (d: number) => fatalAlert(d, ctx.recordVersion);
  for (let round = 0; round < 2; round++) {
    const read = await readFirstBytes(
      upstream,
      EMPTY,
      (b): Done<ServerHelloParse> | undefined => {
        const r = parseServerHello(b, SERVER_HELLO_MAX);
        return r.status === 'need-more' ? undefined : r;
      },
      { deadline: Date.now() + rt.limits.helloTimeout, maxBytes: SERVER_HELLO_MAX },
    );
    if (read.status === 'timeout') {
      return {
        ok: false,
        outcome: 'timeout',
        closeReason: 'server_hello_timeout',
        toClient: alert(ALERT.internalError),
      };
    }
    if (read.status === 'too_large') {
      return {
        ok: false,
        outcome: 'error',
        closeReason: 'protocol_not_allowed',
        toClient: alert(ALERT.handshakeFailure),
        errorType: 'ServerHello too large',
      };
    }
    if (read.status === 'closed') {
      return { ok: false, outcome: 'error', closeReason: 'upstream_closed', toClient: read.buffer };
    }
    const sh = read.value;
    if (sh.status === 'error') {
      if (sh.reason === 'alert') {
        // The server refused the handshake itself; pass its alert on so the client reports the real reason.
        return {
          ok: false,
          outcome: 'tls',
          closeReason: 'upstream_alert',
          toClient: read.buffer,
          errorType: sh.detail,
        };
      }
      return {
        ok: false,
        outcome: 'error',
        closeReason: 'protocol_not_allowed',
        toClient: alert(ALERT.handshakeFailure),
        errorType: `upstream ServerHello: ${sh.detail}`,
      };
    }
    flow.facts.serverVersion = sh.selectedVersion;
    if (round === 1 && sh.helloRetryRequest) {
      return {
        ok: false,
        outcome: 'error',
        closeReason: 'protocol_not_allowed',
        toClient: alert(ALERT.handshakeFailure),
        errorType: 'second HelloRetryRequest',
      };
    }
    if (sh.selectedVersion < ctx.floor) {
      const detail = `the server selected ${tlsVersionName(sh.selectedVersion)}, below the rule's minVersion ${ctx.decision.tls.minVersion}`;
      if (ctx.decision.mode !== 'report') {
        return {
          ok: false,
          outcome: 'denied',
          closeReason: 'tls_version',
          toClient: alert(ALERT.protocolVersion),
          errorType: detail,
        };
      }
      // Report mode: the flow goes on; its completion event carries the would-be denial.
      flow.facts.reportedServerVersion = detail;
    }
    conn.client.write(read.buffer);
    if (!sh.helloRetryRequest) return { ok: true };

    // After a HelloRetryRequest the client sends a second ClientHello: it must name the same server.
    const second = await readFirstBytes(conn.client, EMPTY, parseSecondHello, {
      deadline: Date.now() + rt.limits.helloTimeout,
      maxBytes: rt.limits.helloMaxBytes,
    });
    if (second.status !== 'ok') {
      return {
        ok: false,
        outcome: second.status === 'timeout' ? 'timeout' : 'error',
        closeReason: second.status === 'timeout' ? 'hello_timeout' : 'client_closed',
      };
    }
    const again = second.value;
    if (again.status === 'error') {
      return {
        ok: false,
        outcome: 'denied',
        closeReason: 'protocol_not_allowed',
        toClient: alert(ALERT.handshakeFailure),
        errorType: again.detail,
      };
    }
    if (again.hello.hasEch) {
      return {
        ok: false,
        outcome: 'denied',
        closeReason: 'ech_present',
        toClient: alert(ALERT.accessDenied),
      };
    }
    if (again.hello.serverName !== ctx.hello.serverName) {
      return {
        ok: false,
        outcome: 'denied',
        closeReason: 'sni_mismatch',
        toClient: alert(ALERT.accessDenied),
        errorType: 'the second ClientHello names another server',
      };
    }
    upstream.write(second.buffer);
  }
  return { ok: true };
}

function parseSecondHello(buffer: Buffer): Done<HelloParse> | undefined {
  const skip = leadingChangeCipherSpec(buffer);
  if (skip < 0) return undefined;
  const r = parseClientHello(buffer.subarray(skip));
  return r.status === 'need-more' ? undefined : r;
}

/** Reads the server's SSH identification: SSH-1 servers are refused like SSH-1 clients. */
async function verifySshBanner(rt: EdgeRuntime, conn: Connection, upstream: net.Socket): Promise<Verified> {
  const read = await readFirstBytes(
    upstream,
    EMPTY,
    (b): Done<SshBannerParse> | undefined => {
      const r = parseSshBanner(b, 8192, { role: 'server' });
      return r.status === 'need-more' ? undefined : r;
    },
    { deadline: Date.now() + rt.limits.helloTimeout, maxBytes: 8192 },
  );
  if (read.status === 'timeout')
    return { ok: false, outcome: 'timeout', closeReason: 'server_hello_timeout' };
  if (read.status !== 'ok')
    return {
      ok: false,
      outcome: 'error',
      closeReason: read.status === 'closed' ? 'upstream_closed' : 'protocol_not_allowed',
    };
  const banner = read.value;
  if (banner.status === 'error') {
    return {
      ok: false,
      outcome: banner.reason === 'ssh1' ? 'denied' : 'error',
      closeReason: 'protocol_not_allowed',
      errorType: `upstream SSH banner: ${banner.detail}`,
    };
  }
  conn.client.write(read.buffer);
  return { ok: true };
}

/** A short HTTP/1.1 error response for the explicit proxy, naming the reason. */
export function httpError(status: number, reason: string, message: string): string {
  const text = STATUS_TEXT[status] ?? 'Error';
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\nx-egress-reason: ${reason}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
