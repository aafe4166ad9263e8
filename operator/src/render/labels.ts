// Names, labels and owner references shared by every child object. Names are stable and explicit
// (no hashes) so a reconcile always addresses the same objects.
import { createHash } from "node:crypto";
import type { McpServer } from "../api/v1alpha1.ts";
import { API_VERSION, KIND } from "../api/v1alpha1.ts";

export const MANAGED_BY = "mcp-bastion";
export const SERVER_LABEL = "mcp.bastion.dev/server";
/** Pods that may reach an McpServer by default (same namespace). */
export const CLIENT_LABEL = "mcp.bastion.dev/client";
/** Namespaces whose pods may scrape the gateway's admin port (metrics). */
export const METRICS_NAMESPACE_LABEL = "mcp.bastion.dev/metrics";

/** The labels every child carries (the contract the controller lists and prunes by). */
export function commonLabels(server: McpServer): Record<string, string> {
  const name = server.metadata.name;
  return {
    "app.kubernetes.io/name": "mcp-server",
    "app.kubernetes.io/instance": name,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    "app.kubernetes.io/part-of": "mcp-bastion",
    [SERVER_LABEL]: name,
  };
}

/** The pod selector: a subset of the common labels that never changes for a given server. */
export function selectorLabels(server: McpServer): Record<string, string> {
  return { "app.kubernetes.io/instance": server.metadata.name, [SERVER_LABEL]: server.metadata.name };
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: true;
  blockOwnerDeletion: true;
}

/** The owner reference to the McpServer, only when it has a uid (i.e. it came from the API server). */
export function ownerReferences(server: McpServer): OwnerReference[] | undefined {
  const uid = server.metadata.uid;
  if (!uid) return undefined;
  return [{ apiVersion: API_VERSION, kind: KIND, name: server.metadata.name, uid, controller: true, blockOwnerDeletion: true }];
}

/** Stable child names, derived from the server name only. */
export function childNames(server: McpServer) {
  const n = server.metadata.name;
  return {
    serviceAccount: n,
    deployment: n,
    service: n,
    networkPolicy: n,
    pdb: n,
    gatewayConfig: `${n}-gateway`,
    peerAuthentication: n,
    authorizationPolicy: n,
    sidecar: n,
    serviceEntry: `${n}-egress`,
    /** ExternalSecret and its target Secret share this name. */
    secret: (secretName: string) => `${n}-${secretName}`,
  };
}

// Volume names must be DNS labels (at most 63 characters). Most names fit with their prefix;
// the rare long one is shortened deterministically so it stays stable across renders.

export function volumeName(prefix: string, name: string): string {
  const full = `${prefix}${name}`;
  if (full.length <= 63) return full;
  const digest = createHash("sha256").update(full).digest("hex").slice(0, 8);
  return `${full.slice(0, 54).replace(/-+$/, "")}-${digest}`;
}
