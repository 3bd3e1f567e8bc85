import { refineDecision } from '@egress-guard/policy';
/**
 * The transparent listener: connections redirected by iptables/nftables REDIRECT (or TPROXY). The
 * original destination is the fact; the SNI or Host is the claim, which must resolve through the edge's
 * own resolver to that address (`dns_mismatch` otherwise). The edge dials the original address only.
 */
import { canonicalAddress } from '../claims.js';
import type { OriginalDestinationReader } from '../config.js';
import type { Connection } from '../connection.js';
import { runTunnel } from '../flows/tunnel.js';
import { originalDestination } from '../original-destination.js';
import { refuse } from '../replies.js';
import type { EdgeRuntime } from '../runtime.js';

/** Reads the original destination of a redirected connection and runs its flow. Never throws. */
export function handleTransparent(
  rt: EdgeRuntime,
  conn: Connection,
  read: OriginalDestinationReader = originalDestination,
): Promise<void> {
  const socket = conn.client;
  let address: string | undefined;
  let port = 0;
  let problem: string | undefined;
  try {
    const original = read(socket);
    address = canonicalAddress(original.address);
    port = original.port;
    if (address === undefined) problem = `"${original.address}" is not an IP address`;
    else if (address === canonicalAddress(socket.localAddress ?? '') && port === socket.localPort) {
      // Not redirected: the client connected to the listener itself. Dialling it would loop.
      problem = 'the connection was made to the listener itself, not redirected to it';
    }
  } catch (error) {
    problem = `the original destination is unavailable (${(error as Error).message})`;
  }
  if (problem !== undefined || address === undefined) {
    const policy = rt.policy;
    const base = policy.decide({
      scheme: 'tcp',
      port: conn.localPort,
      service: policy.serviceForAddress(conn.source),
    });
    refuse(
      conn,
      rt.newFlow(conn),
      refineDecision(base, 'invalid_destination', problem ?? 'no original destination', true),
    );
    return Promise.resolve();
  }
  return runTunnel(rt, conn, { kind: 'original', address, port }, Buffer.alloc(0));
}
