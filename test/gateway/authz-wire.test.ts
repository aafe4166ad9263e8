// Issue 13 across the wire: the official SDK client -> gateway -> an official SDK server whose tools report
// what reached them. Argument constraints (paths, SQL, URLs, ranges), time windows on the gateway's
// injected clock, source CIDRs through a trusted proxy, read-only tools by pinned annotations, the caller's
// identity as headers and as a signed JWT (verified against the gateway's JWKS), and the audit of refusals.
import assert from "node:assert/strict";
import type http from "node:http";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { z } from "zod";
import { legacyToolFingerprint, toolFingerprint } from "../../contract/fingerprint.ts";
import { GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { waitUntil } from "../support/index.ts";
import { MemorySink, baseConfig, serveSdkServer, tempDir, writeKeys } from "./helpers.ts";

interface Upstream {
  url: string;
  calls: Record<string, number>;
  lastHeaders: http.IncomingHttpHeaders;
  tools: { name: string; description?: string; inputSchema?: unknown; annotations?: unknown }[];
  close(): Promise<void>;
}

const text = (s: string) => ({ content: [{ type: "text" as const, text: s }] });

async function startUpstream(): Promise<Upstream> {
  const calls: Record<string, number> = {};
  const state = { lastHeaders: {} as http.IncomingHttpHeaders };
  const count = (n: string) => {
    calls[n] = (calls[n] ?? 0) + 1;
  };
  const build = () => {
    const s = new McpServer({ name: "authz-upstream", version: "1.0.0" });
    s.registerTool("whoami", { description: "Who is calling", inputSchema: {}, annotations: { readOnlyHint: true, destructiveHint: false } }, async () => {
      count("whoami");
      return text("ok");
    });
    s.registerTool("read_file", { description: "Reads a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } }, async ({ path }) => {
      count("read_file");
      return text(`read ${path}`);
    });
    s.registerTool("query", { description: "Runs SQL", inputSchema: { sql: z.string(), limit: z.number().optional() } }, async () => {
      count("query");
      return text("rows");
    });
    s.registerTool("fetch_url", { description: "Fetches a URL", inputSchema: { url: z.string() } }, async () => {
      count("fetch_url");
      return text("fetched");
    });
    s.registerTool("wipe", { description: "Wipes", inputSchema: {}, annotations: { readOnlyHint: true, destructiveHint: true } }, async () => {
      count("wipe");
      return text("wiped");
    });
    s.registerTool("write", { description: "Writes", inputSchema: {}, annotations: { readOnlyHint: false } }, async () => {
      count("write");
      return text("written");
    });
    return s;
  };
  const { server, url } = await serveSdkServer(build, (body, headers) => {
    if (body?.method === "tools/call") state.lastHeaders = headers;
  });
  const probe = new Client({ name: "probe", version: "1" });
  await probe.connect(new StreamableHTTPClientTransport(new URL(url)));
  const tools = (await probe.listTools()).tools;
  await probe.close();
  return {
    url,
    calls,
    get lastHeaders() {
      return state.lastHeaders;
    },
    set lastHeaders(v) {
      state.lastHeaders = v;
    },
    tools,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function clientFor(url: string, key: string, headers: Record<string, string> = {}) {
  const c = new Client({ name: "authz-wire", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}`, ...headers } } }));
  return c;
}

/** The JSON-RPC error of a refused call (the SDK client throws McpError). */
async function refusedWith(p: Promise<unknown>, code: number, message: RegExp) {
  await assert.rejects(p, (e: { code?: number; message?: string }) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message ?? "", message);
    return true;
  });
}

describe("issue 13 authorization across the wire", () => {
  let up: Upstream;
  let gw: Gateway;
  let url: string;
  let adminPort: number;
  let clock = Date.parse("2026-11-30T12:00:00Z"); // a Monday
  const sink = new MemorySink();

  before(async () => {
    up = await startUpstream();
    const dir = tempDir("authz-keys");
    writeKeys(dir, { alice: "alice-key-0123456789", ro: "ro-key-0123456789ab", ops: "ops-key-0123456789a" });
    const tool = (n: string) => up.tools.find((t) => t.name === n)!;
    const cfg = GatewayConfigSchema.parse(
      baseConfig({
        upstream: { transport: "streamable-http", url: up.url },
        auth: { apiKeys: { dir } },
        tools: {
          pinned: [
            { name: "whoami", sha256: toolFingerprint(tool("whoami")) },
            { name: "wipe", sha256: toolFingerprint(tool("wipe")) },
            // pinned before annotations were fingerprinted: still served, but its readOnlyHint is not vouched for
            { name: "read_file", sha256: legacyToolFingerprint(tool("read_file")) },
          ],
          onDrift: "Block",
          allowUnpinned: true,
          scanDescriptions: false,
        },
        authorization: {
          rules: [
            { name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["whoami", "read_file", "query", "fetch_url"], deny: [] } },
            {
              name: "maintenance",
              clients: { apiKeys: ["alice"] },
              tools: { allow: ["write"], deny: [] },
              schedule: { windows: [{ days: ["Sat"], start: "02:00", end: "04:00", timeZone: "Europe/Berlin" }] },
            },
            { name: "elevation", clients: { apiKeys: ["ops"] }, tools: { allow: ["wipe"], deny: [] }, schedule: { notAfter: "2026-11-30T13:00:00Z" } },
            { name: "office", clients: { apiKeys: ["ops"] }, tools: { allow: ["whoami"], deny: [] }, sources: ["203.0.113.0/24"] },
            { name: "read-only", clients: { apiKeys: ["ro"] }, tools: { allow: ["*"], deny: [] }, readOnlyTools: true },
          ],
          constraints: [
            {
              name: "files-under-data",
              tools: ["read_file"],
              conditions: [{ expression: "pathWithin(request.arguments.path, '/srv/data')", message: "path must be inside /srv/data" }],
            },
            {
              name: "sql-read-only",
              tools: ["query"],
              arguments: { type: "object", properties: { sql: { type: "string", maxLength: 2000 }, limit: { type: "integer", minimum: 1, maximum: 100 } } },
              conditions: [
                {
                  expression:
                    "request.arguments.sql.matches('^\\\\s*(?i:select|explain|show)\\\\b[^;]*;?\\\\s*$') && !request.arguments.sql.matches('(?i)\\\\b(insert|update|delete|drop|alter|create|grant|revoke|truncate|copy|call|do|lock|vacuum|into|set)\\\\b')",
                  message: "only read-only statements",
                },
              ],
            },
            {
              name: "fetch-allowlist",
              tools: ["fetch_url"],
              conditions: [
                {
                  expression: "urlScheme(request.arguments.url) == 'https' && urlHost(request.arguments.url) in ['api.github.com']",
                  message: "host not allowlisted",
                },
              ],
            },
          ],
          trustedProxies: ["127.0.0.1/32"],
          identity: {
            headers: { client: "X-MCP-Client", subject: "X-MCP-Subject", source: "X-MCP-Source" },
            signedJwt: { header: "X-MCP-Identity", audience: "authz-upstream", ttlSeconds: 60 },
          },
        },
      }),
    );
    gw = new Gateway({ config: cfg, auditSink: sink, now: () => clock });
    const ports = await gw.start();
    url = `http://127.0.0.1:${ports.port}/mcp`;
    adminPort = ports.adminPort;
    const deadline = Date.now() + 20_000;
    while (!gw.ready) {
      if (Date.now() > deadline) throw new Error("gateway not ready after 20 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it("a file tool limited to a directory: traversal is refused after normalization and never reaches the server", async () => {
    const c = await clientFor(url, "alice-key-0123456789");
    assert.match(JSON.stringify((await c.callTool({ name: "read_file", arguments: { path: "/srv/data/a.txt" } })).content), /read \/srv\/data\/a.txt/);
    const before = up.calls.read_file;
    await refusedWith(
      c.callTool({ name: "read_file", arguments: { path: "/srv/data/../../etc/shadow" } }),
      -32003,
      /constraint "files-under-data": path must be inside \/srv\/data/,
    );
    assert.equal(up.calls.read_file, before);
    await c.close();
  });

  it("a database tool takes only read-only statements; numeric ranges hold", async () => {
    const c = await clientFor(url, "alice-key-0123456789");
    await c.callTool({ name: "query", arguments: { sql: "SELECT * FROM orders WHERE id = 7", limit: 10 } });
    await refusedWith(c.callTool({ name: "query", arguments: { sql: "select 1; DROP TABLE orders" } }), -32003, /only read-only statements/);
    await refusedWith(
      c.callTool({ name: "query", arguments: { sql: "select 1", limit: 1000 } }),
      -32602,
      /constraint "sql-read-only": argument limit must be <= 100/,
    );
    assert.equal(up.calls.query, 1);
    await c.close();
  });

  it("a web tool's URL must name an allowlisted host", async () => {
    const c = await clientFor(url, "alice-key-0123456789");
    await c.callTool({ name: "fetch_url", arguments: { url: "https://api.github.com/repos/x" } });
    await refusedWith(c.callTool({ name: "fetch_url", arguments: { url: "https://api.github.com@evil.example/" } }), -32003, /host not allowlisted/);
    await c.close();
  });

  it("a maintenance window opens and closes with the gateway's clock (no sleeps)", async () => {
    const c = await clientFor(url, "alice-key-0123456789");
    await refusedWith(c.callTool({ name: "write", arguments: {} }), -32003, /rule "maintenance" is not active now/);
    assert.equal(
      (await c.listTools()).tools.some((t) => t.name === "write"),
      false,
      "outside the window the tool is not listed",
    );
    clock = Date.parse("2026-12-05T01:30:00Z"); // Saturday 02:30 in Berlin
    await c.callTool({ name: "write", arguments: {} });
    assert.equal(
      (await c.listTools()).tools.some((t) => t.name === "write"),
      true,
    );
    clock = Date.parse("2026-12-05T03:00:00Z"); // 04:00: closed again
    await refusedWith(c.callTool({ name: "write", arguments: {} }), -32003, /not active now/);
    assert.equal(up.calls.write, 1);
    clock = Date.parse("2026-11-30T12:00:00Z");
    await c.close();
  });

  it("a temporary elevation ends by itself at notAfter", async () => {
    const c = await clientFor(url, "ops-key-0123456789a", { "x-forwarded-for": "203.0.113.9" });
    await c.callTool({ name: "wipe", arguments: {} });
    clock = Date.parse("2026-11-30T13:00:00Z");
    await refusedWith(c.callTool({ name: "wipe", arguments: {} }), -32003, /rule "elevation" is not active now/);
    clock = Date.parse("2026-11-30T12:00:00Z");
    await c.close();
  });

  it("source CIDRs: X-Forwarded-For from the trusted proxy (loopback here) decides", async () => {
    const inside = await clientFor(url, "ops-key-0123456789a", { "x-forwarded-for": "203.0.113.9" });
    await inside.callTool({ name: "whoami", arguments: {} });
    assert.equal(up.lastHeaders["x-mcp-source"], "203.0.113.9");
    await inside.close();
    const outside = await clientFor(url, "ops-key-0123456789a", { "x-forwarded-for": "198.51.100.1" });
    await refusedWith(outside.callTool({ name: "whoami", arguments: {} }), -32003, /does not admit source 198\.51\.100\.1/);
    await outside.close();
  });

  it("read-only rules: only pinned tools annotated read-only and not destructive (a legacy pin does not count)", async () => {
    const c = await clientFor(url, "ro-key-0123456789ab");
    const listed = (await c.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(listed, ["whoami"]);
    await c.callTool({ name: "whoami", arguments: {} });
    await refusedWith(c.callTool({ name: "wipe", arguments: {} }), -32003, /readOnlyHint/);
    await refusedWith(c.callTool({ name: "write", arguments: {} }), -32003, /readOnlyHint/);
    await refusedWith(c.callTool({ name: "read_file", arguments: { path: "/srv/data/x" } }), -32003, /readOnlyHint/);
    await c.close();
  });

  it("the server gets the verified identity as headers and as a JWT it can verify; the client's own never pass", async () => {
    const c = await clientFor(url, "alice-key-0123456789", { "x-mcp-subject": "root", "x-mcp-identity": "forged", "x-mcp-client": "apikey:admin" });
    await c.callTool({ name: "whoami", arguments: {} });
    const h = up.lastHeaders;
    assert.equal(h["x-mcp-client"], "apikey:alice");
    assert.equal(h["x-mcp-subject"], "alice");
    assert.equal(h.authorization, undefined, "never the client's own credential");
    const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${adminPort}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(String(h["x-mcp-identity"]), jwks, {
      audience: "authz-upstream",
      issuer: "mcp-bastion-gateway",
      currentDate: new Date(clock),
    });
    assert.equal(protectedHeader.alg, "ES256");
    assert.equal(payload.sub, "alice");
    assert.equal(payload.client, "apikey:alice");
    assert.ok(payload.exp! - payload.iat! === 60);
    await c.close();
  });

  it("a client on the older HTTP+SSE transport (a gateway-held session) is passed to the server the same way", async () => {
    const h = { authorization: "Bearer alice-key-0123456789", "x-mcp-subject": "root", "x-mcp-client": "apikey:admin" };
    const c = new Client({ name: "authz-wire-sse", version: "1.0.0" });
    await c.connect(
      new SSEClientTransport(new URL("/sse", url), {
        requestInit: { headers: h },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...h } }) },
      }),
    );
    try {
      up.lastHeaders = {};
      await c.callTool({ name: "whoami", arguments: {} });
      const got = up.lastHeaders;
      assert.equal(got["x-mcp-client"], "apikey:alice");
      assert.equal(got["x-mcp-subject"], "alice");
      assert.equal(got.authorization, undefined, "never the client's own credential");
      const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${adminPort}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(String(got["x-mcp-identity"]), jwks, {
        audience: "authz-upstream",
        issuer: "mcp-bastion-gateway",
        currentDate: new Date(clock),
      });
      assert.equal(payload.client, "apikey:alice");
    } finally {
      // The older transport's stream stays open until closed: a failed assertion must not hang the file.
      await c.close();
    }
  });

  it("every refusal is audited with the rule and the reason", async () => {
    // The audit log is written in batches: wait (with a deadline) until the refusals above are in.
    const refusedLines = () => sink.records().filter((r) => r.outcome === "denied" || r.outcome === "invalid");
    await waitUntil(
      "an audit line naming the rule fetch-allowlist",
      () => refusedLines().slice(-3),
      () => refusedLines().some((r) => r.rule === "fetch-allowlist"),
    );
    const refusals = refusedLines();
    const byRule = new Map(refusals.map((r) => [r.rule, r.reason]));
    for (const rule of ["files-under-data", "sql-read-only", "fetch-allowlist"])
      assert.ok(byRule.has(rule), `no audit line names ${rule}: ${JSON.stringify(refusals)}`);
    assert.ok(refusals.every((r) => typeof r.reason === "string" && (r.reason as string).length > 0));
    assert.ok(refusals.some((r) => /not active now/.test(String(r.reason))));
  });
});
