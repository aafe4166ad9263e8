// The gateway benchmark's canned upstream (bench/gateway/canned.ts) must be an MCP server a real client
// accepts, or the benchmark measures a proxy of something that is not MCP: the official SDK's client
// initializes a session with it, lists and calls its tool, and gets the protocol's errors where a real
// server gives them.
import assert from "node:assert/strict";
import type http from "node:http";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startCanned } from "../../bench/gateway/canned.ts";

let server: http.Server;
let url: string;

before(async () => {
  const s = await startCanned();
  server = s.server;
  url = `http://127.0.0.1:${s.port}/mcp`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test("the SDK client initializes, lists and calls the echo tool", async () => {
  const c = new Client({ name: "bench-check", version: "1" });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await c.connect(transport);
  assert.ok(transport.sessionId, "the server issued a session id");
  assert.equal(c.getServerVersion()?.name, "canned");
  const tools = await c.listTools();
  assert.deepEqual(
    tools.tools.map((t) => t.name),
    ["echo"],
  );
  const r = await c.callTool({ name: "echo", arguments: { message: "hello" } });
  assert.deepEqual(r.content, [{ type: "text", text: "Echo: hello" }]);
  await assert.rejects(c.callTool({ name: "nope", arguments: {} }), /Unknown tool/);
  await assert.rejects(c.callTool({ name: "echo", arguments: { message: 5 } }), /Invalid arguments/);
  await transport.terminateSession();
  await c.close();
});

async function post(headers: Record<string, string>, body: unknown): Promise<{ status: number; text: string }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, text: await r.text() };
}

test("requests outside a known session, notifications and bad headers get the transport's answers", async () => {
  const call = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "x" } } };
  assert.equal((await post({}, call)).status, 400, "no session id");
  assert.equal((await post({ "mcp-session-id": "not-a-session" }, call)).status, 404, "unknown session id");
  const init = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    }),
  });
  const sid = init.headers.get("mcp-session-id");
  assert.ok(sid);
  assert.equal(((await init.json()) as { result: { protocolVersion: string } }).result.protocolVersion, "2025-06-18");
  const note = await post({ "mcp-session-id": sid }, { jsonrpc: "2.0", method: "notifications/initialized" });
  assert.deepEqual(note, { status: 202, text: "" });
  assert.equal((await post({ "mcp-session-id": sid, "mcp-protocol-version": "1999-01-01" }, call)).status, 400, "unsupported protocol version");
  const noSse = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", "mcp-session-id": sid },
    body: JSON.stringify(call),
  });
  assert.equal(noSse.status, 406);
  const ok = await post({ "mcp-session-id": sid }, call);
  assert.equal(ok.status, 200);
  assert.match(ok.text, /"Echo: x"/);
});
