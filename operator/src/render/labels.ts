// Names, labels and owner references shared by every child object. Names are stable and explicit
// (no hashes) so a reconcile always addresses the same objects, and collision-free across servers.
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

/**
 * Stable child names. Within one kind and namespace, different (server, part) pairs never give one
 * name: servers own objects by name, so a collision would let one server's owner read or replace
 * another server's object (the operator also refuses to apply over an object another owner holds).
 * - most kinds: the server name itself (unique per namespace);
 * - fixed suffixes: `-gateway` (ConfigMap), `-api-keys` (ExternalSecret), `-egress`, `-egress-wildcard`, `-egress-cidr-<i>`
 *   (ServiceEntries): no suffix ends another, so the server name is recovered from the right;
 * - user-chosen parts (secret names): `<server>.<secret>`. Both parts are DNS labels, which cannot
 *   contain '.', so the split is unambiguous (`a` + `b-c` is `a.b-c`, `a-b` + `c` is `a-b.c`);
 *   at most 127 characters, a valid DNS subdomain for ExternalSecrets and Secrets.
 */
export function childNames(server: McpServer) {
  const n = server.metadata.name;
  return {
    serviceAccount: n,
    deployment: n,
    service: n,
    /** Headless Service of the ready replicas: how a gateway finds the pod holding a session (replicas > 1). */
    peers: `${n}-peers`,
    networkPolicy: n,
    pdb: n,
    gatewayConfig: `${n}-gateway`,
    peerAuthentication: n,
    authorizationPolicy: n,
    sidecar: n,
    /** Named hosts, resolved by DNS. */
    serviceEntry: `${n}-egress`,
    /** Wildcard hosts (resolution NONE, matched by TLS SNI only). */
    wildcardServiceEntry: `${n}-egress-wildcard`,
    /** The CIDRs of spec.network.egress[index], with that rule's TCP ports. */
    cidrServiceEntry: (index: number) => `${n}-egress-cidr-${index}`,
    /** cert-manager Certificate (spec.tls.issuerRef). */
    certificate: n,
    /** The Secret cert-manager writes for that Certificate (not ours: cert-manager owns it). */
    tlsSecret: `${n}-gateway-tls`,
    /** ExternalSecret and its target Secret share this name. */
    secret: (secretName: string) => `${n}.${secretName}`,
    /** issue 14: the ExternalSecret (and its target Secret) of spec.auth.apiKeys.externalSecret. */
    apiKeys: `${n}-api-keys`,
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
