// Deciding whether a child needs a write, without writing. Two checks, both needed:
// - the hash of the rendered object, kept in an annotation on the child, changes when the desired
//   object changes in any way (including a field that disappeared, which a comparison of present
//   fields cannot see);
// - every field we render must be present with the same value on the live object, which catches a
//   hand edit (drift) of a field we manage. Fields the API server adds (defaults, status) are ignored.
import { createHash } from "node:crypto";
import { canonicalJson } from "../../../contract/fingerprint.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { SharedValues } from "../runtime/share.ts";

// One canonical JSON for tool pins and child hashes; re-exported for the controller's callers.
export { canonicalJson };

export const HASH_ANNOTATION = "mcp.bastion.dev/applied-hash";

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The rendered object with the hash annotation of its own content added. */
export function withHash<T extends { metadata: { annotations?: Record<string, string> } }>(obj: T): T {
  const hash = sha256(canonicalJson(obj)).slice(0, 32);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...(obj.metadata.annotations ?? {}), [HASH_ANNOTATION]: hash } } };
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.keys(v as object).length === 0;
  return false;
}

/**
 * True when every field of `desired` is present in `live` with an equal value (objects: a subset;
 * lists: same length, element by element). Empty lists and maps and zero values match an absent
 * field, because the API server drops them.
 */
export function contains(desired: unknown, live: unknown): boolean {
  if (desired === undefined || desired === null) return true;
  // Go's omitempty: the API server does not return empty lists/maps or zero values (0, false, "").
  if ((isEmpty(desired) || desired === 0 || desired === false || desired === "") && (live === undefined || live === null)) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return false;
    return desired.every((d, i) => contains(d, live[i]));
  }
  if (typeof desired === "object") {
    if (live === null || typeof live !== "object" || Array.isArray(live)) return false;
    const l = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => contains(v, l[k]));
  }
  return desired === live;
}

/** Secrets: the API server stores stringData as base64 data; compare in that form. */
function normalizeForCompare(obj: KubeObject): KubeObject {
  if (obj.kind !== "Secret" || !obj.stringData) return obj;
  const data: Record<string, string> = { ...((obj.data as Record<string, string>) ?? {}) };
  for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) data[k] = Buffer.from(v).toString("base64");
  const { stringData: _drop, ...rest } = obj;
  return { ...rest, data } as KubeObject;
}

/** Why a child needs a server-side apply, or undefined when the live object is already as desired. */
export function applyReason(desired: KubeObject, live: KubeObject | undefined): "missing" | "changed" | "drifted" | undefined {
  if (!live) return "missing";
  const want = desired.metadata.annotations?.[HASH_ANNOTATION];
  if (want === undefined || live.metadata.annotations?.[HASH_ANNOTATION] !== want) return "changed";
  if ((live as Record<string, unknown>)[VERIFIED] === want) return undefined;
  if (!contains(normalizeForCompare(desired), live)) return "drifted";
  return undefined;
}

/**
 * Key of the marker that replaces a child in the cache once it was found (or made) equal to its
 * rendered form with this hash. The informer replaces the marker with the whole object on the next
 * watch event (any change, e.g. a hand edit), so drift is still seen; meanwhile the cache holds only
 * what the controller reads of a child it has verified, which keeps 10,000 servers' children small.
 */
export const VERIFIED = "mcpBastionVerifiedHash";

/** The strings every marker repeats (apiVersion, kind, namespace, the label key): one instance each. */
const shared = new SharedValues(1_000);

interface OwnerReference {
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
}

/**
 * The marker of a verified child: identity (name, namespace, uid, resourceVersion, deletionTimestamp), the
 * hash annotation, the labels named in `keepLabels` (the owner label the child index and pruning read), the
 * controller ownerReference (who holds it), and the status the reconciler reads: a Deployment's (Ready, with
 * its spec.replicas for "n/m pods available") and a cert-manager Certificate's (CertificateReady). Everything
 * else (the body, managedFields, the other labels, creationTimestamp) is dropped: 6-7 children per server.
 */
export function verifiedMarker(live: KubeObject, hash: string, keepLabels: readonly string[] = []): KubeObject {
  const m = live.metadata;
  const metadata: KubeObject["metadata"] = { name: m.name, annotations: { [HASH_ANNOTATION]: hash } };
  if (m.namespace) metadata.namespace = shared.string(m.namespace);
  if (m.uid) metadata.uid = m.uid;
  if (m.resourceVersion) metadata.resourceVersion = m.resourceVersion;
  if (m.deletionTimestamp) metadata.deletionTimestamp = m.deletionTimestamp;
  const labels: Record<string, string> = {};
  for (const k of keepLabels) {
    const v = m.labels?.[k];
    if (v !== undefined) labels[shared.string(k)] = v;
  }
  if (Object.keys(labels).length) metadata.labels = labels;
  const controller = (m.ownerReferences as OwnerReference[] | undefined)?.find((r) => r.controller === true);
  if (controller) {
    const ref: OwnerReference = { controller: true };
    if (controller.kind) ref.kind = shared.string(controller.kind);
    if (controller.name) ref.name = controller.name;
    if (controller.uid) ref.uid = controller.uid;
    metadata.ownerReferences = [ref];
  }
  const marker: KubeObject = { apiVersion: shared.string(live.apiVersion), kind: shared.string(live.kind), metadata, [VERIFIED]: hash };
  if ((live.kind === "Deployment" || live.kind === "Certificate") && live.status !== undefined) marker.status = live.status;
  const replicas = (live.spec as { replicas?: number } | undefined)?.replicas;
  if (live.kind === "Deployment" && replicas !== undefined) marker.spec = { replicas };
  return marker;
}

/** Paths where `desired` is not contained in `live` (for logs: which field drifted). */
export function differences(desired: unknown, live: unknown, path = ""): string[] {
  if (contains(desired, live)) return [];
  if (Array.isArray(desired) && Array.isArray(live) && live.length === desired.length) {
    return desired.flatMap((d, i) => differences(d, live[i], `${path}[${i}]`));
  }
  if (desired && typeof desired === "object" && !Array.isArray(desired) && live && typeof live === "object" && !Array.isArray(live)) {
    const l = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).flatMap(([k, v]) => differences(v, l[k], path ? `${path}.${k}` : k));
  }
  return [path || "."];
}
