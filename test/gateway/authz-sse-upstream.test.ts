// Issue 13, the caller's identity for an upstream on the older HTTP+SSE transport: an official SDK server
// (SSEServerTransport) whose `whoami` tool answers with the request headers the SDK hands it
// (extra.requestInfo), the way a server that serves many users would read them. The gateway holds the MCP
// session upstream; every POST it sends must carry the verified identity and a JWT that verifies against
// its JWKS, never the client's own key nor identity headers the client made up.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { waitUntil } from "../support/index.ts";
import { MemorySink, baseConfig, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-Sx4Dc5Fv6Gb7Hn8Jm9Kq";
const BOB = "bob-Lp0Ok9Ij8Uh7Yg6Tf5Rd";
let upstream: http.Server;
let gw: Gateway;
let base: string;
let adminPort: number;
/** POSTs the SSE server received (the gateway's upstream requests). */
let posts = 0;

async function startSseServer(): Promise<{ server: http.Server; url: string }> {
  const sessions = new Map<string, SSEServerTransport>();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method === "GET" && url.pathname === "/sse") {
      const t = new SSEServerTransport("/messages", res);
      sessions.set(t.sessionId, t);
      res.on("close", () => sessions.delete(t.sessionId));
      const s = new McpServer({ name: "sse-whoami", version: "1.0.0" });
      s.registerTool("whoami", { description: "The request headers this call arrived with", inputSchema: {} }, async (_args, extra) => ({
        content: [{ type: "text", text: JSON.stringify(extra.requestInfo?.headers ?? {}) }],
      }));
      await s.connect(t);
      return;
    }
    const t = sessions.get(url.searchParams.get("sessionId") ?? "");
    if (req.method === "POST" && url.pathname === "/messages" && t) {
      posts++;
      return void (await t.handlePostMessage(req, res));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/sse` };
}

async function whoami(key: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const c = new Client({ name: "authz-sse-upstream", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}`, ...extra } } }));
  try {
    const r = (await c.callTool({ name: "whoami", arguments: {} })) as { content: { text: string }[] };
    return JSON.parse(r.content[0]!.text) as Record<string, string>;
  } finally {
    await c.close();
  }
}

before(async () => {
  const up = await startSseServer();
  upstream = up.server;
  const dir = tempDir("keys");
  writeKeys(dir, { alice: ALICE, bob: BOB });
  const cfg = baseConfig({ upstream: { transport: "sse", url: up.url }, auth: { apiKeys: { dir } } });
  cfg.authorization!.rules = [{ name: "everyone", clients: { apiKeys: ["alice", "bob"] }, tools: { allow: ["whoami"], deny: [] } }];
  cfg.authorization!.identity = {
    headers: { client: "X-MCP-Client", subject: "X-MCP-Subject", source: "X-MCP-Source" },
    signedJwt: { header: "X-MCP-Identity", audience: "sse-whoami", ttlSeconds: 60 },
  };
  gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const ports = await gw.start();
  adminPort = ports.adminPort;
  base = `http://127.0.0.1:${ports.port}`;
  await waitUntil(
    "the gateway in front of the SSE upstream to be ready",
    () => gw.ready,
    (r) => r,
    60_000,
  );
});

after(async () => {
  await gw?.close();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

describe("the caller's identity for an SSE upstream", () => {
  it("every upstream POST carries the verified identity and a JWT the server can verify; what the client sends under those names never passes", async () => {
    const forged = { "x-mcp-subject": "root", "x-mcp-client": "apikey:admin", "x-mcp-identity": "forged", "x-mcp-source": "10.0.0.1" };
    const [a, b] = await Promise.all([whoami(ALICE, forged), whoami(BOB)]);
    assert.equal(a["x-mcp-client"], "apikey:alice");
    assert.equal(a["x-mcp-subject"], "alice");
    assert.equal(a["x-mcp-source"], "127.0.0.1");
    assert.equal(b["x-mcp-subject"], "bob");
    for (const h of [a, b]) {
      assert.equal(h.authorization, undefined, "never the client's own credential");
      assert.ok(!JSON.stringify(h).includes(ALICE) && !JSON.stringify(h).includes(BOB), "a client key reached the server");
    }
    const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${adminPort}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(a["x-mcp-identity"] ?? "missing", jwks, { audience: "sse-whoami", issuer: "mcp-bastion-gateway" });
    assert.equal(payload.sub, "alice");
    assert.equal(payload.client, "apikey:alice");
    assert.equal((await jwtVerify(b["x-mcp-identity"] ?? "missing", jwks, { audience: "sse-whoami" })).payload.sub, "bob");
  });

  it("a client without a valid key, or with a forged identity header only, never reaches the server", async () => {
    const before = posts;
    await assert.rejects(whoami("not-a-key-0123456789", { "x-mcp-subject": "alice", "x-mcp-client": "apikey:alice" }), /-32001.*invalid credentials/);
    const res = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "x-mcp-identity": "forged", "x-mcp-subject": "alice" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "whoami", arguments: {} } }),
    });
    assert.equal(res.status, 401);
    assert.equal(posts, before, "the server received a request for an unauthenticated client");
  });
});
