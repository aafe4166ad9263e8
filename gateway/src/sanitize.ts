// Upstream JSON-RPC errors are passed to clients without their internals: a message that carries a
// stack trace, a file path or a system error code becomes "upstream error", credentials inside a
// message are replaced by [REDACTED], and `data` keeps what the spec defines there (e.g. -32042's
// `elicitations`, supported protocol versions) but loses every string that reads as an internal, and
// keys that name one (stack, trace, file...) or a secret, and credentials inside its strings.
// Tool results (even with isError) are content for the model and are left alone.
import { isSecretKey, scrubText } from "./secrets.ts";
import { EVENT_BOUNDARY_SOURCE, formatEvent, parseEvent } from "./sse.ts";

/** sanitizeBody's split of SSE text: events and the boundaries between them (kept, so the bytes are unchanged). */
const SPLIT_EVENTS = new RegExp(`(${EVENT_BOUNDARY_SOURCE})`);

const INTERNALS = /\n\s+at\s|(^|[\s'"(=])\/(?:[\w.@-]+\/){1,}[\w.@-]*|[A-Za-z]:\\\\?[\w]|node_modules|\bE[A-Z]{3,}\b:|Traceback \(most recent|\bat [\w.<>]+ \(/;

export function sanitizeMessage(message: unknown): string {
  if (typeof message !== "string" || message.length === 0) return "upstream error";
  if (INTERNALS.test(message)) return "upstream error";
  // A connection string or a token quoted in an error message is removed, the rest of the message kept.
  const m = scrubText(message);
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}

/** Keys of error data that carry internals whatever their value looks like. */
const INTERNAL_KEYS = /^(stack|stacktrace|trace|traceback|file|filename|path|cause|errno|syscall)$/i;
/** Bigger data than this is not passed on (the spec's error data is small). */
const MAX_DATA_CHARS = 16384;

/**
 * `data` of an upstream error without its internals and credentials (issue 10 class 8: a key that names
 * a secret is dropped, a credential inside a string is replaced by [REDACTED]); undefined when nothing is left.
 */
export function scrubErrorData(data: unknown, depth = 0): unknown {
  if (typeof data === "string") return INTERNALS.test(data) ? undefined : scrubText(data);
  if (data === null || typeof data !== "object") return data;
  if (depth > 8) return undefined;
  if (Array.isArray(data)) {
    const out = data.map((x) => scrubErrorData(x, depth + 1)).filter((x) => x !== undefined);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (INTERNAL_KEYS.test(k) || isSecretKey(k)) continue;
    const x = scrubErrorData(v, depth + 1);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

/**
 * Whether serialized JSON may hold the key `name`: the key spelled plainly, or any \u escape (JSON may
 * spell a key `"\u0065rror"`, which every client parses as "error"; such a body is parsed, not searched).
 * The plain search is what keeps the common answer (no error, no escapes) from being parsed at all.
 */
export function mayHoldKey(raw: string, quotedName: string): boolean {
  return raw.includes(quotedName) || raw.includes("\\u");
}

/** Needles searched in every proxied answer's bytes, as Buffers (a string needle is converted per search). */
export const ERROR_KEY = Buffer.from('"error"');
const ESCAPE = Buffer.from("\\u");

/** mayHoldKey() over bytes, with the needle already a Buffer. */
export function bytesMayHoldKey(body: Buffer, quotedName: Buffer): boolean {
  return body.indexOf(quotedName) >= 0 || body.indexOf(ESCAPE) >= 0;
}

/** Rewrites one serialized JSON-RPC message if it is an error response; anything else is returned as is. */
export function sanitizeRaw(raw: string): string {
  if (!mayHoldKey(raw, '"error"')) return raw;
  let m: { jsonrpc?: unknown; id?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
  try {
    m = JSON.parse(raw);
  } catch {
    return raw;
  }
  if (!m || typeof m !== "object" || !m.error || typeof m.error !== "object" || "method" in m) return raw;
  const code = Number.isInteger(m.error.code) ? (m.error.code as number) : -32603;
  const data = m.error.data === undefined ? undefined : scrubErrorData(m.error.data);
  const empty = data !== null && typeof data === "object" && Object.keys(data).length === 0;
  const keep = data !== undefined && !empty && JSON.stringify(data).length <= MAX_DATA_CHARS;
  return JSON.stringify({ jsonrpc: "2.0", id: m.id ?? null, error: { code, message: sanitizeMessage(m.error.message), ...(keep ? { data } : {}) } });
}

/** The same over a body: one JSON message, or complete SSE events (a partial trailing event is left as is). */
export function sanitizeBody(body: Buffer, sse: boolean): Buffer {
  if (!bytesMayHoldKey(body, ERROR_KEY)) return body;
  const text = body.toString("utf8");
  if (!sse) {
    // An answer that only holds an escape (no error) comes back as it was: no second copy of its bytes.
    const out = sanitizeRaw(text);
    return out === text ? body : Buffer.from(out);
  }
  const parts = text.split(SPLIT_EVENTS);
  let out = "";
  for (let i = 0; i < parts.length; i += 2) {
    const block = parts[i]!;
    const sep = parts[i + 1];
    if (sep === undefined) {
      out += block; // incomplete event at the end of this chunk
      break;
    }
    if (!mayHoldKey(block, '"error"')) {
      out += block + sep;
      continue;
    }
    const e = parseEvent(block);
    if (e.data !== undefined) e.data = sanitizeRaw(e.data);
    out += formatEvent(e);
  }
  return Buffer.from(out);
}

/**
 * Whether the top-level object of a JSON text has a member named `name` among those whose key lies
 * wholly within `text`: `text` may be the first bytes of a message still arriving. Keys are read as a
 * client would (escapes decoded). Used where an answer is too long to hold whole: whether it is an
 * error (and must be held and sanitized) is decided from its beginning, where JSON-RPC puts the key.
 */
export function topLevelHasKey(text: string, name: string): boolean {
  let depth = 0;
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j += 2;
        else if (d === 0x22) break;
        else j++;
      }
      if (j >= n) return false; // the string goes on past this prefix
      if (depth === 1 && expectKey) {
        let key: unknown;
        try {
          key = JSON.parse(text.slice(i, j + 1));
        } catch {
          key = undefined;
        }
        if (key === name) return true;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth <= 0) return false;
    } else if (c === 0x2c && depth === 1) expectKey = true;
  }
  return false;
}

const BOUNDARY = new RegExp(EVENT_BOUNDARY_SOURCE, "g");

/** The index just past the last event boundary in `buf`, or 0 when it holds none. */
export function lastEventEnd(buf: Buffer): number {
  const text = buf.toString("latin1");
  let end = 0;
  BOUNDARY.lastIndex = 0;
  for (let m = BOUNDARY.exec(text); m; m = BOUNDARY.exec(text)) end = m.index + m[0].length;
  return end;
}

/** The index just past the first event boundary in `buf`, or 0 when it holds none. */
export function firstEventEnd(buf: Buffer): number {
  BOUNDARY.lastIndex = 0;
  const m = BOUNDARY.exec(buf.toString("latin1"));
  return m ? m.index + m[0].length : 0;
}

/** Whether the start of an SSE event (maybe incomplete) carries a JSON-RPC error in its data. */
export function eventMayBeError(partial: Buffer): boolean {
  if (!bytesMayHoldKey(partial, ERROR_KEY)) return false;
  const data = parseEvent(partial.toString("utf8")).data;
  return data !== undefined && topLevelHasKey(data, "error");
}
