/**
 * Well-known public DNS-over-HTTPS resolvers. At the edge, DoH is a host like any other (denied unless a
 * rule lists it); a rule that does list one opens a resolver the DNS guard cannot see into, so `lint`
 * warns about it. Names only: the resolvers' anycast addresses are listed by `addresses` rules, which
 * are warned about by their own hosts' absence, not here.
 */
import { compileHostPattern, hostPatternMatches } from './host-pattern.js';

/** Host names of public DoH services (Google, Cloudflare, Quad9, OpenDNS, AdGuard, NextDNS, ...). */
export const PUBLIC_DOH_HOSTS: readonly string[] = [
  'dns.google',
  'dns.google.com',
  'cloudflare-dns.com',
  'mozilla.cloudflare-dns.com',
  'security.cloudflare-dns.com',
  'family.cloudflare-dns.com',
  'one.one.one.one',
  '1dot1dot1dot1.cloudflare-dns.com',
  'dns.quad9.net',
  'dns9.quad9.net',
  'dns11.quad9.net',
  'doh.opendns.com',
  'dns.adguard-dns.com',
  'dns.adguard.com',
  'dns.nextdns.io',
  'doh.cleanbrowsing.org',
  'doh.dns.sb',
  'dns.alidns.com',
  'doh.pub',
  'dns.controld.com',
  'doh.mullvad.net',
];

/** The public DoH resolvers a host entry of a rule (exact or pattern) would allow. */
export function publicDohHostsAllowedBy(hostEntry: string): string[] {
  const compiled = compileHostPattern(hostEntry);
  if (!compiled.ok) return [];
  return PUBLIC_DOH_HOSTS.filter((name) => hostPatternMatches(compiled.pattern, name));
}
