// Tool integrity: a tool's fingerprint is compared with its pin, and its description (and the
// descriptions inside its input schema) are scanned for text meant for the model rather than the user.
import { legacyToolFingerprint, toolFingerprint } from "../../contract/fingerprint.ts";
import type { GatewayConfig } from "../../contract/gateway-config.ts";

export interface Finding {
  rule: string;
  excerpt: string;
}

const RULES: { rule: string; re: RegExp }[] = [
  {
    rule: "ignore-instructions",
    re: /\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|system|other)\b[^.\n]{0,20}\b(instructions?|prompts?|rules|directions|messages)\b/i,
  },
  { rule: "hidden-tag", re: /<\s*\/?\s*(important|system|instructions?|secret|hidden|admin|assistant|sys)\s*>/i },
  { rule: "hidden-directive", re: /\b(do not|don't|never)\s+(tell|mention|inform|reveal|show|disclose)\b[^.\n]{0,40}\b(user|human|anyone)\b/i },
  {
    rule: "model-directive",
    re: /\b(before|after|instead of)\s+(using|calling|running)\s+(this|any|the)\s+tool\b[^.\n]{0,60}\b(read|send|call|include|pass)\b/i,
  },
  { rule: "sensitive-file", re: /(~\/\.ssh|id_rsa|\.aws\/credentials|\/etc\/passwd|\.env\b|mcp\.json|\.kube\/config)/i },
  { rule: "exfiltration-url", re: /\b(send|post|upload|forward|exfiltrate|transmit|include)\b[^\n]{0,80}\bhttps?:\/\/[^\s"'<>]+/i },
  { rule: "url-with-data", re: /https?:\/\/[^\s"'<>]*[?&][a-z_]*(data|token|key|secret|content|q)=\{?/i },
  { rule: "invisible-unicode", re: /[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]|[\u{E0000}-\u{E007F}]/u },
  { rule: "role-marker", re: /(^|\n)\s*(system|assistant)\s*:/i },
];

/** Every string under `description`/`title` keys of a schema, so directives hidden in parameter docs count too. */
function collectSchemaText(schema: unknown, out: string[], depth = 0): void {
  if (depth > 10 || schema === null || typeof schema !== "object") return;
  for (const [k, v] of Object.entries(schema as Record<string, unknown>)) {
    if ((k === "description" || k === "title") && typeof v === "string") out.push(v);
    else if (typeof v === "object") collectSchemaText(v, out, depth + 1);
  }
}

export function scanText(text: string): Finding[] {
  const findings: Finding[] = [];
  for (const { rule, re } of RULES) {
    const m = re.exec(text);
    if (m) findings.push({ rule, excerpt: m[0].replace(/[^\x20-\x7e]/g, "?").slice(0, 80) });
  }
  return findings;
}

export interface ToolLike {
  name: string;
  description?: string;
  inputSchema?: unknown;
  title?: string;
  annotations?: { readOnlyHint?: unknown; destructiveHint?: unknown; [k: string]: unknown };
}

export function scanTool(tool: ToolLike): Finding[] {
  const texts = [tool.description ?? "", tool.title ?? ""];
  collectSchemaText(tool.inputSchema, texts);
  return scanText(texts.join("\n"));
}

export type Verdict =
  /** pinned-legacy: matches a pin made before annotations were fingerprinted (annotations not vouched for). */
  | { allowed: true; status: "pinned" | "pinned-legacy" | "unpinned" | "drift-warn" }
  | { allowed: false; status: "drift" | "unpinned" | "findings"; reason: string };

export interface ToolAssessment {
  fingerprint: string;
  findings: Finding[];
  verdict: Verdict;
}

/** Pure: what the gateway does with one listed tool under the tools section of the config. */
export function assessTool(tool: ToolLike, policy: GatewayConfig["tools"], pins: ReadonlyMap<string, string>): ToolAssessment {
  const fingerprint = toolFingerprint(tool);
  const findings = scanTool(tool);
  const pin = pins.get(tool.name);
  let verdict: Verdict;
  if (pin === undefined) {
    verdict = policy.allowUnpinned ? { allowed: true, status: "unpinned" } : { allowed: false, status: "unpinned", reason: "tool is not pinned" };
  } else if (pin.toLowerCase() !== fingerprint && tool.annotations !== undefined && pin.toLowerCase() === legacyToolFingerprint(tool)) {
    verdict = { allowed: true, status: "pinned-legacy" };
  } else if (pin.toLowerCase() !== fingerprint) {
    verdict =
      policy.onDrift === "Warn" ? { allowed: true, status: "drift-warn" } : { allowed: false, status: "drift", reason: "tool definition differs from its pin" };
  } else verdict = { allowed: true, status: "pinned" };
  if (verdict.allowed && policy.scanDescriptions && findings.length > 0)
    verdict = { allowed: false, status: "findings", reason: "tool description contains suspicious instructions" };
  return { fingerprint, findings, verdict };
}
