// Deciding whether a child needs a write, without writing. Two checks, both needed:
// - the hash of the rendered object, kept in an annotation on the child, changes when the desired
//   object changes in any way (including a field that disappeared, which a comparison of present
//   fields cannot see);
// - every field we render must be present with the same value on the live object, which catches a
//   hand edit (drift) of a field we manage. Fields the API server adds (defaults, status) are ignored.
import { createHash } from "node:crypto";
import { canonicalJson } from "../../../contract/fingerprint.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";

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
 * metadata (and a Deployment's status, for Ready), which keeps 1,000 servers' children small.
 */
export const VERIFIED = "mcpBastionVerifiedHash";

export function verifiedMarker(live: KubeObject, hash: string): KubeObject {
  const { managedFields: _m, ...metadata } = live.metadata;
  const marker: KubeObject = { apiVersion: live.apiVersion, kind: live.kind, metadata, [VERIFIED]: hash };
  if (live.kind === "Deployment" && live.status !== undefined) marker.status = live.status;
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
