// Upstream JSON-RPC errors are passed to clients without their internals: `data` is dropped, and a
// message that carries a stack trace, a file path or a system error code becomes "upstream error",
// and credentials inside a message are replaced by [REDACTED].
// Tool results (even with isError) are content for the model and are left alone.
import { scrubText } from "./secrets.ts";
import { formatEvent, parseEvent } from "./sse.ts";

const INTERNALS = /\n\s+at\s|(^|[\s'"(=])\/(?:[\w.@-]+\/){1,}[\w.@-]*|[A-Za-z]:\\\\?[\w]|node_modules|\bE[A-Z]{3,}\b:|Traceback \(most recent|\bat [\w.<>]+ \(/;

export function sanitizeMessage(message: unknown): string {
  if (typeof message !== "string" || message.length === 0) return "upstream error";
  if (INTERNALS.test(message)) return "upstream error";
  // A connection string or a token quoted in an error message is removed, the rest of the message kept.
  const m = scrubText(message);
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}

/** Rewrites one serialized JSON-RPC message if it is an error response; anything else is returned as is. */
export function sanitizeRaw(raw: string): string {
  if (!raw.includes('"error"')) return raw;
  let m: { jsonrpc?: unknown; id?: unknown; error?: { code?: unknown; message?: unknown } };
  try {
    m = JSON.parse(raw);
  } catch {
    return raw;
  }
  if (!m || typeof m !== "object" || !m.error || typeof m.error !== "object" || "method" in m) return raw;
  const code = Number.isInteger(m.error.code) ? (m.error.code as number) : -32603;
  return JSON.stringify({ jsonrpc: "2.0", id: m.id ?? null, error: { code, message: sanitizeMessage(m.error.message) } });
}

/** The same over a body: one JSON message, or complete SSE events (a partial trailing event is left as is). */
export function sanitizeBody(body: Buffer, sse: boolean): Buffer {
  if (body.indexOf('"error"') < 0) return body;
  const text = body.toString("utf8");
  if (!sse) return Buffer.from(sanitizeRaw(text));
  const parts = text.split(/(\r?\n\r?\n)/);
  let out = "";
  for (let i = 0; i < parts.length; i += 2) {
    const block = parts[i]!;
    const sep = parts[i + 1];
    if (sep === undefined) {
      out += block; // incomplete event at the end of this chunk
      break;
    }
    if (!block.includes('"error"')) {
      out += block + sep;
      continue;
    }
    const e = parseEvent(block);
    if (e.data !== undefined) e.data = sanitizeRaw(e.data);
    out += formatEvent(e);
  }
  return Buffer.from(out);
}
