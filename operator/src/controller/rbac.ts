// The operator's own permissions, written down once as data. The Helm chart renders its
// ClusterRole/Role from these lists (hack/tools/sync-chart.ts copies them into
// charts/mcp-bastion/files/rbac.yaml; a test fails on drift), and the controller tests run the
// operator with exactly these rules, so a missing verb shows up as a failing test, not in production.
import { OWNED_KINDS } from "../render/index.ts";

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const groupOf = (apiVersion: string) => (apiVersion.includes("/") ? (apiVersion.split("/")[0] as string) : "");

/** Children: read (informers) and server-side apply (patch) and prune (delete). No update/create needed. */
function childRules(): PolicyRule[] {
  const byGroup = new Map<string, Set<string>>();
  for (const k of OWNED_KINDS) {
    const g = groupOf(k.apiVersion);
    const set = byGroup.get(g) ?? new Set<string>();
    set.add(k.plural);
    byGroup.set(g, set);
  }
  return [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([g, plurals]) => ({ apiGroups: [g], resources: [...plurals].sort(), verbs: ["get", "list", "watch", "create", "patch", "delete"] }));
}

/** In every namespace the operator watches (a ClusterRole, or a Role per namespace). */
export const NAMESPACED_RULES: PolicyRule[] = [
  { apiGroups: ["mcp.bastion.dev"], resources: ["mcpservers"], verbs: ["get", "list", "watch"] },
  // Status only, through the subresource; the operator never writes spec.
  { apiGroups: ["mcp.bastion.dev"], resources: ["mcpservers/status"], verbs: ["get", "patch"] },
  ...childRules(),
  // spec.tls.issuerRef: whether the Issuer exists and is Ready (read only; cert-manager does the signing).
  { apiGroups: ["cert-manager.io"], resources: ["issuers"], verbs: ["get"] },
  // issue 14: Trivy Operator's scan results for the servers' images, read only (nothing else of Trivy's).
  { apiGroups: ["aquasecurity.github.io"], resources: ["vulnerabilityreports"], verbs: ["get", "list", "watch"] },
  // Events about McpServers are recorded in the McpServer's namespace.
  { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
];

/**
 * Cluster-scoped: only reading a ClusterIssuer an McpServer names (is it there, is it Ready). Which
 * ClusterIssuers a namespace may use is the operator's --allow-cluster-issuer, not RBAC. Discovery (/apis)
 * is open to every authenticated user; everything else the operator touches lives in a namespace.
 */
export const CLUSTER_RULES: PolicyRule[] = [{ apiGroups: ["cert-manager.io"], resources: ["clusterissuers"], verbs: ["get"] }];

/** In the operator's own namespace only: its leader-election Lease. */
export const LEADER_ELECTION_RULES: PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
];
