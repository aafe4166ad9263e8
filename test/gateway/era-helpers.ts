// issue 11: fixtures for the era tests: a v2 SDK server (createMcpHandler) served over node:http, raw
// 2026-07-28 requests with their metadata headers, and a reader for SSE streams (subscriptions/listen).
import http from "node:http";
import { type CreateMcpHandlerOptions, type McpServer, createMcpHandler } from "@modelcontextprotocol/server";

export const MODERN = "2026-07-28";

/** createMcpHandler's fetch face on a free loopback port (the SDK's own node adapter is a separate package). */
export async function serveV2(factory: () => McpServer, options: CreateMcpHandlerOptions = {}) {
  const handler = createMcpHandler(factory, options);
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const ac = new AbortController();
    res.on("close", () => ac.abort());
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const request = new Request(`http://127.0.0.1${req.url ?? "/"}`, {
      method: req.method,
      headers,
      body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
      signal: ac.signal,
    });
    try {
      const response = await handler.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) for await (const chunk of response.body) res.write(chunk);
      res.end();
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    handler,
    url: `http://127.0.0.1:${port}/mcp`,
    close: async () => {
      await handler.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: test answers are inspected field by field
type Msg = Record<string, any>;

export interface Events {
  /** Every message seen so far on the stream. */
  seen: Msg[];
  /** Waits (with a deadline) for a message matching `pred` that was not returned before; says what was seen on timeout. */
  next(what: string, pred: (m: Msg) => boolean, ms?: number): Promise<Msg>;
}

function readEvents(body: ReadableStream<Uint8Array>): Events {
  const seen: Msg[] = [];
  const taken = new Set<Msg>();
  const waiters = new Set<() => void>();
  void (async () => {
    let buf = "";
    const dec = new TextDecoder();
    try {
      for await (const chunk of body) {
        buf += dec.decode(chunk, { stream: true });
        let i = buf.indexOf("\n\n");
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (data) seen.push(JSON.parse(data) as Msg);
          for (const w of waiters) w();
          i = buf.indexOf("\n\n");
        }
      }
    } catch {
      // stream closed by the test
    }
  })();
  return {
    seen,
    next(what, pred, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = seen.find((x) => !taken.has(x) && pred(x));
          if (!m) return false;
          taken.add(m);
          waiters.delete(check);
          clearTimeout(t);
          resolve(m);
          return true;
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${what}: not seen within ${ms} ms; seen: ${JSON.stringify(seen).slice(0, 2000)}`));
        }, ms);
        if (!check()) waiters.add(check);
      });
    },
  };
}

let nextId = 1;

/**
 * One 2026-07-28 request as a conforming client sends it: `_meta` envelope, MCP-Protocol-Version,
 * Mcp-Method and Mcp-Name headers. `headers` overrides them (null removes one). With `stream`, the
 * answer is read as an SSE stream (subscriptions/listen).
 */
export async function modernRpc(
  url: string,
  key: string,
  method: string,
  params: Msg,
  headers?: Record<string, string | null>,
  version?: string,
): Promise<{ status: number; body: Msg; events: Msg[] }>;
export async function modernRpc(
  url: string,
  key: string,
  method: string,
  params: Msg,
  headers: Record<string, string | null>,
  version: string,
  stream: true,
): Promise<{ status: number; events: Events; close(): void }>;
export async function modernRpc(
  url: string,
  key: string,
  method: string,
  params: Msg,
  headers: Record<string, string | null> = {},
  version = MODERN,
  stream = false,
) {
  const id = nextId++;
  const body = {
    jsonrpc: "2.0",
    id,
    method,
    params: {
      ...params,
      _meta: { ...params._meta, "io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": { elicitation: {} } },
    },
  };
  const h: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "x-api-key": key,
    "mcp-protocol-version": version,
    "mcp-method": method,
  };
  const name = method === "resources/read" ? params.uri : method === "tools/call" || method === "prompts/get" ? params.name : undefined;
  if (typeof name === "string") h["mcp-name"] = name;
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete h[k];
    else h[k] = v;
  }
  const ac = new AbortController();
  const r = await fetch(url, { method: "POST", headers: h, body: JSON.stringify(body), signal: ac.signal });
  if (stream) {
    if (!r.body) throw new Error(`no stream: HTTP ${r.status}`);
    return { status: r.status, events: readEvents(r.body), close: () => ac.abort() };
  }
  const text = await r.text();
  // An SSE answer: every message in order (notifications first), the body is the last one (the response).
  if ((r.headers.get("content-type") ?? "").includes("text/event-stream")) {
    const events = text
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => JSON.parse(l.slice(5).trim()) as Msg);
    return { status: r.status, body: events.at(-1)!, events };
  }
  return { status: r.status, body: JSON.parse(text) as Msg, events: [] };
}
