import type { HostMatch } from '../core/index.js';

/**
 * One host pattern as an Istio host (ServiceEntry `hosts`, Gateway `hosts`, VirtualService `sniHosts`).
 *
 * Istio's wildcard is a leading `*.` matching any number of labels (hosts are compared by suffix; the sidecar's
 * TLS filter chains use Envoy's `server_names`, where `*.example.com` matches `a.b.example.com`): our
 * `**.example.com`. Our one-label `*.example.com` and globs within a label (`api-*`) have no Istio form that is
 * not wider, so they are refused with choices.
 */
export type IstioHostResult = { ok: true; host: string } | { ok: false; reason: string; choices: string[] };

export function istioHost(pattern: HostMatch): IstioHostResult {
  switch (pattern.kind) {
    case 'exact':
      return { ok: true, host: pattern.name };
    case 'multi-label':
      return { ok: true, host: `*.${pattern.suffix}` };
    case 'one-label':
      return {
        ok: false,
        reason:
          pattern.labelGlob === undefined
            ? `Istio's "*.${pattern.suffix}" matches any number of labels, wider than "${pattern.text}" (exactly one)`
            : `Istio has no wildcard within a label ("${pattern.text}")`,
        choices: [
          `list the names "${pattern.text}" stands for`,
          `write "**.${pattern.suffix}" in the policy if any depth is intended`,
        ],
      };
  }
}
