// spec.tls.issuerRef: one cert-manager `Certificate` (cert-manager.io/v1) for the names clients use to
// reach the Service, whose Secret the gateway mounts (workload.ts). cert-manager issues it, renews it
// before it expires and rewrites the Secret in place; the kubelet swaps the mounted files and the
// gateway reloads them (gateway/src/tls.ts), so a renewal needs no restart.
import { ApiObject, type Chart } from "cdk8s";
import type { McpServer } from "../api/v1alpha1.ts";
import { childNames } from "./labels.ts";

export const CERT_MANAGER_GROUP = "cert-manager.io";

/**
 * Every DNS name of the gateway's Service: the short forms in-cluster clients use (search domains)
 * and the FQDN of status.url. The FQDN is the common name's stand-in: cert-manager puts dnsNames in
 * the subjectAltName, which is what TLS clients check.
 */
export function serviceDnsNames(server: McpServer, clusterDomain = "cluster.local"): string[] {
  const { name, namespace } = server.metadata;
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${clusterDomain}`];
}

/** The Secret the gateway mounts for TLS: the user's own, or the one cert-manager writes. */
export function tlsSecretName(server: McpServer): string | undefined {
  const tls = server.spec.tls;
  if (!tls) return undefined;
  return tls.secretRef ? tls.secretRef.name : childNames(server).tlsSecret;
}

export function certificate(chart: Chart, server: McpServer, clusterDomain?: string): void {
  const issuerRef = server.spec.tls?.issuerRef;
  if (!issuerRef) return;
  const names = childNames(server);
  new ApiObject(chart, "certificate", {
    apiVersion: `${CERT_MANAGER_GROUP}/v1`,
    kind: "Certificate",
    metadata: { name: names.certificate },
    spec: {
      secretName: names.tlsSecret,
      issuerRef: { group: CERT_MANAGER_GROUP, kind: issuerRef.kind, name: issuerRef.name },
      dnsNames: serviceDnsNames(server, clusterDomain),
      // A new key at every renewal (cert-manager's default since 1.18, said here so an older
      // cert-manager does the same): a leaked key stops being useful at the next renewal.
      privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
      usages: ["server auth", "digital signature"],
      // The Secret is labelled like every child, so `kubectl get secret -l mcp.bastion.dev/server=...` finds it.
      secretTemplate: { labels: { "mcp.bastion.dev/server": server.metadata.name } },
    },
  });
}
