/**
 * The SNI-routed listener: the destination is the name in the TLS ClientHello (or the HTTP Host header)
 * and a fixed upstream port. There is no fact to check that claim against (no CONNECT host, no original
 * destination), so this mode is weaker than the other two: a client can name any allowed host and reach
 * it, which is all the policy promises, but domain fronting through a shared front end is not detected.
 */
import type { Connection } from '../connection.js';
import { runTunnel } from '../flows/tunnel.js';
import type { EdgeRuntime } from '../runtime.js';

/** Routes a connection by its SNI (or Host) to `upstreamPort`. Never throws. */
export function handleSniRouted(rt: EdgeRuntime, conn: Connection, upstreamPort: number): Promise<void> {
  return runTunnel(rt, conn, { kind: 'sni', port: upstreamPort }, Buffer.alloc(0));
}
