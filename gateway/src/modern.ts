// issue 11: what the gateway does to 2026-07-28 results on their way to the client. Pure functions.
//
// - Every result carries `resultType` ("complete" unless the server said otherwise, e.g. MRTR's
//   "input_required"); results of a 2025 upstream (bridged) get it here.
// - Cacheable results (lists, resources/read, server/discover) are what the gateway filters or
//   authorizes per client, so they are answered with cacheScope "private" whatever the upstream said:
//   no shared cache may hand one client's view to another. ttlMs is kept when valid, else 0.
// - server/discover announces only what the client may see: the versions of the gateway's allowlist,
//   and no tools/resources/prompts capability for a kind the client is allowed none of.
import type { Kind } from "./authz.ts";

export const CACHEABLE = new Set(["server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"]);

/** The methods whose results may be MRTR interim results (resultType "input_required"). */
export const MRTR_METHODS = new Set(["tools/call", "prompts/get", "resources/read"]);

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A result in the 2026 shape for the request `method` it answers. */
export function modernResult(method: string | undefined, result: unknown): unknown {
  if (!isObj(result)) return result;
  const resultType = typeof result.resultType === "string" ? result.resultType : "complete";
  const out: Obj = { ...result, resultType };
  if (resultType === "complete" && method !== undefined && CACHEABLE.has(method)) {
    out.ttlMs = typeof result.ttlMs === "number" && Number.isFinite(result.ttlMs) && result.ttlMs >= 0 ? Math.floor(result.ttlMs) : 0;
    out.cacheScope = "private";
  }
  return out;
}

/** What one client may see of each kind at all (the capabilities server/discover may announce). */
export type Visibility = Readonly<Record<Kind, boolean>>;

/** A DiscoverResult filtered for one client: allowed versions only, capabilities of visible kinds only. */
export function filterDiscover(result: unknown, visible: Visibility, allowed: readonly string[]): unknown {
  if (!isObj(result)) return result;
  const out: Obj = { ...result };
  if (Array.isArray(result.supportedVersions)) out.supportedVersions = result.supportedVersions.filter((v) => typeof v === "string" && allowed.includes(v));
  if (isObj(result.capabilities)) {
    const caps: Obj = { ...result.capabilities };
    for (const k of ["tools", "resources", "prompts"] as const) if (!visible[k]) delete caps[k];
    if (!visible.prompts && !visible.resources) delete caps.completions;
    out.capabilities = caps;
  }
  return out;
}

/** The listen filter fields for list changes, by the kind each one is about. */
const LIST_CHANGE_FILTERS: Readonly<Record<string, Kind>> = { toolsListChanged: "tools", promptsListChanged: "prompts", resourcesListChanged: "resources" };

/**
 * A subscriptions/listen filter (requested or acknowledged) cut to what the client may see: the
 * acknowledgment is "the subset the server agreed to honor", and the gateway never sends list changes
 * of a kind the client may see nothing of.
 */
export function visibleFilter(filter: unknown, visible: Visibility): Record<string, unknown> {
  if (!isObj(filter)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter)) {
    const kind = LIST_CHANGE_FILTERS[k];
    if (kind !== undefined && !visible[kind]) continue;
    out[k] = v;
  }
  return out;
}

/**
 * A DiscoverResult the gateway builds for a 2025 upstream (bridged for 2026 clients) from its
 * initialize result: its capabilities, instructions and serverInfo.
 */
export function discoverFromInitialize(init: unknown, allowed: readonly string[]): Obj {
  const r = isObj(init) ? init : {};
  const caps: Obj = isObj(r.capabilities) ? { ...r.capabilities } : {};
  // Logging is per request in 2026 (_meta logLevel); a 2025 session's logging/setLevel is not relayed.
  delete caps.logging;
  return {
    supportedVersions: [...allowed],
    capabilities: caps,
    ...(typeof r.instructions === "string" ? { instructions: r.instructions } : {}),
    ...(isObj(r.serverInfo) ? { _meta: { "io.modelcontextprotocol/serverInfo": r.serverInfo } } : {}),
  };
}
