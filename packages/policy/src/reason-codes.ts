/**
 * Stable decision reason codes. Used in errors, audit events and metrics.
 * Never rename one: add new codes at the end.
 */
export const REASON_CODES = [
  'allowed',
  'host_not_allowed',
  'address_not_allowed',
  'private_address',
  'scheme_not_allowed',
  'port_not_allowed',
  'method_not_allowed',
  'path_not_allowed',
  'explicit_deny',
  'tls_version',
  'tls_verify_disabled',
  'sni_missing',
  'sni_mismatch',
  'ech_present',
  'protocol_not_allowed',
  'circuit_open',
  'invalid_destination',
  'dns_mismatch',
  'hello_timeout',
  'hello_too_large',
  'connection_limit',
  'upstream_unreachable',
  'timeout',
  'dns_type_not_allowed',
  'proxy_auth_required',
  'proxy_auth_invalid',
  'proxy_auth_rate_limited',
] as const;

/** A stable reason code: why a destination was allowed or denied. */
export type ReasonCode = (typeof REASON_CODES)[number];

/** One line per reason: what it means, shown by the CLI and in docs/policy.md. */
export const REASON_DESCRIPTIONS: Readonly<Record<ReasonCode, string>> = {
  allowed: 'an allow rule matched every dimension of the destination',
  host_not_allowed: 'no allow rule lists this host name',
  address_not_allowed: 'no allow rule lists this IP address in its addresses',
  private_address: 'the name resolved to a special-purpose (private, loopback, link-local, ...) address',
  scheme_not_allowed: 'a rule lists the host but not this scheme',
  port_not_allowed: 'a rule lists the host but not this port',
  method_not_allowed: 'a rule lists the host but not this HTTP method',
  path_not_allowed: 'a rule lists the host but no path pattern matches this path',
  explicit_deny: 'a deny rule matched; deny always wins over allow',
  tls_version: 'the TLS version is below the rule’s minVersion',
  tls_verify_disabled: 'certificate verification was turned off but the rule does not allow it',
  sni_missing: 'the TLS ClientHello carried no server_name',
  sni_mismatch: 'the claimed name (SNI, CONNECT host, Host header) differs from the real destination',
  ech_present: 'the ClientHello uses Encrypted Client Hello: the real destination is hidden',
  protocol_not_allowed: 'the first bytes are not a protocol the policy allows here (TLS, HTTP, SSH-2)',
  circuit_open: 'the circuit breaker for this rule and origin is open',
  invalid_destination: 'the destination could not be parsed or is not a valid DNS name or address',
  dns_mismatch: 'the claimed name does not resolve to the address the client connected to',
  hello_timeout: 'the client did not send a complete hello within the time limit',
  hello_too_large: 'the client hello exceeded the size cap',
  connection_limit: 'too many connections (total or from this source)',
  upstream_unreachable: 'the allowed destination could not be reached',
  timeout: 'a connect, response, idle or total timeout elapsed',
  dns_type_not_allowed:
    'a rule lists the name but not this DNS query type or class (the DNS guard allows A, AAAA, CNAME, HTTPS and SVCB unless the rule’s dns.types says otherwise)',
  proxy_auth_required:
    'the edge’s explicit proxy requires service credentials (Proxy-Authorization) and the request carried none',
  proxy_auth_invalid:
    'the Proxy-Authorization credentials do not match a service’s token in the edge’s secrets file',
  proxy_auth_rate_limited:
    'too many failed proxy credentials from this source address: refused without checking until the window ends',
};
