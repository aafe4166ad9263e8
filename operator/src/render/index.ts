// The renderer: one McpServer in, every Kubernetes object of its hardened deployment out, with the
// security checklist computed from those objects. Pure and deterministic: synthesized in memory
// with cdk8s (never written to disk), explicit stable names, no clock, no randomness, no I/O.
import { createHash } from "node:crypto";
import { App, Chart } from "cdk8s";
import { GatewayConfigSchema } from "../../../contract/gateway-config.ts";
import type { ChecklistItem, McpServer } from "../api/v1alpha1.ts";
import { certificate } from "./certificate.ts";
import { computeChecklist, computeOptOuts } from "./checklist.ts";
import { acceptedProtocolVersions, gatewayConfig, rateLimitMode, serviceUrl } from "./gateway-config.ts";
import { childNames, commonLabels, ownerReferences } from "./labels.ts";
import { mesh } from "./mesh.ts";
import { networkPolicy } from "./network.ts";
import { externalSecrets } from "./secrets.ts";
import { service } from "./service.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { finishDeployment, workload } from "./workload.ts";

export type { KubeObject } from "../../../contract/kube-object.ts";

export interface RenderOptions {
  gatewayImage: string;
  clusterDomain?: string;
}

export interface RenderResult {
  objects: KubeObject[];
  checklist: ChecklistItem[];
  optOuts: string[];
  warnings: string[];
  url: string;
  rateLimitMode: "redis" | "divided";
  /** For status.protocolVersions: the protocol revisions clients may use (spec.protocol.versions or all). */
  protocolVersions: string[];
  /** For status.auth and status.mtls (the Auth and mTLS printer columns). */
  summary: { auth: string; mtls: string };
}

/** One-word summaries for the printer columns: "apiKeys+jwt", "STRICT" / "PERMISSIVE" / "gateway-tls" / "none". */
export function summarize(server: McpServer): { auth: string; mtls: string } {
  const { auth, mesh, tls } = server.spec;
  const methods = (["apiKeys", "jwt", "mtls"] as const).filter((m) => auth[m] !== undefined);
  const mtls = mesh.istio.enabled ? mesh.istio.mtlsMode : tls ? "gateway-tls" : "none";
  return { auth: methods.join("+"), mtls };
}

export const OWNED_KINDS: { apiVersion: string; kind: string; plural: string; namespaced: true; requires?: "istio" | "external-secrets" | "cert-manager" }[] = [
  { apiVersion: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true },
  { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true },
  { apiVersion: "apps/v1", kind: "Deployment", plural: "deployments", namespaced: true },
  { apiVersion: "v1", kind: "Service", plural: "services", namespaced: true },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: true },
  { apiVersion: "external-secrets.io/v1", kind: "ExternalSecret", plural: "externalsecrets", namespaced: true, requires: "external-secrets" },
  { apiVersion: "cert-manager.io/v1", kind: "Certificate", plural: "certificates", namespaced: true, requires: "cert-manager" },
  { apiVersion: "security.istio.io/v1", kind: "PeerAuthentication", plural: "peerauthentications", namespaced: true, requires: "istio" },
  { apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", plural: "authorizationpolicies", namespaced: true, requires: "istio" },
  { apiVersion: "networking.istio.io/v1", kind: "ServiceEntry", plural: "serviceentries", namespaced: true, requires: "istio" },
  { apiVersion: "networking.istio.io/v1", kind: "Sidecar", plural: "sidecars", namespaced: true, requires: "istio" },
];

/** Things worth telling the user that are not errors (shown by the CLI, put in status by the controller). */
function warningsFor(server: McpServer): string[] {
  const { spec } = server;
  const out: string[] = [];
  const hasEgress = spec.network.egress.length > 0;
  if (spec.limits.redis && !hasEgress) {
    out.push("spec.limits.redis is set but spec.network.egress allows no destination: add the Redis address, or the gateway cannot reach it");
  }
  if (spec.auth.jwt && !spec.auth.jwt.jwksSecretRef && !hasEgress) {
    out.push("spec.auth.jwt fetches keys over the network but spec.network.egress allows no destination: add the issuer, or use jwksSecretRef");
  }
  if (spec.audit.otlp && !hasEgress) {
    out.push(
      "spec.audit.otlp is set but spec.network.egress allows no destination: add the collector's address and port, or audit lines stay buffered and are then dropped (mcp_gateway_audit_otlp_dropped_total)",
    );
  }
  if (!spec.limits.redis && spec.replicas > 1) {
    out.push(`rate limits are divided by ${spec.replicas} replicas (no spec.limits.redis): each pod enforces its share`);
  }
  if (spec.authorization.rules.length === 0) out.push("spec.authorization.rules is empty: every client is denied every tool, resource and prompt");
  for (const e of spec.network.egress) {
    // Hostname rules open public addresses only (network.ts): an in-cluster or private name resolves
    // to an address the NetworkPolicy keeps closed.
    const internal = (e.hosts ?? []).filter((h) => /\.(svc|cluster\.local|local|internal|lan|home\.arpa)$/.test(h) || /\.svc\./.test(h));
    if (internal.length > 0) {
      out.push(
        `spec.network.egress hosts ${internal.join(", ")} look in-cluster or private: hostname rules reach public addresses only, so add a cidrs rule for their addresses`,
      );
    }
    if (e.hosts && e.ports.some((p) => p.port !== 443 && p.protocol === "TCP")) {
      out.push(
        `spec.network.egress hosts ${e.hosts.join(", ")}: ports other than 443 are matched as plain TCP, which Istio cannot route by hostname when several hosts share a port`,
      );
    }
  }
  return out;
}

export function renderMcpServer(server: McpServer, options: RenderOptions): RenderResult {
  const config = gatewayConfig(server, options.clusterDomain);
  // Validated here so a renderer bug can never ship a config the gateway would refuse at start.
  GatewayConfigSchema.parse(config);
  const configJson = `${JSON.stringify(config, null, 2)}\n`;
  const configChecksum = createHash("sha256").update(configJson).digest("hex");

  const app = new App();
  const chart = new Chart(app, server.metadata.name, { namespace: server.metadata.namespace, disableResourceNameHashes: true });
  // ConfigMap as a plain object below the chart: it only carries data.
  workload(chart, { server, gatewayImage: options.gatewayImage, configChecksum, istio: server.spec.mesh.istio.enabled });
  service(chart, server);
  networkPolicy(chart, server);
  externalSecrets(chart, server);
  certificate(chart, server, options.clusterDomain);
  mesh(chart, server);

  const configMap: KubeObject = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: childNames(server).gatewayConfig, namespace: server.metadata.namespace },
    data: { "gateway.json": configJson },
  };
  const objects = [configMap, ...(chart.toJson() as KubeObject[])];

  const labels = commonLabels(server);
  const owners = ownerReferences(server);
  for (const o of objects) {
    o.metadata.namespace = server.metadata.namespace;
    o.metadata.labels = { ...(o.metadata.labels ?? {}), ...labels };
    if (owners) o.metadata.ownerReferences = owners.map((r) => ({ ...r }));
  }
  // Pod template labels too, so `kubectl get pods -l app.kubernetes.io/instance=...` works.
  const deployment = objects.find((o) => o.kind === "Deployment") as
    | (KubeObject & { spec: { template: { metadata: { labels: Record<string, string> } } } })
    | undefined;
  if (deployment) {
    finishDeployment(deployment, server);
    deployment.spec.template.metadata.labels = { ...labels, ...deployment.spec.template.metadata.labels };
  }

  return {
    objects,
    checklist: computeChecklist(server, objects),
    optOuts: computeOptOuts(server),
    warnings: warningsFor(server),
    url: serviceUrl(server, options.clusterDomain),
    rateLimitMode: rateLimitMode(server),
    protocolVersions: acceptedProtocolVersions(server),
    summary: summarize(server),
  };
}
