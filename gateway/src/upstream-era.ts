// issue 11: what era a streamable-HTTP upstream speaks, found the way the spec's dual-era clients do:
// a `server/discover` probe carrying the 2026-07-28 `_meta`. A DiscoverResult offering a 2026
// version (or an UnsupportedProtocolVersionError naming one) is a 2026 upstream, proxied statelessly;
// any other answer is a 2025 upstream (initialize, sessions), bridged for 2026 clients. A failure to
// connect is no answer: the probe is retried. Also the gateway's own stateless calls to a 2026 upstream
// (its tool catalog), since such an upstream may not accept `initialize` at all.
import http from "node:http";
import { CATALOG_CLIENT_CAPABILITIES, sseEvents } from "./channel.ts";
import { META, MODERN_VERSION, isModernVersion } from "./era.ts";
import { mayHoldKey } from "./sanitize.ts";

export type UpstreamEra = "modern" | "legacy";

export const GATEWAY_CLIENT_INFO = { name: "mcp-bastion-gateway", version: "0.1.0" };

interface Answer {
  status: number;
  message: { result?: unknown; error?: { code?: unknown; data?: unknown } } | undefined;
}

/** One stateless 2026 request to the upstream (JSON or SSE answer); the answer's first response message. */
export function modernCall(
  url: URL,
  agent: http.Agent,
  method: string,
  params: Record<string, unknown>,
  timeoutMs: number,
  extraHeaders: Record<string, string> = {},
): Promise<Answer> {
  const body = Buffer.from(
    JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: { [META.protocolVersion]: MODERN_VERSION, [META.clientCapabilities]: CATALOG_CLIENT_CAPABILITIES, [META.clientInfo]: GATEWAY_CLIENT_INFO },
      },
    }),
  );
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent,
      headers: {
        ...extraHeaders,
        "content-type": "application/json",
        "content-length": body.length,
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": method,
      },
    });
    const t = setTimeout(() => req.destroy(new Error(`${method} timed out`)), timeoutMs);
    req.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      let done = false;
      const finish = (text: string | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        let message: Answer["message"];
        try {
          message = text ? (JSON.parse(text) as Answer["message"]) : undefined;
        } catch {
          message = undefined;
        }
        resolve({ status, message });
        res.destroy();
      };
      if (String(res.headers["content-type"] ?? "").includes("text/event-stream")) {
        sseEvents(res, (_t, data) => {
          if (mayHoldKey(data, '"result"') || mayHoldKey(data, '"error"')) finish(data);
        });
        res.on("end", () => finish(undefined));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size <= 4 * 1024 * 1024) chunks.push(c);
      });
      res.on("end", () => finish(Buffer.concat(chunks).toString("utf8")));
      res.on("error", () => finish(undefined));
    });
    req.end(body);
  });
}

/** The era of a DiscoverResult-or-error answer (pure). */
export function eraOfAnswer(a: Answer): UpstreamEra {
  const m = a.message;
  if (a.status === 200 && m?.result && typeof m.result === "object") {
    const v = (m.result as { supportedVersions?: unknown }).supportedVersions;
    if (Array.isArray(v) && v.some((x) => typeof x === "string" && isModernVersion(x))) return "modern";
  }
  if (m?.error && m.error.code === -32022) {
    const s = (m.error.data as { supported?: unknown } | undefined)?.supported;
    if (Array.isArray(s) && s.some((x) => typeof x === "string" && isModernVersion(x))) return "modern";
  }
  return "legacy";
}

export async function discoverEra(url: URL, agent: http.Agent, timeoutMs = 10_000): Promise<{ era: UpstreamEra; discover: unknown }> {
  const a = await modernCall(url, agent, "server/discover", {}, timeoutMs);
  const era = eraOfAnswer(a);
  return { era, discover: era === "modern" ? a.message?.result : undefined };
}

/** Every page of tools/list from a 2026 upstream (the gateway's catalog). */
export async function listToolsModern(url: URL, agent: http.Agent, timeoutMs: number): Promise<unknown[]> {
  const tools: unknown[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const a = await modernCall(url, agent, "tools/list", cursor ? { cursor } : {}, timeoutMs);
    const r = a.message?.result as { tools?: unknown[]; nextCursor?: unknown } | undefined;
    if (a.status !== 200 || !r) throw new Error(`tools/list failed (HTTP ${a.status})`);
    tools.push(...(Array.isArray(r.tools) ? r.tools : []));
    if (typeof r.nextCursor !== "string" || r.nextCursor.length === 0) break;
    cursor = r.nextCursor;
  }
  return tools;
}
