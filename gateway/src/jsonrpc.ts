// JSON-RPC 2.0 helpers: shape checks and the error bodies the gateway answers with. Messages are
// short, name the field or tool at fault, and never carry internals.
export type JsonRpcId = string | number | null;

export const ERR = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** Server-defined range (-32000..-32099). */
  unauthorized: -32001,
  denied: -32003,
  rateLimited: -32029,
  timeout: -32008,
  tooLarge: -32013,
  upstream: -32002,
  overloaded: -32009,
  /** issue 11, 2026-07-28: the Mcp-Method / Mcp-Name / Mcp-Param-* headers disagree with the body (HTTP 400). */
  headerMismatch: -32020,
  /** issue 11, 2026-07-28: UnsupportedProtocolVersionError, data: { supported, requested } (HTTP 400). */
  unsupportedVersion: -32022,
  /**
   * issue 11: rate limited, for 2026-07-28 clients. That revision reserves -32020..-32099 for codes it
   * defines (so not -32029) and asks for new codes outside JSON-RPC's reserved range; HTTP 429 and
   * Retry-After say the same.
   */
  rateLimitedModern: -31029,
} as const;

/**
 * issue 11: the code a 2026-07-28 client gets for one the gateway (or a bridged 2025 server) uses. The
 * revision forbids -32002 (2025's "resource not found", now -32602; the gateway's "upstream error"
 * becomes -32603, internal error) and codes of its reserved range it does not define (-32029).
 */
export function modernErrorCode(code: number, method: string | undefined): number {
  if (code === ERR.upstream) return method === "resources/read" ? ERR.invalidParams : ERR.internal;
  if (code === ERR.rateLimited) return ERR.rateLimitedModern;
  return code;
}

export interface JsonRpcMessage {
  jsonrpc: "2.0";
  id?: JsonRpcId;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

export function errorBody(id: JsonRpcId | undefined, code: number, message: string, data?: unknown): string {
  const error = data === undefined ? { code, message } : { code, message, data };
  return JSON.stringify({ jsonrpc: "2.0", id: id ?? null, error });
}

/**
 * Deepest nesting of arrays and objects the gateway forwards. JSON.parse copes with any depth, but
 * the server behind the gateway may not (recursive parsers overflow their stack, Python stops at
 * 1000): a 1 MiB body can nest 100000 levels. Real MCP arguments stay far below this.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether a parsed JSON value nests deeper than `max`. Recursive, but never deeper than `max` + 1
 * calls whatever the input: the walk stops at the first level past the bound (hostile input cannot
 * overflow the stack). No per-node allocation on the hot path (every request's body goes through it).
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  return value !== null && typeof value === "object" && deeperThan(value, 1, max);
}

function deeperThan(v: object, depth: number, max: number): boolean {
  if (depth > max) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const c: unknown = v[i];
      if (c !== null && typeof c === "object" && deeperThan(c, depth + 1, max)) return true;
    }
    return false;
  }
  // for-in, not Object.values: no array per object (JSON.parse makes plain objects with no inherited keys).
  for (const k in v) {
    const c: unknown = (v as Record<string, unknown>)[k];
    if (c !== null && typeof c === "object" && deeperThan(c, depth + 1, max)) return true;
  }
  return false;
}

/** Returns a problem description for a message that is not a single JSON-RPC 2.0 message, else undefined. */
export function shapeProblem(msg: unknown): string | undefined {
  if (Array.isArray(msg)) return "JSON-RPC batches are not supported; send one message per request";
  if (msg === null || typeof msg !== "object") return "the body must be a JSON-RPC object";
  if (nestsDeeperThan(msg, MAX_JSON_DEPTH)) return `the message nests deeper than ${MAX_JSON_DEPTH} levels`;
  const m = msg as Record<string, unknown>;
  if (m.jsonrpc !== "2.0") return 'field "jsonrpc" must be "2.0"';
  const hasId = "id" in m;
  if (hasId && typeof m.id !== "string" && typeof m.id !== "number") return 'field "id" must be a string or a number';
  if ("method" in m) {
    if (typeof m.method !== "string" || m.method.length === 0) return 'field "method" must be a non-empty string';
    if ("params" in m && (m.params === null || typeof m.params !== "object" || Array.isArray(m.params))) return 'field "params" must be an object';
    return undefined;
  }
  // A response from the client (to a server-initiated request, e.g. sampling).
  if (!hasId) return 'a message needs "method" or "id"';
  if (!("result" in m) && !("error" in m)) return 'a response needs "result" or "error"';
  return undefined;
}

export function isRequest(m: JsonRpcMessage): boolean {
  return typeof m.method === "string" && m.id !== undefined && m.id !== null;
}
