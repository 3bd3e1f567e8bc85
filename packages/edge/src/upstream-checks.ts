/**
 * Checks of the upstream's first answer, made after the flow was allowed and dialled: the ServerHello's
 * version against the rule's floor (and, after a HelloRetryRequest, the client's second hello against
 * the first), and the server's SSH identification. A refusal here is a decision like any other, refined
 * from the flow's (`refineDecision`), so the flow's decision event says `denied` with its reason.
 */
import type net from 'node:net';
import { type Decision, refineDecision } from '@egress-guard/policy';
import type { Connection } from './connection.js';
import { readFirstBytes } from './first-bytes.js';
import type { FlowRecord } from './flow-record.js';
import type { Verified } from './relay.js';
import type { EdgeRuntime } from './runtime.js';
import {
  type ClientHelloInfo,
  type HelloParse,
  parseClientHello,
  parseServerHello,
  parseSshBanner,
  type ServerHelloParse,
  type SshBannerParse,
} from './sniff/index.js';
import { ALERT, fatalAlert, leadingChangeCipherSpec, tlsVersionName } from './tls-wire.js';

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

const EMPTY = Buffer.alloc(0);
/** A ServerHello and what a TLS 1.2 server sends with it fit well within this. */
const SERVER_HELLO_MAX = 16_384 + 4 * 5;
/** An SSH identification line is at most 255 bytes; lines before it are allowed, within reason. */
const SSH_BANNER_MAX = 8192;

/** What the ServerHello check needs to know about the flow. */
export interface ServerHelloContext {
  decision: Decision;
  /** The rule's minimum TLS version (wire value). */
  floor: number;
  hello: ClientHelloInfo;
  recordVersion: number;
}

/**
 * A refusal of the upstream's answer: the flow's decision refined with `reason`. In report mode (and not
 * `enforce`) it is only reported: the caller lets the flow go on with that decision.
 */
function refusal(
  decision: Decision,
  reason: Parameters<typeof refineDecision>[1],
  how: string,
  toClient: Buffer | undefined,
  enforce = false,
): Verified {
  const refined = refineDecision(decision, reason, how, enforce);
  if (refined.allowed) return { ok: true, decision: refined };
  return { ok: false, outcome: 'denied', closeReason: reason, toClient, errorType: how, decision: refined };
}

/** Reads the ServerHello (and, after a HelloRetryRequest, the client's second hello) and checks the floor. */
export async function verifyServerHello(
  rt: EdgeRuntime,
  conn: Connection,
  flow: FlowRecord,
  upstream: net.Socket,
  ctx: ServerHelloContext,
): Promise<Verified> {
  const alert = (d: number) => fatalAlert(d, ctx.recordVersion);
  let reported: Decision | undefined;
  for (let round = 0; round < 2; round++) {
    const read = await readFirstBytes(upstream, EMPTY, parseServerHelloDone, {
      deadline: Date.now() + rt.limits.helloTimeout,
      maxBytes: SERVER_HELLO_MAX,
    });
    if (read.status === 'timeout') {
      return {
        ok: false,
        outcome: 'timeout',
        closeReason: 'server_hello_timeout',
        toClient: alert(ALERT.internalError),
      };
    }
    if (read.status === 'too_large') {
      return refusal(
        ctx.decision,
        'protocol_not_allowed',
        `the upstream sent more than ${SERVER_HELLO_MAX} bytes without a complete ServerHello`,
        alert(ALERT.handshakeFailure),
        true,
      );
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
      return refusal(
        ctx.decision,
        'protocol_not_allowed',
        `the upstream's ServerHello is not acceptable: ${sh.detail}`,
        alert(ALERT.handshakeFailure),
        true,
      );
    }
    flow.facts.serverVersion = sh.selectedVersion;
    if (round === 1 && sh.helloRetryRequest) {
      return refusal(
        ctx.decision,
        'protocol_not_allowed',
        'the upstream sent a second HelloRetryRequest',
        alert(ALERT.handshakeFailure),
        true,
      );
    }
    if (sh.selectedVersion < ctx.floor) {
      const how = `the server selected ${tlsVersionName(sh.selectedVersion)}, below the rule's minVersion ${ctx.decision.tls.minVersion}`;
      const verdict = refusal(ctx.decision, 'tls_version', how, alert(ALERT.protocolVersion));
      if (!verdict.ok) return verdict;
      // Report mode: the flow goes on; its events carry the would-be denial.
      flow.facts.reportedServerVersion = how;
      reported ??= verdict.decision;
    }
    conn.client.write(read.buffer);
    if (!sh.helloRetryRequest) return { ok: true, decision: reported };

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
      return refusal(
        ctx.decision,
        'protocol_not_allowed',
        `the second ClientHello (after a HelloRetryRequest) is not acceptable: ${again.detail}`,
        alert(ALERT.handshakeFailure),
        true,
      );
    }
    if (again.hello.hasEch) {
      const how =
        'the second ClientHello (after a HelloRetryRequest) carries encrypted_client_hello; clients must not use ECH through the edge';
      const verdict = refusal(ctx.decision, 'ech_present', how, alert(ALERT.accessDenied));
      if (!verdict.ok) return verdict;
      reported ??= verdict.decision;
    }
    if (again.hello.serverName !== ctx.hello.serverName) {
      const how = `the second ClientHello (after a HelloRetryRequest) names ${again.hello.serverName ?? 'no server'}, not ${ctx.hello.serverName ?? 'no server'} as the first did`;
      const verdict = refusal(ctx.decision, 'sni_mismatch', how, alert(ALERT.accessDenied));
      if (!verdict.ok) return verdict;
      reported ??= verdict.decision;
    }
    upstream.write(second.buffer);
  }
  return { ok: true, decision: reported };
}

function parseServerHelloDone(buffer: Buffer): Done<ServerHelloParse> | undefined {
  const r = parseServerHello(buffer, SERVER_HELLO_MAX);
  return r.status === 'need-more' ? undefined : r;
}

function parseSecondHello(buffer: Buffer): Done<HelloParse> | undefined {
  const skip = leadingChangeCipherSpec(buffer);
  if (skip < 0) return undefined;
  const r = parseClientHello(buffer.subarray(skip));
  return r.status === 'need-more' ? undefined : r;
}

function parseServerBanner(buffer: Buffer): Done<SshBannerParse> | undefined {
  const r = parseSshBanner(buffer, SSH_BANNER_MAX, { role: 'server' });
  return r.status === 'need-more' ? undefined : r;
}

/** Reads the server's SSH identification: SSH-1 servers are refused like SSH-1 clients. */
export async function verifySshBanner(
  rt: EdgeRuntime,
  conn: Connection,
  upstream: net.Socket,
  decision: Decision,
): Promise<Verified> {
  const read = await readFirstBytes(upstream, EMPTY, parseServerBanner, {
    deadline: Date.now() + rt.limits.helloTimeout,
    maxBytes: SSH_BANNER_MAX,
  });
  if (read.status === 'timeout')
    return { ok: false, outcome: 'timeout', closeReason: 'server_hello_timeout' };
  if (read.status === 'closed') return { ok: false, outcome: 'error', closeReason: 'upstream_closed' };
  if (read.status === 'too_large') {
    const how = `the upstream sent more than ${SSH_BANNER_MAX} bytes without an SSH identification line`;
    return refusal(decision, 'protocol_not_allowed', how, undefined, true);
  }
  const banner = read.value;
  if (banner.status === 'error') {
    const how =
      banner.reason === 'ssh1'
        ? `the upstream speaks SSH protocol 1, which is not allowed (${banner.detail})`
        : `the upstream's SSH banner is not acceptable: ${banner.detail}`;
    return refusal(decision, 'protocol_not_allowed', how, undefined, true);
  }
  conn.client.write(read.buffer);
  return { ok: true };
}
