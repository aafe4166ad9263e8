// Istio: STRICT mTLS for the server's pods, an AuthorizationPolicy for who may reach the gateway,
// and egress limited to the registry (Sidecar REGISTRY_ONLY) plus ServiceEntries for the allowed
// hostnames and CIDRs. Plain ApiObjects: cdk8s-plus has no constructs for Istio CRDs. All at the v1 API, which
// the current Istio CRDs serve and store.
import { ApiObject, type Chart } from "cdk8s";
import { GATEWAY_PORTS } from "../../../contract/gateway-config.ts";
import type { McpServer } from "../api/v1alpha1.ts";
import { childNames, selectorLabels } from "./labels.ts";

/** Istio principals are SPIFFE IDs without the scheme: cluster.local/ns/<ns>/sa/<sa>. */
export function istioPrincipal(spiffeId: string): string {
  return spiffeId.replace(/^spiffe:\/\//, "");
}

/**
 * Who may reach the gateway port through the mesh. When mTLS identities are the only auth method,
 * the mesh enforces them too (defence in depth); when API keys or JWTs are also accepted, any mesh
 * peer may connect and the gateway authenticates each request.
 */
export function authorizationRules(server: McpServer): Record<string, unknown>[] {
  const auth = server.spec.auth;
  const mtlsOnly = auth.mtls !== undefined && auth.apiKeys === undefined && auth.jwt === undefined;
  const mcp: Record<string, unknown> = { to: [{ operation: { ports: [String(GATEWAY_PORTS.mcp)] } }] };
  if (mtlsOnly) mcp.from = [{ source: { principals: auth.mtls!.spiffeIds.map(istioPrincipal) } }];
  return [mcp, { to: [{ operation: { ports: [String(GATEWAY_PORTS.admin)] } }] }];
}

/** ServiceEntry port protocol: 443 is TLS (routed by SNI, so several hosts can share it), else TCP. */
function hostPort(port: number) {
  return port === 443 ? { number: port, name: `tls-${port}`, protocol: "TLS" } : { number: port, name: `tcp-${port}`, protocol: "TCP" };
}

export interface ServiceEntryPlan {
  name: string;
  spec: {
    hosts: string[];
    addresses?: string[];
    exportTo: string[];
    location: "MESH_EXTERNAL";
    resolution: "DNS" | "NONE";
    ports: { number: number; name: string; protocol: string }[];
  };
}

/** The host naming the CIDR destinations of spec.network.egress[index] in the mesh registry (never resolved). */
export function cidrHost(server: McpServer, index: number): string {
  return `egress-cidr-${index}.${server.metadata.name}.mcp-bastion.internal`;
}

const isWildcard = (h: string) => h.startsWith("*.");

/**
 * The ServiceEntries that make spec.network.egress known to the sidecar (REGISTRY_ONLY refuses the rest):
 * - named hosts in one entry with resolution DNS: the proxy connects to what the name resolves to,
 *   whatever address the application dialled;
 * - wildcard hosts in an entry of their own with resolution NONE (they cannot be resolved ahead of
 *   time): matched by TLS SNI, which is why the schema allows them only on port 443. One wildcard no
 *   longer turns the named hosts into NONE (forward to any address the application dialled);
 * - each CIDR rule in its own entry (addresses + that rule's TCP ports, resolution NONE), so CIDR
 *   traffic stays in the proxy and is limited to its ports, instead of bypassing the sidecar on every
 *   port (excludeOutboundIPRanges). UDP is not intercepted by the sidecar: the NetworkPolicy alone
 *   limits UDP to the rule's CIDRs and ports.
 */
export function serviceEntries(server: McpServer): ServiceEntryPlan[] {
  const names = childNames(server);
  const egress = server.spec.network.egress;
  const out: ServiceEntryPlan[] = [];
  const groups = [
    { name: names.serviceEntry, wildcard: false, resolution: "DNS" as const },
    { name: names.wildcardServiceEntry, wildcard: true, resolution: "NONE" as const },
  ];
  for (const g of groups) {
    const rules = egress.map((e) => ({ hosts: (e.hosts ?? []).filter((h) => isWildcard(h) === g.wildcard), ports: e.ports })).filter((r) => r.hosts.length > 0);
    const hosts = [...new Set(rules.flatMap((r) => r.hosts))].sort();
    if (hosts.length === 0) continue;
    const ports = new Map<number, ReturnType<typeof hostPort>>();
    for (const r of rules) for (const p of r.ports) if (p.protocol === "TCP") ports.set(p.port, hostPort(p.port));
    out.push({
      name: g.name,
      spec: {
        hosts,
        // Only this namespace sees the entry: other workloads keep their own allowlists.
        exportTo: ["."],
        location: "MESH_EXTERNAL",
        resolution: g.resolution,
        ports: [...ports.values()].sort((a, b) => a.number - b.number),
      },
    });
  }
  egress.forEach((e, index) => {
    if (!e.cidrs) return;
    const tcp = [...new Set(e.ports.filter((p) => p.protocol === "TCP").map((p) => p.port))].sort((a, b) => a - b);
    if (tcp.length === 0) return;
    out.push({
      name: names.cidrServiceEntry(index),
      spec: {
        hosts: [cidrHost(server, index)],
        addresses: [...e.cidrs],
        exportTo: ["."],
        location: "MESH_EXTERNAL",
        // Plain TCP matched on the destination address (not SNI), forwarded to the address dialled.
        resolution: "NONE",
        ports: tcp.map((port) => ({ number: port, name: `tcp-${port}`, protocol: "TCP" })),
      },
    });
  });
  return out;
}

export function mesh(chart: Chart, server: McpServer): void {
  const istio = server.spec.mesh.istio;
  if (!istio.enabled) return;
  const names = childNames(server);
  const workloadSelector = { matchLabels: selectorLabels(server) };

  new ApiObject(chart, "peerauthentication", {
    apiVersion: "security.istio.io/v1",
    kind: "PeerAuthentication",
    metadata: { name: names.peerAuthentication },
    spec: { selector: workloadSelector, mtls: { mode: istio.mtlsMode } },
  });

  new ApiObject(chart, "authorizationpolicy", {
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name: names.authorizationPolicy },
    spec: { selector: workloadSelector, action: "ALLOW", rules: authorizationRules(server) },
  });

  const entries = serviceEntries(server);
  for (const e of entries) {
    new ApiObject(chart, `serviceentry-${e.name}`, { apiVersion: "networking.istio.io/v1", kind: "ServiceEntry", metadata: { name: e.name }, spec: e.spec });
  }
  const hosts = entries.flatMap((e) => e.spec.hosts);

  new ApiObject(chart, "sidecar", {
    apiVersion: "networking.istio.io/v1",
    kind: "Sidecar",
    metadata: { name: names.sidecar },
    spec: {
      workloadSelector: { labels: selectorLabels(server) },
      // Only the control plane and the allowlisted entries are known to the proxy; REGISTRY_ONLY
      // refuses everything else, including direct IPs outside the CIDR entries.
      egress: [{ hosts: ["istio-system/*", ...hosts.map((h) => `./${h}`)] }],
      outboundTrafficPolicy: { mode: "REGISTRY_ONLY" },
    },
  });
}
