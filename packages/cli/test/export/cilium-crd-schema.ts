/**
 * The fields of CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (`cilium.io/v2`) that `egress-guard export
 * --to cilium` writes, as documented by Cilium 1.18 ("Layer 3 / DNS based", "Layer 4", "Layer 7 / DNS policy"
 * and the CRD reference of docs.cilium.io v1.18, checked against pkg/policy/api: rule.go, egress.go, fqdn.go,
 * l4.go, selector.go, and pkg/fqdn/matchpattern). Cilium ships no npm package with its CRD schema, so this is
 * the schema written down by hand, strict (`z.strictObject`): a key Cilium does not know fails, as it would
 * fail `kubectl apply` against the CRD's structural schema.
 *
 * Only what export uses is listed; anything else is refused here on purpose, so a new field in the output has to
 * be checked against Cilium's documentation and added.
 */
import { z } from 'zod';

/** Label keys and values as Kubernetes allows them (`k8s:` source prefix accepted, as Cilium does). */
const labelKey = z
  .string()
  .regex(/^(k8s:|any:)?([a-z0-9.-]+\/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/);
const labelValue = z.string().regex(/^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/);

const endpointSelector = z.strictObject({
  matchLabels: z.record(labelKey, labelValue).optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: labelKey,
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(labelValue).optional(),
      }),
    )
    .optional(),
});

/** fqdn.go: MatchName `^([-a-zA-Z0-9_]+[.]?)+$`, MatchPattern `^([-a-zA-Z0-9_*]+[.]?)+$` (kubebuilder markers). */
const fqdnSelector = z.union([
  z.strictObject({
    matchName: z
      .string()
      .max(255)
      .regex(/^([-a-zA-Z0-9_]+[.]?)+$/),
  }),
  z.strictObject({
    matchPattern: z
      .string()
      .max(255)
      .regex(/^([-a-zA-Z0-9_*]+[.]?)+$/),
  }),
]);

/** l4.go PortProtocol: port is a string (number or IANA name), endPort for ranges (1.14+). */
const portProtocol = z.strictObject({
  port: z.string().regex(/^(6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})$/),
  endPort: z.number().int().min(1).max(65535).optional(),
  protocol: z.enum(['TCP', 'UDP', 'SCTP', 'ANY']),
});

const portRule = z.strictObject({
  ports: z.array(portProtocol).min(1),
  rules: z
    .strictObject({
      dns: z.array(fqdnSelector).min(1),
    })
    .optional(),
});

const cidrRule = z.strictObject({
  cidr: z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/),
  except: z.array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/)).optional(),
});

const egressRule = z.strictObject({
  toFQDNs: z.array(fqdnSelector).min(1).optional(),
  toEndpoints: z.array(endpointSelector).min(1).optional(),
  toCIDRSet: z.array(cidrRule).min(1).optional(),
  toPorts: z.array(portRule).min(1).optional(),
});

/** egressDeny cannot carry toFQDNs nor L7 rules (Cilium: "deny policies do not support L7 / FQDN"). */
const egressDenyRule = z.strictObject({
  toCIDRSet: z.array(cidrRule).min(1),
  toPorts: z
    .array(z.strictObject({ ports: z.array(portProtocol).min(1) }))
    .min(1)
    .optional(),
});

const rule = z.strictObject({
  description: z.string().optional(),
  endpointSelector,
  egress: z.array(egressRule).optional(),
  egressDeny: z.array(egressDenyRule).optional(),
});

const metadata = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/),
  namespace: z.string().optional(),
  labels: z.record(labelKey, labelValue).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** One exported document: a namespaced policy or a clusterwide one, with `specs` (a list of rules). */
export const ciliumPolicySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    apiVersion: z.literal('cilium.io/v2'),
    kind: z.literal('CiliumNetworkPolicy'),
    metadata: metadata.extend({ namespace: z.string().min(1) }),
    specs: z.array(rule).min(1),
  }),
  z.strictObject({
    apiVersion: z.literal('cilium.io/v2'),
    kind: z.literal('CiliumClusterwideNetworkPolicy'),
    metadata: metadata.extend({ namespace: z.undefined().optional() }),
    specs: z.array(rule).min(1),
  }),
]);

export type CiliumPolicyDocument = z.infer<typeof ciliumPolicySchema>;
