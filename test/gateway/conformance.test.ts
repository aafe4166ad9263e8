// Issue 10, classes 10 to 14: the Host header (DNS rebinding), the order of server-initiated
// requests, the spec's error data, the catalog session's capabilities, and upstream client errors.
// Against the SDK's McpServer and client.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { sanitizeRaw } from "../../gateway/src/sanitize.ts";
import { MemorySink, baseConfig, tempDir, writeKeys } from "./helpers.ts";
import { waitUntil } from "../support/index.ts";
import { type Peer, startPeer } from "./peer.ts";

const KEY = "conf-client-Rt6Yu8Io0Pa2Sd";
let peer: Peer;
let proxied: { gw: Gateway; port: number };
let hosted: { gw: Gateway; port: number };

async function gateway(upstream: "sse" | "streamable-http"): Promise<{ gw: Gateway; port: number }> {
  const dir = tempDir("conf-keys");
  writeKeys(dir, { conf: KEY });
  const cfg = baseConfig({
    upstream: upstream === "sse" ? { transport: "sse", url: `${peer.base}/sse` } : { transport: "streamable-http", url: `${peer.base}/mcp` },
    auth: { apiKeys: { dir } },
  });
  cfg.publicUrl = "http://mcp.example.internal/mcp";
  cfg.hostAliases = ["everything", "everything.test"];
  cfg.authorization.rules = [{ name: "conf", clients: { apiKeys: ["conf"] }, tools: { allow: ["echo", "ask-user", "url-elicit", "elicit-later"], deny: [] } }];
  const gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const { port } = await gw.start();
  await waitUntil(
    "gateway ready",
    () => gw.ready,
    (r) => r,
  );
  return { gw, port };
}

before(async () => {
  peer = await startPeer();
  [proxied, hosted] = await Promise.all([gateway("streamable-http"), gateway("sse")]);
});
after(async () => {
  await Promise.all([proxied?.gw.close(), hosted?.gw.close()]);
  await peer?.close();
});

function raw(
  port: number,
  opts: { method: string; path: string; host: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: "127.0.0.1", port, method: opts.method, path: opts.path, setHost: false, headers: { host: opts.host, ...opts.headers } },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
          // A stream that opened is enough: stop reading.
          if (String(res.headers["content-type"]).includes("text/event-stream")) r.destroy();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("close", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    r.on("error", reject);
    r.end(opts.body);
  });
}

const INIT = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
});
const AUTH = { authorization: `Bearer ${KEY}`, "content-type": "application/json", accept: "application/json, text/event-stream" };

async function connect(port: number, capabilities: Record<string, unknown> = {}, onElicit?: (n: number) => string, n = 0): Promise<Client> {
  const c = new Client({ name: "conf", version: "1" }, { capabilities });
  if (onElicit) c.setRequestHandler(ElicitRequestSchema, async () => ({ action: "accept", content: { colour: onElicit(n) } }));
  await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEY}` } } }));
  return c;
}

describe("Host header (DNS rebinding)", () => {
  test("a rebound name is refused on every route; the public host, its aliases and loopback are served", async () => {
    const { port } = proxied;
    for (const host of ["evil.example", `evil.example:${port}`, "mcp.example.internal.evil.example", "127.0.0.1.nip.io", "everything.test.attacker"]) {
      const routes = [
        raw(port, { method: "POST", path: "/mcp", host, headers: AUTH, body: INIT }),
        raw(port, { method: "GET", path: "/sse", host, headers: AUTH }),
        raw(port, { method: "POST", path: "/messages?sessionId=x", host, headers: AUTH, body: INIT }),
        raw(port, { method: "GET", path: "/.well-known/oauth-protected-resource/mcp", host }),
      ];
      for (const r of await Promise.all(routes)) {
        assert.equal(r.status, 403, `Host ${host}: ${r.status} ${r.body.slice(0, 120)}`);
        assert.match(r.body, /host not allowed/);
      }
    }
    for (const host of [
      "mcp.example.internal",
      "MCP.Example.Internal.",
      "everything",
      `everything.test:${port}`,
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
    ]) {
      const r = await raw(port, { method: "POST", path: "/mcp", host, headers: AUTH, body: INIT });
      assert.equal(r.status, 200, `Host ${host}: ${r.status} ${r.body.slice(0, 120)}`);
    }
  });
});

describe("server-initiated requests right after connect", () => {
  test("an elicitation the server sends outside any request, right after connect, reaches the client every time", async () => {
    for (const [name, port] of [
      ["proxied", proxied.port],
      ["gateway-held", hosted.port],
    ] as const) {
      for (let i = 0; i < 12; i++) {
        const colour = `${name}-${i}`;
        const c = await connect(port, { elicitation: {} }, () => colour);
        await c.callTool({ name: "elicit-later", arguments: {} });
        await waitUntil(
          `${name} connection ${i}: elicitation answered`,
          () => peer.elicited,
          (e) => e.includes(colour),
          5000,
        );
        await (c.transport as StreamableHTTPClientTransport).terminateSession().catch(() => undefined);
        await c.close();
      }
    }
  });

  test("the same for a client on the older SSE transport (the gateway holds a streamable-HTTP session upstream)", async () => {
    const { port } = proxied;
    for (let i = 0; i < 8; i++) {
      const colour = `legacy-${i}`;
      const c = new Client({ name: "conf", version: "1" }, { capabilities: { elicitation: {} } });
      c.setRequestHandler(ElicitRequestSchema, async () => ({ action: "accept", content: { colour } }));
      const h = { authorization: `Bearer ${KEY}` };
      await c.connect(
        new SSEClientTransport(new URL(`http://127.0.0.1:${port}/sse`), {
          requestInit: { headers: h },
          eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...h } }) },
        }),
      );
      await c.callTool({ name: "elicit-later", arguments: {} });
      await waitUntil(
        `legacy connection ${i}: elicitation answered`,
        () => peer.elicited,
        (e) => e.includes(colour),
        5000,
      );
      await c.close();
    }
  });
});

describe("upstream errors", () => {
  test("URL-mode elicitation (-32042) reaches the client with its data.elicitations", async () => {
    for (const port of [proxied.port, hosted.port]) {
      const c = await connect(port, { elicitation: { url: {} } });
      const e = await c.callTool({ name: "url-elicit", arguments: {} }).then(
        () => assert.fail("url-elicit should fail with -32042"),
        (x: unknown) => x,
      );
      assert.ok(e instanceof McpError, String(e));
      assert.equal(e.code, -32042);
      assert.deepEqual((e.data as { elicitations: unknown[] }).elicitations, [
        { mode: "url", elicitationId: "e-42", url: "https://auth.example.com/connect?state=e-42", message: "Connect your account" },
      ]);
      await c.close();
    }
  });

  test("error data keeps the spec's fields and loses internals (stack traces, paths, errno) and credentials", () => {
    const cases: [unknown, unknown][] = [
      [
        { elicitations: [{ mode: "url", elicitationId: "a", url: "https://x.example/a/b?c=d", message: "go" }] },
        { elicitations: [{ mode: "url", elicitationId: "a", url: "https://x.example/a/b?c=d", message: "go" }] },
      ],
      [
        { supported: ["2025-06-18", "2025-03-26"], requested: "1999-01-01" },
        { supported: ["2025-06-18", "2025-03-26"], requested: "1999-01-01" },
      ],
      [{ stack: "Error: x\n    at f (/srv/app/a.js:1:1)", field: "name" }, { field: "name" }],
      [{ detail: "ENOENT: open '/etc/app/secret.json'", retryable: true }, { retryable: true }],
      [
        { path: "/srv/app/data", errno: -2, code: "ENOENT", hint: "check the name" },
        { code: "ENOENT", hint: "check the name" },
      ],
      [{ cause: { message: "inner" } }, undefined],
      // Credentials: a key naming a secret is dropped, a credential inside a string is redacted (issue 10 class 8).
      [
        { hint: "connect with postgres://app:hunter2@db.internal/x", apiKey: "abc", n: 1 },
        { hint: "connect with postgres://[REDACTED]@db.internal/x", n: 1 },
      ],
      ['Traceback (most recent call last):\n  File "/app/x.py"', undefined],
      [42, 42],
    ];
    for (const [data, want] of cases) {
      const out = JSON.parse(sanitizeRaw(JSON.stringify({ jsonrpc: "2.0", id: 1, error: { code: -32000, message: "failed", data } })));
      assert.deepEqual(out.error.data, want, JSON.stringify(data));
    }
  });

  test("upstream client errors pass through with their status: 406 for a bad Accept, 400 naming supported protocol versions", async () => {
    const { port } = proxied;
    const r406 = await raw(port, { method: "POST", path: "/mcp", host: "127.0.0.1", headers: { ...AUTH, accept: "application/json" }, body: INIT });
    assert.equal(r406.status, 406, r406.body);
    assert.match(r406.body, /"code":-3\d{4}/);
    assert.match(r406.body, /Not Acceptable/i);
    const sid = await fetchSid(port);
    assert.ok(sid, "a session to send the bad version on");
    const r400 = await raw(port, {
      method: "POST",
      path: "/mcp",
      host: "127.0.0.1",
      headers: { ...AUTH, "mcp-session-id": sid, "mcp-protocol-version": "1999-01-01" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    assert.equal(r400.status, 400, r400.body);
    assert.match(r400.body, /supported versions/i);
    assert.match(r400.body, /2025-06-18/);
  });
});

async function fetchSid(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/mcp`, { method: "POST", headers: AUTH, body: INIT });
  await r.text();
  return r.headers.get("mcp-session-id") ?? "";
}

describe("the gateway's catalog session", () => {
  test("a tool the server registers only for clients that can elicit is known: the first call to it is not refused", async () => {
    for (const port of [proxied.port, hosted.port]) {
      const c = await connect(port, { elicitation: {} });
      // Called without listing first: the gateway must know it from its own catalog.
      const r = await c.callTool({ name: "ask-user", arguments: {} });
      assert.deepEqual(r.content, [{ type: "text", text: "asked the user" }]);
      await c.close();
    }
  });
});
