/**
 * A rule, service or host name as part of a Kubernetes object name or label value (DNS-1123 label
 * characters: lower-case letters, digits, `-`), shared by the manifests of the Cilium and Istio targets.
 * Runs of other characters become one `-`; `fallback` when nothing is left.
 */
export function kubernetesNamePart(text: string, fallback: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || fallback
  );
}
