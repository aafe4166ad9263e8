// NetworkPolicy: default deny for ingress and egress of the server's pods, then ingress only to the
// gateway port from the allowed peers (and the admin port from metrics namespaces), egress only to
// DNS and the allowlist.
//
// Written as a plain ApiObject: cdk8s-plus-27's NetworkPolicy does not default both policy types,
// cannot put a namespaceSelector and a podSelector in the same peer (the AND that "kube-dns in
// kube-system" needs) and splits peers into separate rules; here every rule is exactly as reviewed.
import { ApiObject, type Chart } from "cdk8s";
import { GATEWAY_PORTS } from "../../../contract/gateway-config.ts";
import type { McpServer } from "../api/v1alpha1.ts";
import { relaysSessions } from "./gateway-config.ts";
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

/** Addresses that are never "the internet": this-network, private, shared (CGNAT), loopback, link-local. */
export const NON_PUBLIC_IPV4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"];
export const NON_PUBLIC_IPV6 = ["::1/128", "fc00::/7", "fe80::/10"];
/** The peers of a hostname rule: every public address (the sidecar narrows it to the hosts). */
export const PUBLIC_ADDRESSES: Peer[] = [{ ipBlock: { cidr: "0.0.0.0/0", except: NON_PUBLIC_IPV4 } }, { ipBlock: { cidr: "::/0", except: NON_PUBLIC_IPV6 } }];

/** Prefixes shorter than these are "wide": more addresses than one site or VPC (65,536 IPv4 addresses, an IPv6 /48). */
export const WIDE_PREFIX = { ipv4: 16, ipv6: 48 } as const;

/** True for a CIDR wider than WIDE_PREFIX (0.0.0.0/0, ::/0, 10.0.0.0/8, ...). */
export function isWideCidr(cidr: string): boolean {
  const slash = cidr.lastIndexOf("/");
  const prefix = Number(cidr.slice(slash + 1));
  // ::ffff:a.b.c.d/96+n is the IPv4 /n, written in IPv6.
  if (/^::ffff:/i.test(cidr)) return prefix - 96 < WIDE_PREFIX.ipv4;
  return cidr.includes(":") ? prefix < WIDE_PREFIX.ipv6 : prefix < WIDE_PREFIX.ipv4;
}

/** True for the peers of a hostname rule (public addresses only), which the mesh narrows to the hosts. */
export function isPublicAddressesPeer(peer: { ipBlock?: { cidr?: unknown; except?: unknown } }): boolean {
  const b = peer.ipBlock;
  if (!b) return false;
  const same = (a: unknown, want: string[]) => Array.isArray(a) && a.length === want.length && want.every((w, i) => a[i] === w);
  return (b.cidr === "0.0.0.0/0" && same(b.except, NON_PUBLIC_IPV4)) || (b.cidr === "::/0" && same(b.except, NON_PUBLIC_IPV6));
}

/** True for a selector that selects everything (no labels). */
export function selectsAll(s: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined): boolean {
  return s !== undefined && Object.keys(s.matchLabels ?? {}).length === 0 && (s.matchExpressions ?? []).length === 0;
}

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
    // issue 16: a replica relays a request for another replica's session to that replica's gateway.
    ...(relaysSessions(server)
      ? [{ from: [{ podSelector: { matchLabels: selectorLabels(server) } }], ports: [{ port: GATEWAY_PORTS.mcp, protocol: "TCP" as const }] }]
      : []),
  ];
}

export function egressRules(server: McpServer): NetworkPolicyRule[] {
  const { network, mesh } = server.spec;
  const rules: NetworkPolicyRule[] = [];
  if (network.allowDNS) {
    rules.push({
      to: [DNS_PEER],
      ports: [
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ],
    });
  }
  if (mesh.istio.enabled) rules.push({ to: [ISTIOD_PEER], ports: [{ port: ISTIOD_XDS_PORT, protocol: "TCP" }] });
  // issue 16: to the other replicas' gateways, for requests of sessions they hold.
  if (relaysSessions(server))
    rules.push({ to: [{ podSelector: { matchLabels: selectorLabels(server) } }], ports: [{ port: GATEWAY_PORTS.mcp, protocol: "TCP" }] });
  for (const e of network.egress) {
    const ports = e.ports.map((p) => ({ port: p.port, protocol: p.protocol }));
    if (e.cidrs) {
      rules.push({ to: e.cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports });
    } else {
      // Hostnames: an IP-level policy cannot name them. The Istio sidecar (ServiceEntry + Sidecar
      // REGISTRY_ONLY, see mesh.ts) allows only these hosts, and the schema refuses hosts without
      // the mesh and with UDP ports (which the sidecar does not intercept). Here the ports are limited
      // and, as a second line if the proxy were bypassed, private, loopback and link-local addresses
      // (other pods, the node, cloud metadata) stay closed: a private destination needs a cidrs rule.
      rules.push({ to: structuredClone(PUBLIC_ADDRESSES), ports });
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
