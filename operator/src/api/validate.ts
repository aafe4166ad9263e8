// Operator-side validation: the same zod schema the CRD is generated from, with errors that name
// the field the way the API server does (spec.auth.jwt.issuer: ...).
import type { z } from "zod";
import { type McpServer, McpServerSchema } from "./v1alpha1.ts";

export type ValidationResult = { ok: true; value: McpServer } | { ok: false; errors: string[] };

/** Dotted path with list indexes, e.g. spec.authorization.rules[0].name */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = formatPath(issue.path);
    // Cross-field rule messages already name their field; do not repeat it.
    if (path === "" || issue.message.startsWith(path)) return issue.message;
    if (issue.code === "unrecognized_keys") return `${path}: unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    return `${path}: ${issue.message}`;
  });
}

/** Validates and defaults an McpServer object (from a file or the API server). Never throws. */
export function validateMcpServer(input: unknown): ValidationResult {
  const parsed = McpServerSchema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, errors: formatIssues(parsed.error.issues) };
}
