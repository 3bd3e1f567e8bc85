/**
 * A tunnel whose first bytes are a TLS ClientHello (CONNECT, transparent and SNI-routed listeners): the
 * SNI is checked against the CONNECT host or the original destination, decided with the rule's TLS floor,
 * relayed, and the upstream's ServerHello checked against that floor before the splice.
 */
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
import type { Connection } from '../connection.js';
import { decisionsFor } from '../decision-memo.js';
import { Checks } from '../destination.js';
import { relay } from '../relay.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';
import type { HelloParse } from '../sniff/index.js';
import { effectiveMaxVersion } from '../sniff/index.js';
import { ALERT, fatalAlert, TLS_VERSION_NUMBERS, tlsVersionName } from '../tls-wire.js';
import { verifyServerHello } from '../upstream-checks.js';
import { type Assessment, checkedDestination } from './checked-destination.js';
import { connectHost, contextDecision, type TunnelTarget } from './tunnel-target.js';

type Done<T extends { status: string }> = Exclude<T, { status: 'need-more' }>;

/** Decides and relays a TLS flow whose ClientHello was read whole into `buffer`. */
export async function tlsFlow(
  rt: EdgeRuntime,
  conn: Connection,
  target: TunnelTarget,
  buffer: Buffer,
  parse: Done<HelloParse>,
): Promise<void> {
  const flow = rt.newFlow(conn);
  if (parse.status === 'error') {
    const policy = rt.policy;
    const base = contextDecision(policy, conn.serviceIn(policy), target);
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
  const port = target.port;

  const assess = (policy: Policy): Assessment => {
    const now = Date.now();
    const service = conn.serviceIn(policy);
    const decider = decisionsFor(policy);
    const hostDecision =
      host !== undefined
        ? decideAnyScheme(decider, CONNECTION_SCHEMES.tls, { host, port, service }, now)
        : target.kind === 'original'
          ? decideAnyScheme(decider, CONNECTION_SCHEMES.tls, { address: target.address, port, service }, now)
          : blankDecision(decider, service, port, now);
    const checks = new Checks();
    const stop = (): Assessment => ({
      status: 'refused',
      decision: checks.denied!,
      reply: alertReply(checks.alert),
    });
    if (hello.serverNames.length > 1) {
      // RFC 6066 3: at most one name of each type. Which one the upstream would serve is its guess.
      const names = hello.serverNames.map((n) => JSON.stringify(n)).join(', ');
      const how = `the ClientHello's server_name lists ${hello.serverNames.length} host names (${names}); RFC 6066 allows one, so the destination is ambiguous`;
      if (checks.fail(refineDecision(hostDecision, 'invalid_destination', how, true))) return stop();
    }
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
      if (checks.fail(refineDecision(hostDecision, 'sni_mismatch', how), ALERT.unrecognizedName))
        return stop();
    }
    if (checks.fail(hostDecision)) return stop();
    const floor = TLS_VERSION_NUMBERS[hostDecision.tls.minVersion];
    if (clientVersion < floor) {
      const how = `the client offers at most ${tlsVersionName(clientVersion)}, below the rule's minVersion ${hostDecision.tls.minVersion}`;
      if (checks.fail(refineDecision(hostDecision, 'tls_version', how), ALERT.protocolVersion)) return stop();
    }
    return {
      status: 'checked',
      checks,
      query: {
        scheme: hostDecision.scheme,
        port,
        service,
        name,
        literal,
        original: target.kind === 'original' ? target.address : undefined,
      },
    };
  };

  const checked = await checkedDestination(rt, conn, flow, assess, alertReply);
  if (!checked) return;
  const decision: Decision = checked.decision;
  const floor = TLS_VERSION_NUMBERS[decision.tls.minVersion];
  await relay(rt, conn, flow, {
    decision,
    addresses: checked.dial,
    port,
    first: buffer,
    failReply: alertReply(ALERT.internalError),
    verify: (upstream) =>
      verifyServerHello(rt, conn, flow, upstream, { decision, floor, hello, recordVersion }),
  });
}
