// Tool fingerprints: the pin a user writes in spec.tools.pinned and the gateway checks against
// what the server's tools/list returns. Shared by the CLI (`mcp-bastion fingerprint`) and the gateway.
import { createHash } from "node:crypto";

export interface ToolDescriptor {
  name: string;
  description?: string;
  inputSchema?: unknown;
  /** readOnlyHint, destructiveHint, ...: part of the pin, so a rule that trusts them trusts pinned values. */
  annotations?: unknown;
}

/** JSON with object keys sorted at every depth and no whitespace, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

function hasAnnotations(a: unknown): a is Record<string, unknown> {
  return a !== null && typeof a === "object" && !Array.isArray(a) && Object.keys(a).length > 0;
}

/**
 * sha256 (hex) of the canonical JSON of {name, description, inputSchema} plus `annotations` when the tool
 * has any; a missing description is "". A tool without annotations keeps the fingerprint it always had,
 * so existing pins stay valid; for a tool with annotations see legacyToolFingerprint.
 */
export function toolFingerprint(tool: ToolDescriptor): string {
  const body = { name: tool.name, description: tool.description ?? "", inputSchema: tool.inputSchema ?? {} };
  return createHash("sha256")
    .update(canonicalJson(hasAnnotations(tool.annotations) ? { ...body, annotations: tool.annotations } : body))
    .digest("hex");
}

/**
 * The fingerprint before annotations were part of it. A pin equal to this still matches (old pins keep
 * working), but it does not vouch for the annotations: a rule allowing only read-only tools does not
 * count such a tool until it is re-pinned (`mcp-bastion fingerprint` prints the new pin).
 */
export function legacyToolFingerprint(tool: ToolDescriptor): string {
  return createHash("sha256")
    .update(canonicalJson({ name: tool.name, description: tool.description ?? "", inputSchema: tool.inputSchema ?? {} }))
    .digest("hex");
}
