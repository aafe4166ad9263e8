// Tool fingerprints: the pin a user writes in spec.tools.pinned and the gateway checks against
// what the server's tools/list returns. Shared by the CLI (`mcp-bastion fingerprint`) and the gateway.
import { createHash } from "node:crypto";

export interface ToolDescriptor {
  name: string;
  description?: string;
  inputSchema?: unknown;
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

/** sha256 (hex) of the canonical JSON of {name, description, inputSchema}; a missing description is "". */
export function toolFingerprint(tool: ToolDescriptor): string {
  const body = canonicalJson({ name: tool.name, description: tool.description ?? "", inputSchema: tool.inputSchema ?? {} });
  return createHash("sha256").update(body).digest("hex");
}
