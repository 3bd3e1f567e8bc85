import type { HostMatch } from '../core/index.js';

/**
 * One host pattern as an Istio host (ServiceEntry `hosts`, Gateway `hosts`, VirtualService `sniHosts`).
 *
 * Istio's wildcard is a leading `*.` matching any number of labels (hosts are compared by suffix; the sidecar's
 * TLS filter chains use Envoy's `server_names`, where `*.example.com` matches `a.b.example.com`): our
 * `**.example.com`. Our one-label and label-glob patterns have no Istio form; the target's semantics make the
 * core drop them before rendering (narrower, with a warning).
 */
export function istioHost(pattern: HostMatch): string {
  switch (pattern.kind) {
    case 'exact':
      return pattern.name;
    case 'multi-label':
      return `*.${pattern.suffix}`;
    case 'one-label':
      throw new Error(
        `internal: "${pattern.text}" reached the Istio renderer (the core drops one-label patterns)`,
      );
  }
}
