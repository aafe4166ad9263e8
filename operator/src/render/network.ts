// NetworkPolicy: default deny for ingress and egress of the server's pods, then ingress only to the
// gateway port from the allowed peers (and the admin port from metrics namespaces), egress only to
// DNS and the allowlist.
//
// Written as a plain ApiObject: cdk8s-plus-27's NetworkPolicy does not default both policy types,
// cannot put a namespaceSelector and a podSelector in the same peer (the AND that "kube-dns in
// kube-system" needs) and splits peers into separate rules; here every rule is exactly as reviewed.
import { ApiObject, type Chart } from "cdk8s";
import { GATEWAY_PORTS } from "../../../gateway/src/config.ts";
import type { McpServer } from "../api/v1alpha1.ts";
import { CLIENT_LABEL, childNames, METRICS_NAMESPACE_LABEL, selectorLabels } from "./labels.ts";

interface Peer {
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string; except?: string[] };
}
interface PolicyPort {
  port: number;
  protocol: "TCP" | "UDP";
}
export interface NetworkPolicyRule {
  from?: Peer[];
  to?: Peer[];
  ports: PolicyPort[];
}

export const DNS_PEER: Peer = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
  podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
};
export const ISTIOD_PEER: Peer = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "istio-system" } },
  podSelector: { matchLabels: { app: "istiod" } },
};
export const ISTIOD_XDS_PORT = 15012;

function selector(s: { matchLabels?: Record<string, string> } | undefined) {
  return { matchLabels: { ...(s?.matchLabels ?? {}) } };
}

export function ingressRules(server: McpServer): NetworkPolicyRule[] {
  const configured = server.spec.network.ingress;
  const peers: Peer[] =
    configured.length > 0
      ? configured.map((p) => ({
          ...(p.namespaceSelector ? { namespaceSelector: selector(p.namespaceSelector) } : {}),
          ...(p.podSelector ? { podSelector: selector(p.podSelector) } : {}),
          // issue 13: client address ranges (the same ranges authorization rules can require as sources)
          ...(p.ipBlock ? { ipBlock: { cidr: p.ipBlock.cidr, ...(p.ipBlock.except?.length ? { except: [...p.ipBlock.except] } : {}) } } : {}),
        }))
      : [{ podSelector: { matchLabels: { [CLIENT_LABEL]: "true" } } }];
  return [
    { from: peers, ports: [{ port: GATEWAY_PORTS.mcp, protocol: "TCP" }] },
    { from: [{ namespaceSelector: { matchLabels: { [METRICS_NAMESPACE_LABEL]: "true" } } }], ports: [{ port: GATEWAY_PORTS.admin, protocol: "TCP" }] },
  ];
}

export function egressRules(server: McpServer): NetworkPolicyRule[] {
  const { network, mesh } = server.spec;
  const rules: NetworkPolicyRule[] = [];
  if (network.allowDNS) {
    rules.push({ to: [DNS_PEER], ports: [{ port: 53, protocol: "UDP" }, { port: 53, protocol: "TCP" }] });
  }
  if (mesh.istio.enabled) rules.push({ to: [ISTIOD_PEER], ports: [{ port: ISTIOD_XDS_PORT, protocol: "TCP" }] });
  for (const e of network.egress) {
    const ports = e.ports.map((p) => ({ port: p.port, protocol: p.protocol }));
    if (e.cidrs) {
      rules.push({ to: e.cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports });
    } else {
      // Hostnames: an IP-level policy cannot name them, so only the ports are limited here; the
      // Istio sidecar (ServiceEntry + Sidecar REGISTRY_ONLY, see mesh.ts) allows only these hosts.
      // The schema refuses hosts without the mesh.
      rules.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }, { ipBlock: { cidr: "::/0" } }], ports });
    }
  }
  return rules;
}

export function networkPolicy(chart: Chart, server: McpServer): void {
  new ApiObject(chart, "networkpolicy", {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: childNames(server).networkPolicy },
    spec: {
      podSelector: { matchLabels: selectorLabels(server) },
      policyTypes: ["Ingress", "Egress"],
      ingress: ingressRules(server),
      egress: egressRules(server),
    },
  });
}
