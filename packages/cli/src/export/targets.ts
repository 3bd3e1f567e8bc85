import { awsNetworkFirewallTarget } from './aws-network-firewall/aws-network-firewall-target.js';
import { ciliumTarget } from './cilium/cilium-target.js';
import type { ExportTarget } from './core/index.js';
import { envoyTarget } from './envoy/envoy-target.js';
import { haproxyTarget } from './haproxy/haproxy-target.js';
import { istioTarget } from './istio/istio-target.js';
import { nginxTarget } from './nginx/nginx-target.js';
import { squidTarget } from './squid/squid-target.js';

/** Every `--to` target, by name. Add one line per target (and its import). */
export const EXPORT_TARGETS: Readonly<Record<string, ExportTarget>> = {
  nginx: nginxTarget,
  haproxy: haproxyTarget,
  squid: squidTarget,
  envoy: envoyTarget,
  cilium: ciliumTarget,
  'aws-network-firewall': awsNetworkFirewallTarget,
  istio: istioTarget,
};
