// Istio: STRICT mTLS for the server's pods, an AuthorizationPolicy for who may reach the gateway,
// and egress limited to the registry (Sidecar REGISTRY_ONLY) plus a ServiceEntry for each allowed
// hostname. Plain ApiObjects: cdk8s-plus has no constructs for Istio CRDs. All at the v1 API, which
// the current Istio CRDs serve and store.
import { ApiObject, type Chart } from "cdk8s";
import { GATEWAY_PORTS } from "../../../gateway/src/config.ts";
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

/** Allowed hostnames, each with its ports. */
export function egressHosts(server: McpServer): { hosts: string[]; ports: { port: number; protocol: string }[] }[] {
  return server.spec.network.egress.filter((e) => e.hosts !== undefined).map((e) => ({ hosts: [...e.hosts!], ports: e.ports }));
}

/** ServiceEntry port protocol: 443 is TLS (routed by SNI, so several hosts can share it), else TCP. */
function servicePort(port: number, protocol: string) {
  if (protocol === "UDP") return { number: port, name: `udp-${port}`, protocol: "UDP" };
  return port === 443 ? { number: port, name: `tls-${port}`, protocol: "TLS" } : { number: port, name: `tcp-${port}`, protocol: "TCP" };
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

  const entries = egressHosts(server);
  const hosts = [...new Set(entries.flatMap((e) => e.hosts))].sort();
  if (hosts.length > 0) {
    const ports = new Map<string, ReturnType<typeof servicePort>>();
    for (const e of entries) for (const p of e.ports) ports.set(`${p.protocol}/${p.port}`, servicePort(p.port, p.protocol));
    new ApiObject(chart, "serviceentry", {
      apiVersion: "networking.istio.io/v1",
      kind: "ServiceEntry",
      metadata: { name: names.serviceEntry },
      spec: {
        hosts,
        // Only this namespace sees the entry: other workloads keep their own allowlists.
        exportTo: ["."],
        location: "MESH_EXTERNAL",
        // Wildcard hosts cannot be resolved ahead of time.
        resolution: hosts.some((h) => h.startsWith("*.")) ? "NONE" : "DNS",
        ports: [...ports.values()].sort((a, b) => a.number - b.number),
      },
    });
  }

  new ApiObject(chart, "sidecar", {
    apiVersion: "networking.istio.io/v1",
    kind: "Sidecar",
    metadata: { name: names.sidecar },
    spec: {
      workloadSelector: { labels: selectorLabels(server) },
      // Only the control plane and the allowlisted hosts are known to the proxy; REGISTRY_ONLY
      // refuses everything else, including direct IPs.
      egress: [{ hosts: ["istio-system/*", ...hosts.map((h) => `./${h}`)] }],
      outboundTrafficPolicy: { mode: "REGISTRY_ONLY" },
    },
  });
}
