// A canned but protocol-correct MCP server over streamable HTTP, for the gateway benchmark: it answers
// initialize (with a session id), notifications, ping, tools/list and tools/call of an `echo` tool the
// way the transport spec (2025-03-26 and later) asks, and does nothing else. It costs a few tens of
// microseconds of CPU per call, against ~1 ms for server-everything, so behind it the proxy under test
// is the bottleneck, not the server.
//
// What it enforces, like a real server: POST needs Content-Type application/json and an Accept naming
// both application/json and text/event-stream (406/415 otherwise); every request but initialize needs a
// known Mcp-Session-Id (400 without, 404 for an unknown one); an unsupported MCP-Protocol-Version header
// is 400; notifications and responses get 202 with no body; unknown methods and tools, and arguments
// that do not match the schema, get JSON-RPC errors; DELETE ends a session; GET is 405 (no stream offered).
//
//   node bench/gateway/canned.ts [PORT]   prints "listening PORT" on stderr
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const ECHO = {
  name: "echo",
  description: "Echoes back the input string",
  inputSchema: {
    type: "object",
    properties: { message: { type: "string", description: "Message to echo" } },
    required: ["message"],
    additionalProperties: false,
    $schema: "http://json-schema.org/draft-07/schema#",
  },
};
const TOOLS_LIST = { tools: [ECHO] };

type Id = string | number | null;
interface Message {
  jsonrpc?: unknown;
  id?: Id;
  method?: unknown;
  params?: { name?: unknown; arguments?: { message?: unknown }; protocolVersion?: unknown } & Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

const sessions = new Set<string>();

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

const result = (id: Id, r: unknown) => ({ jsonrpc: "2.0", id, result: r });
const error = (id: Id, code: number, message: string) => ({ jsonrpc: "2.0", id, error: { code, message } });

/** The answer to one JSON-RPC request of an established session. */
export function answer(m: Message): unknown {
  const id = m.id ?? null;
  switch (m.method) {
    case "ping":
      return result(id, {});
    case "tools/list":
      return result(id, TOOLS_LIST);
    case "tools/call": {
      const p = m.params;
      if (p?.name !== "echo") return error(id, -32602, `Unknown tool: ${String(p?.name).slice(0, 64)}`);
      const a = p.arguments;
      if (!a || typeof a !== "object" || typeof a.message !== "string" || Object.keys(a).length !== 1)
        return error(id, -32602, "Invalid arguments for tool echo: message (a string) is required");
      return result(id, { content: [{ type: "text", text: `Echo: ${a.message}` }] });
    }
    default:
      return error(id, -32601, `Method not found: ${String(m.method).slice(0, 64)}`);
  }
}

function post(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (!String(req.headers["content-type"] ?? "").includes("application/json"))
    return void json(res, 415, error(null, -32000, "Content-Type must be application/json"));
  const accept = String(req.headers.accept ?? "");
  if (!accept.includes("application/json") || !accept.includes("text/event-stream"))
    return void json(res, 406, error(null, -32000, "Accept must list both application/json and text/event-stream"));
  let m: Message;
  try {
    m = JSON.parse(body) as Message;
  } catch {
    return void json(res, 400, error(null, -32700, "Parse error"));
  }
  if (!m || typeof m !== "object" || Array.isArray(m) || m.jsonrpc !== "2.0") return void json(res, 400, error(null, -32600, "Invalid Request"));
  const sid = req.headers["mcp-session-id"];
  if (m.method === "initialize") {
    if (sid !== undefined) return void json(res, 400, error(m.id ?? null, -32600, "initialize must not carry a session id"));
    const asked = m.params?.protocolVersion;
    const version = typeof asked === "string" && VERSIONS.includes(asked) ? asked : VERSIONS[0]!;
    const id = randomUUID();
    sessions.add(id);
    return void json(
      res,
      200,
      result(m.id ?? null, { protocolVersion: version, capabilities: { tools: { listChanged: false } }, serverInfo: { name: "canned", version: "1.0.0" } }),
      { "mcp-session-id": id },
    );
  }
  if (typeof sid !== "string") return void json(res, 400, error(m.id ?? null, -32000, "Bad Request: Mcp-Session-Id header is required"));
  if (!sessions.has(sid)) return void json(res, 404, error(m.id ?? null, -32001, "Session not found"));
  const pv = req.headers["mcp-protocol-version"];
  if (pv !== undefined && !VERSIONS.includes(String(pv)))
    return void json(res, 400, error(m.id ?? null, -32000, `Unsupported protocol version: ${String(pv).slice(0, 32)}`));
  // Notifications and the client's responses: accepted, nothing to answer.
  if (m.method === undefined || m.id === undefined) {
    res.writeHead(202).end();
    return;
  }
  json(res, 200, answer(m));
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/mcp") return void json(res, 404, error(null, -32000, "Not found"));
  if (req.method === "POST") {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => post(req, res, body));
    return;
  }
  if (req.method === "DELETE") {
    const sid = req.headers["mcp-session-id"];
    if (typeof sid !== "string" || !sessions.delete(sid)) return void json(res, 404, error(null, -32001, "Session not found"));
    res.writeHead(200).end();
    return;
  }
  res.writeHead(405, { allow: "POST, DELETE" }).end();
}

/** Starts the server on 127.0.0.1 (port 0: any free one). */
export function startCanned(port = 0): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handle);
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

if (import.meta.main) {
  const { port } = await startCanned(Number(process.argv[2] ?? 0));
  process.stderr.write(`listening ${port}\n`);
}
