// issue 11: which MCP protocol era a request belongs to, and the checks the 2026-07-28 revision puts on
// the HTTP headers that mirror the body. Pure functions over the parsed message and the request
// headers; the era stage (stages.ts) runs them once, before the session and policy stages, so every
// later stage decides on the body the server will act on, whatever the headers claimed.
//
//   modern  a request whose `_meta` carries io.modelcontextprotocol/protocolVersion (or whose
//           MCP-Protocol-Version header names 2026-07-28 or later): stateless, no session.
//   legacy  `initialize`, requests of a session (Mcp-Session-Id), the older HTTP+SSE transport.
import type { IncomingHttpHeaders } from "node:http";
import type { Stop } from "./exchange.ts";
import { ERR, type JsonRpcMessage } from "./jsonrpc.ts";

export type Era = "legacy" | "modern";

/** The first revision of the stateless era; revisions are ISO dates, so later ones sort after it. */
export const MODERN_VERSION = "2026-07-28";

/** Reserved `_meta` keys of the 2026-07-28 revision. */
export const META = {
  protocolVersion: "io.modelcontextprotocol/protocolVersion",
  clientCapabilities: "io.modelcontextprotocol/clientCapabilities",
  clientInfo: "io.modelcontextprotocol/clientInfo",
  serverInfo: "io.modelcontextprotocol/serverInfo",
  subscriptionId: "io.modelcontextprotocol/subscriptionId",
} as const;

export function isModernVersion(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(v) && v >= MODERN_VERSION;
}

/** Methods whose `Mcp-Name` header mirrors a body field, and which field. */
const NAME_SOURCE: Readonly<Record<string, "name" | "uri">> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

export interface EraDecision {
  era: Era;
  /** The version the request names (its `_meta`, its header, or initialize's params.protocolVersion). */
  version: string | undefined;
  /** A legacy initialize asked for a version outside the allowlist: the newest allowed legacy version to offer instead. */
  offer?: string;
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v.join(", ") : v).trim();
}

function metaOf(m: JsonRpcMessage): Record<string, unknown> | undefined {
  const meta = m.params?._meta;
  return meta !== null && typeof meta === "object" && !Array.isArray(meta) ? (meta as Record<string, unknown>) : undefined;
}

/** The client capabilities a 2026 request declares (its `_meta`), or undefined. */
export function declaredCapabilities(m: JsonRpcMessage | undefined): Record<string, unknown> | undefined {
  const c = m ? metaOf(m)?.[META.clientCapabilities] : undefined;
  return c !== null && typeof c === "object" && !Array.isArray(c) ? (c as Record<string, unknown>) : undefined;
}

function shown(v: string): string {
  return JSON.stringify(v.length > 128 ? `${v.slice(0, 128)}...` : v);
}

export function headerMismatch(message: string): Stop {
  return { status: 400, code: ERR.headerMismatch, message: `header mismatch: ${message}`, outcome: "invalid" };
}

/** The spec's UnsupportedProtocolVersionError: 400, -32022, and the versions this endpoint serves. */
export function unsupportedVersion(requested: string | undefined, supported: readonly string[]): Stop {
  return {
    status: 400,
    code: ERR.unsupportedVersion,
    message: `unsupported protocol version ${requested === undefined ? "(none named)" : shown(requested)}; supported versions: ${supported.join(", ")}`,
    outcome: "invalid",
    data: { supported: [...supported], ...(requested !== undefined ? { requested } : {}) },
  };
}

function invalidMeta(message: string): Stop {
  return { status: 400, code: ERR.invalidParams, message: `invalid params: ${message}`, outcome: "invalid" };
}

const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

/** A header value as the spec encodes it: plain, or `=?base64?...?=` (UTF-8). undefined: a malformed sentinel. */
export function decodeHeaderValue(v: string): string | undefined {
  if (!(v.startsWith("=?base64?") && v.endsWith("?="))) return v;
  const m = SENTINEL.exec(v);
  if (!m || m[1]!.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(m[1]!, "base64");
  if (bytes.toString("base64") !== m[1]) return undefined; // not canonical
  const text = new TextDecoder("utf-8", { fatal: true });
  try {
    return text.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Mcp-Method and Mcp-Name against the body. Present headers are always checked (whatever the era: a
 * component in front of the gateway may route on them); `required` (2026 requests) makes them mandatory.
 */
function standardHeaders(m: JsonRpcMessage, h: IncomingHttpHeaders, required: boolean): Stop | undefined {
  const method = header(h, "mcp-method");
  if (method === undefined) {
    if (required && m.method !== undefined) return headerMismatch(`the body names method ${shown(m.method)} but the Mcp-Method header is missing`);
  } else if (method !== m.method) return headerMismatch(`the Mcp-Method header names ${shown(method)} but the body names ${shown(m.method ?? "(none)")}`);
  const field = m.method !== undefined ? NAME_SOURCE[m.method] : undefined;
  const bodyValue = field ? m.params?.[field] : undefined;
  const name = header(h, "mcp-name");
  if (name === undefined) {
    if (required && typeof bodyValue === "string")
      return headerMismatch(`the body carries params.${field}=${shown(bodyValue)} but the Mcp-Name header is missing`);
    return undefined;
  }
  const decoded = decodeHeaderValue(name);
  if (decoded === undefined) return headerMismatch("the Mcp-Name header carries an invalid Base64 sentinel value");
  if (decoded !== bodyValue)
    return headerMismatch(
      `the Mcp-Name header names ${shown(decoded)} but the body carries ${field ? `params.${field}=${shown(String(bodyValue ?? "(none)"))}` : "no name"}`,
    );
  return undefined;
}

/**
 * Decides the era of a POST on the MCP endpoint and checks what the era requires of it. `allowed` is
 * the version allowlist. Returns the decision, or the refusal (400 with -32020, -32022 or -32602).
 */
export function classify(m: JsonRpcMessage, h: IncomingHttpHeaders, allowed: readonly string[]): EraDecision | Stop {
  const hv = header(h, "mcp-protocol-version");
  const meta = metaOf(m);
  const claim = meta !== undefined && META.protocolVersion in meta;
  const isRequest = m.method !== undefined && m.id !== undefined;
  // A client's answer to a server request: only sessions (2025) have those.
  if (m.method === undefined) return legacy(m, h, hv, allowed);
  if (m.method === "initialize" && !(claim && typeof meta![META.protocolVersion] === "string" && isModernVersion(meta![META.protocolVersion] as string))) {
    if (hv !== undefined && isModernVersion(hv)) return headerMismatch(`an initialize request (2025 handshake) carries MCP-Protocol-Version ${shown(hv)}`);
    return legacy(m, h, hv, allowed);
  }
  if (claim) {
    const v = meta![META.protocolVersion];
    if (typeof v !== "string") return invalidMeta(`_meta["${META.protocolVersion}"] must be a string`);
    if (hv !== undefined && hv !== v)
      return headerMismatch(`the body's _meta names protocol version ${shown(v)} but the MCP-Protocol-Version header names ${shown(hv)}`);
    if (!isModernVersion(v) || !allowed.includes(v)) return unsupportedVersion(v, allowed);
    if (isRequest) {
      if (hv === undefined) return headerMismatch(`the body's _meta names protocol version ${shown(v)} but the MCP-Protocol-Version header is missing`);
      const caps = meta![META.clientCapabilities];
      if (caps === null || typeof caps !== "object" || Array.isArray(caps)) return invalidMeta(`_meta["${META.clientCapabilities}"] is required (an object)`);
      const mrtr = mrtrProblem(m);
      if (mrtr) return invalidMeta(mrtr);
    }
    const s = standardHeaders(m, h, isRequest);
    return s ?? { era: "modern", version: v };
  }
  if (hv !== undefined && isModernVersion(hv)) {
    if (isRequest) return invalidMeta(`the MCP-Protocol-Version header names ${shown(hv)} but params._meta["${META.protocolVersion}"] is missing`);
    if (!allowed.includes(hv)) return unsupportedVersion(hv, allowed);
    return standardHeaders(m, h, false) ?? { era: "modern", version: hv };
  }
  return legacy(m, h, hv, allowed);
}

const MRTR_RETRY_METHODS = new Set(["tools/call", "prompts/get", "resources/read"]);

/** The MRTR retry fields, when present: only on the methods that take them, and of the spec's shapes. */
function mrtrProblem(m: JsonRpcMessage): string | undefined {
  const p = m.params ?? {};
  const ir = p.inputResponses;
  const rs = p.requestState;
  if (ir === undefined && rs === undefined) return undefined;
  if (!MRTR_RETRY_METHODS.has(m.method!)) return `${shown(m.method!)} does not take inputResponses or requestState`;
  if (rs !== undefined && (typeof rs !== "string" || rs.length > 65536)) return '"requestState" must be a string (at most 64 KiB)';
  if (ir !== undefined) {
    if (ir === null || typeof ir !== "object" || Array.isArray(ir)) return '"inputResponses" must be an object';
    const values = Object.values(ir);
    if (values.length > 64) return '"inputResponses" has more than 64 entries';
    if (values.some((v) => v === null || typeof v !== "object" || Array.isArray(v))) return 'every "inputResponses" entry must be an object';
  }
  return undefined;
}

function legacy(m: JsonRpcMessage, h: IncomingHttpHeaders, hv: string | undefined, allowed: readonly string[]): EraDecision | Stop {
  const s = standardHeaders(m, h, false);
  if (s) return s;
  if (m.method === "initialize") {
    const requested = typeof m.params?.protocolVersion === "string" ? m.params.protocolVersion : undefined;
    if (requested !== undefined && allowed.includes(requested)) return { era: "legacy", version: requested };
    // 2025 negotiation: the server answers with a version it supports; the client decides whether it can use it.
    const offer = allowed.find((v) => !isModernVersion(v));
    if (offer === undefined) return unsupportedVersion(requested, allowed);
    return { era: "legacy", version: offer, offer };
  }
  if (hv !== undefined && !allowed.includes(hv)) return unsupportedVersion(hv, allowed);
  return { era: "legacy", version: hv };
}

/** A GET or DELETE (2025 sessions only): its MCP-Protocol-Version header, when present, must be allowed. */
export function classifyBodyless(h: IncomingHttpHeaders, allowed: readonly string[]): EraDecision | Stop {
  const hv = header(h, "mcp-protocol-version");
  if (hv !== undefined && !allowed.includes(hv)) return unsupportedVersion(hv, allowed);
  return { era: "legacy", version: hv };
}

// ---------------------------------------------------------------- x-mcp-header parameters

export interface ParamHeader {
  path: string[];
  header: string;
  type: string | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The `x-mcp-header` declarations of a tool's input schema: properties reachable from the root by a
 * chain of `properties` keys only (the spec's static reachability). Declarations elsewhere are not
 * mirrored by conforming clients, so they are not expected here either.
 */
export function paramHeaders(schema: unknown): ParamHeader[] {
  const out: ParamHeader[] = [];
  const visit = (node: unknown, path: string[], depth: number): void => {
    if (node === null || typeof node !== "object" || depth > 16) return;
    const s = node as Record<string, unknown>;
    const name = s["x-mcp-header"];
    if (path.length > 0 && typeof name === "string" && TOKEN.test(name))
      out.push({ path, header: name, type: typeof s.type === "string" ? s.type : undefined });
    const props = s.properties;
    if (props !== null && typeof props === "object" && !Array.isArray(props))
      for (const [k, child] of Object.entries(props)) visit(child, [...path, k], depth + 1);
  };
  visit(schema, [], 0);
  return out;
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/**
 * The `Mcp-Param-{Name}` headers of a tools/call against its arguments: a value in the body needs its
 * header, decoding to the same value (integers compared as numbers). Returns the refusal or undefined.
 */
export function paramHeaderProblem(decls: readonly ParamHeader[], args: unknown, h: IncomingHttpHeaders): Stop | undefined {
  for (const d of decls) {
    const body = valueAt(args, d.path);
    if (body === undefined || body === null) continue;
    if (typeof body !== "string" && typeof body !== "number" && typeof body !== "boolean") continue;
    const name = `Mcp-Param-${d.header}`;
    const raw = header(h, name.toLowerCase());
    if (raw === undefined) return headerMismatch(`the body carries ${d.path.join(".")}=${shown(JSON.stringify(body))} but the ${name} header is missing`);
    const decoded = decodeHeaderValue(raw);
    if (decoded === undefined) return headerMismatch(`the ${name} header carries an invalid Base64 sentinel value`);
    const same = typeof body === "number" ? /^-?\d+(\.\d+)?$/.test(decoded) && Number(decoded) === body : decoded === String(body);
    if (!same) return headerMismatch(`the ${name} header decodes to ${shown(decoded)} but the body carries ${d.path.join(".")}=${shown(JSON.stringify(body))}`);
  }
  return undefined;
}
