// Operational logs: one JSON object per line on stderr (stdout is reserved for the audit log).
// Callers pass only facts they chose to log; nothing here ever serializes a request or an error stack.
export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = order[(process.env.MCP_BASTION_LOG_LEVEL as Level) ?? "info"] ?? order.info;

export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (order[level] < threshold) return;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

/** A short, safe description of an error: its code or class, never its stack or a path. */
export function errorKind(err: unknown): string {
  if (err && typeof err === "object") {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const name = (err as { name?: unknown }).name;
    if (typeof name === "string") return name;
  }
  return "error";
}
