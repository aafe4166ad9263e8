// An upstream error is sanitized however the upstream's bytes arrive: an SSE error event written in two
// pieces (so the gateway reads the event's key in one read and its stack trace in the next), and a JSON
// error answer longer than the 64 KiB the gateway holds before it streams an answer. Both reached the
// client with their stack traces and file paths before; ordinary long answers still stream.
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { answer } from "../../bench/gateway/canned.ts";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { waitFor } from "../support/index.ts";
import { MemorySink, baseConfig, openSession, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-Pq8Wd3Zn6Lk1Vb4Xc7Mt";
const STACK = "Error: boom\n    at handler (/srv/app/server.js:42:7)\n    at run (/srv/app/node_modules/x/index.js:9:1)";
const LEAK = /\/srv\/app|at handler/;
const TOOLS = ["echo", "split-sse", "big-error", "big-result", "split-result", "cr-sse", "huge-error", "long-event"];

/** The error the upstream leaks: its message and data carry a stack trace and paths (padded to `pad` characters). */
function leakyError(id: unknown, pad = 0): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32603, message: `${STACK}${" ".repeat(pad)}`, data: { stack: STACK } } });
}

function upstream(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.method === "DELETE" && req.headers["mcp-session-id"] === "s-1") {
    // A DELETE answered with a JSON error (no stream), in two writes.
    const text = leakyError(null);
    res.writeHead(200, { "content-type": "application/json" });
    res.write(text.slice(0, 40));
    setTimeout(() => res.end(text.slice(40)), 50);
    return;
  }
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end();
  const m = JSON.parse(body) as { id?: unknown; method?: string; params?: { name?: string } };
  if (m.method === "initialize") {
    res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "s-1" });
    return void res.end(
      JSON.stringify({
        jsonrpc: "2.0",
        id: m.id,
        result: { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "leaky", version: "1" } },
      }),
    );
  }
  if (req.headers["mcp-session-id"] !== "s-1")
    return void res.writeHead(400, { "content-type": "application/json" }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"no session"}}');
  if (m.id === undefined) return void res.writeHead(202).end();
  if (m.method === "tools/list") {
    const tools = TOOLS.map((name) => ({ name, description: name, inputSchema: { type: "object", properties: { message: { type: "string" } } } }));
    return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { tools } }));
  }
  const name = m.params?.name;
  if (name === "split-sse" || name === "split-result") {
    // One SSE event in two writes 100 ms apart, cut inside the JSON: the key in the first, the stack trace in the second.
    const event =
      name === "split-sse"
        ? `event: message\ndata: ${leakyError(m.id)}\n\n`
        : `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "split but fine" }] } })}\n\n`;
    const cut = event.indexOf("code") + 2;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(event.slice(0, cut));
    setTimeout(() => res.end(event.slice(cut)), 100);
    return;
  }
  if (name === "big-error") {
    // 70,000 characters first (past the hold), the rest 100 ms later: the gateway sees the answer in two reads.
    const text = leakyError(m.id, 100_000);
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.write(text.slice(0, 70_000));
    setTimeout(() => res.end(text.slice(70_000)), 100);
    return;
  }
  if (name === "cr-sse") {
    // Lines ended by CR alone (the SSE spec allows it, and clients parse it): still an event to sanitize.
    res.writeHead(200, { "content-type": "text/event-stream" });
    return void res.end(`event: message\rdata: ${leakyError(m.id)}\r\r`);
  }
  if (name === "huge-error") {
    // An error answer of 2 MB, in 64 KiB writes: too long to hold for the sanitizer.
    const text = leakyError(m.id, 2_000_000);
    res.writeHead(200, { "content-type": "application/json" });
    let at = 0;
    const next = () => {
      if (at >= text.length) return void res.end();
      const piece = text.slice(at, at + 65536);
      at += 65536;
      if (res.write(piece)) setImmediate(next);
      else res.once("drain", next);
    };
    next();
    return;
  }
  if (name === "long-event") {
    const data = JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "y".repeat(300_000) }] } });
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(`event: message\ndata: ${data.slice(0, 100_000)}`);
    setTimeout(() => res.end(`${data.slice(100_000)}\n\n`), 50);
    return;
  }
  if (name === "big-result") {
    const text = "x".repeat(200_000);
    return void res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text }] } }));
  }
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer(m as Parameters<typeof answer>[0])));
}

let up: http.Server;
let gw: Gateway;
let url: string;
const audit = new MemorySink();

before(async () => {
  up = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => upstream(req, res, body));
  });
  await new Promise<void>((r) => up.listen(0, "127.0.0.1", r));
  const dir = tempDir("keys");
  writeKeys(dir, { alice: ALICE });
  const cfg = baseConfig({
    upstream: { transport: "streamable-http", url: `http://127.0.0.1:${(up.address() as AddressInfo).port}/mcp` },
    auth: { apiKeys: { dir } },
  });
  cfg.authorization = { rules: [{ name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["*"], deny: [] } }] };
  cfg.limits = { ...cfg.limits, maxRequestBytes: 1_048_576 };
  gw = new Gateway({ config: parseConfig(cfg), auditSink: audit });
  const { port } = await gw.start();
  url = `http://127.0.0.1:${port}/mcp`;
  await waitFor("the gateway to be ready", () => gw.ready);
});

after(async () => {
  await gw?.close();
  up?.closeAllConnections();
  await new Promise((r) => up?.close(r));
});

let session: string | undefined;
async function call(name: string): Promise<{ status: number; type: string; text: string }> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${ALICE}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  session ??= await openSession(url, headers);
  headers["mcp-session-id"] = session;
  headers["mcp-protocol-version"] = "2025-06-18";
  const r = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name, arguments: { message: "m" } } }),
  });
  return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
}

test("an SSE error event that arrives in two reads is sanitized like one that arrives whole", async () => {
  // Give the gateway time to load the tool list (it refuses unknown tools until then).
  await waitFor("the tool list", async () => (await call("echo")).status === 200);
  const r = await call("split-sse");
  assert.equal(r.status, 200);
  assert.match(r.type, /text\/event-stream/);
  assert.doesNotMatch(r.text, LEAK, `stack trace or path reached the client: ${r.text.slice(0, 300)}`);
  const data = /^data: (.*)$/m.exec(r.text)?.[1];
  assert.ok(data, `an event with data: ${r.text.slice(0, 300)}`);
  const m = JSON.parse(data) as { id: number; error: { code: number; message: string } };
  assert.equal(m.id, 7);
  assert.equal(m.error.code, -32603);
});

test("a split SSE result is passed on whole and unchanged", async () => {
  const r = await call("split-result");
  assert.equal(r.status, 200);
  const data = /^data: (.*)$/m.exec(r.text)?.[1];
  assert.ok(data, r.text.slice(0, 300));
  assert.deepEqual(JSON.parse(data), { jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: "split but fine" }] } });
});

test("a JSON error answer longer than the gateway's 64 KiB hold is sanitized, not streamed as is", async () => {
  const r = await call("big-error");
  assert.doesNotMatch(r.text, LEAK, `stack trace or path reached the client: ${r.text.slice(0, 300)}`);
  const m = JSON.parse(r.text) as { id: number; error: { code: number; message: string } };
  assert.equal(m.id, 7);
  assert.ok(m.error.message.length < 1000, "the error message is cut");
});

test("a long JSON result still streams through whole", async () => {
  const r = await call("big-result");
  assert.equal(r.status, 200);
  const m = JSON.parse(r.text) as { result: { content: { text: string }[] } };
  assert.equal(m.result.content[0]!.text.length, 200_000);
  await sleep(0);
});

test("an SSE error event with lines ended by CR alone is sanitized", async () => {
  const r = await call("cr-sse");
  assert.equal(r.status, 200);
  assert.doesNotMatch(r.text, LEAK, `stack trace or path reached the client: ${r.text.slice(0, 300)}`);
  assert.match(r.text, /"code":-32603/);
});

test("an error answer too long to sanitize is refused with a clean error, never passed on", async () => {
  const r = await call("huge-error");
  assert.doesNotMatch(r.text, LEAK, `stack trace or path reached the client: ${r.text.slice(0, 300)}`);
  assert.equal(r.status, 502);
  const m = JSON.parse(r.text) as { id: number; error: { message: string } };
  assert.equal(m.id, 7);
  assert.equal(m.error.message, "upstream error");
  // The gateway still serves the session afterwards.
  assert.equal((await call("echo")).status, 200);
});

test("an SSE result event longer than the hold passes whole", async () => {
  const r = await call("long-event");
  assert.equal(r.status, 200);
  const data = /^data: (.*)$/m.exec(r.text)?.[1];
  assert.ok(data, r.text.slice(0, 200));
  const m = JSON.parse(data) as { result: { content: { text: string }[] } };
  assert.equal(m.result.content[0]!.text.length, 300_000);
});

test("an answer to DELETE (no stream) is sanitized whole too", async () => {
  await call("echo");
  const r = await fetch(url, {
    method: "DELETE",
    headers: { authorization: `Bearer ${ALICE}`, "mcp-session-id": session!, "mcp-protocol-version": "2025-06-18" },
  });
  const text = await r.text();
  session = undefined;
  assert.equal(r.status, 200);
  assert.doesNotMatch(text, LEAK, `stack trace or path reached the client: ${text.slice(0, 300)}`);
  assert.equal((JSON.parse(text) as { error: { code: number } }).error.code, -32603);
});

test("each answer's audit line says how it was answered: held result, filtered JSON list, long error held whole, streamed result", async () => {
  for (const name of ["echo", "big-error", "big-result"]) await call(name);
  const headers: Record<string, string> = {
    authorization: `Bearer ${ALICE}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  session ??= await openSession(url, headers);
  const list = await fetch(url, {
    method: "POST",
    headers: { ...headers, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 8, method: "tools/list" }),
  });
  assert.equal(list.headers.get("content-type"), "application/json");
  assert.equal(((await list.json()) as { result: { tools: unknown[] } }).result.tools.length, TOOLS.length);
  gw.audit.flush();
  const records = audit.records();
  const last = (pick: (r: Record<string, unknown>) => boolean) => records.filter(pick).at(-1);
  assert.equal(last((r) => r.tool === "echo")?.result, "ok");
  assert.equal(last((r) => r.tool === "big-result")?.result, "ok");
  assert.equal(last((r) => r.method === "tools/list")?.result, "ok");
  const error = last((r) => r.tool === "big-error");
  assert.equal(error?.result, "error");
  assert.equal((error?.error as { code?: number } | undefined)?.code, -32603);
  assert.doesNotMatch(JSON.stringify(error), LEAK);
});
