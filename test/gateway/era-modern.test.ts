// issue 11: the gateway in front of a 2026-07-28 upstream (the v2 TypeScript SDK's createMcpHandler,
// strict: it refuses 2025 traffic, so everything the gateway itself asks it goes the stateless way).
// Clients: the v2 SDK client negotiating the era, and raw requests for the wire checks (header/body
// mismatches, unsupported versions, cacheScope, discover filtering, listen filtering, MRTR retries).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { McpServer, acceptedContent, fromJsonSchema, inputRequired } from "@modelcontextprotocol/server";
import { z } from "zod";
import { GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { waitUntil } from "../support/index.ts";
import { MemorySink, baseConfig, tempDir, writeKeys } from "./helpers.ts";
import { MODERN, modernRpc, serveV2 } from "./era-helpers.ts";

const ALICE = "alice-key-0123456789abcdef";
const BOB = "bob-key-0123456789abcdef01";

/** What reached the upstream server: each call's tool and arguments. */
const calls: { tool: string; args: unknown }[] = [];

function build(): McpServer {
  const s = new McpServer(
    { name: "modern-upstream", version: "2.0.0" },
    { capabilities: { tools: { listChanged: true }, resources: { listChanged: true }, prompts: { listChanged: true } } },
  );
  s.registerTool("echo", { description: "Echoes", inputSchema: z.object({ text: z.string() }) }, async ({ text }) => {
    calls.push({ tool: "echo", args: { text } });
    return { content: [{ type: "text", text }] };
  });
  s.registerTool("get-env", { description: "Environment", inputSchema: z.object({}) }, async () => {
    calls.push({ tool: "get-env", args: {} });
    return { content: [{ type: "text", text: "SECRET=1" }] };
  });
  s.registerTool(
    "in-region",
    // x-mcp-header is not in the SDK's JSON Schema type: the schema goes in as the wire JSON it is.
    {
      description: "Runs in a region",
      inputSchema: fromJsonSchema({
        type: "object",
        properties: { region: { type: "string", "x-mcp-header": "Region" } },
        required: ["region"],
      } as never) as never,
    },
    (async (args: { region: string }) => {
      calls.push({ tool: "in-region", args });
      return { content: [{ type: "text", text: `ran in ${args.region}` }] };
    }) as never,
  );
  s.registerTool("deploy", { description: "Deploys after confirmation", inputSchema: z.object({ env: z.string() }) }, async ({ env }, ctx) => {
    const confirmation = z.object({ confirm: z.boolean() });
    const ok = acceptedContent(ctx.mcpReq.inputResponses, "confirm", confirmation);
    if (ok?.confirm !== true)
      return inputRequired({ inputRequests: { confirm: inputRequired.elicit({ message: `Deploy to ${env}?`, requestedSchema: confirmation }) } });
    calls.push({ tool: "deploy", args: { env } });
    return { content: [{ type: "text", text: `deployed to ${env}` }] };
  });
  s.registerResource("public-doc", "demo://resource/static/document/a", { mimeType: "text/plain" }, async (uri) => ({
    contents: [{ uri: uri.href, text: "public" }],
  }));
  s.registerResource("private-doc", "demo://private/b", { mimeType: "text/plain" }, async (uri) => ({ contents: [{ uri: uri.href, text: "private" }] }));
  return s;
}

describe("gateway in front of a 2026-07-28 upstream", () => {
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  let gw: Gateway;
  let url: string;
  const sink = new MemorySink();

  before(async () => {
    upstream = await serveV2(build, { legacy: "reject" });
    const keys = tempDir("era-keys");
    writeKeys(keys, { alice: ALICE, bob: BOB });
    const cfg = baseConfig({ upstream: { transport: "streamable-http", url: upstream.url }, auth: { apiKeys: { dir: keys } } });
    cfg.authorization.rules = [
      { name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["echo", "in-region", "deploy"], deny: [] } },
      {
        name: "bob",
        clients: { apiKeys: ["bob"] },
        tools: { allow: ["*"], deny: ["get-env"] },
        resources: { allow: ["demo://resource/static/document/*"], deny: [] },
        prompts: { allow: ["*"], deny: [] },
      },
    ];
    gw = new Gateway({ config: GatewayConfigSchema.parse(cfg), auditSink: sink });
    const ports = await gw.start();
    url = `http://127.0.0.1:${ports.port}/mcp`;
    await waitUntil(
      "the gateway to be ready (catalog loaded from the 2026 upstream)",
      () => gw.ready,
      (r) => r,
    );
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  test("the v2 SDK client negotiates 2026-07-28 through the gateway, lists and calls; denied tools are neither listed nor callable", async () => {
    const c = new Client({ name: "era-test", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } });
    await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { "x-api-key": ALICE } } }));
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(c.getProtocolEra(), "modern");
      const tools = (await c.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, ["deploy", "echo", "in-region"]);
      const r = await c.callTool({ name: "echo", arguments: { text: "hi" } });
      assert.deepEqual(r.content, [{ type: "text", text: "hi" }]);
      await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), /not allowed/);
      assert.ok(!calls.some((x) => x.tool === "get-env"), "the denied tool never ran on the server");
    } finally {
      await c.close();
    }
  });

  test("2026 requests are audited like 2025 ones: client, tool, arguments, outcome, and the protocol version", async () => {
    await modernRpc(url, ALICE, "tools/call", { name: "echo", arguments: { text: "audited" } });
    await modernRpc(url, ALICE, "tools/call", { name: "get-env", arguments: {} });
    const find = (tool: string) => sink.records().find((r) => r.tool === tool && r.protocol === MODERN && r.client === "apikey:alice");
    await waitUntil(
      "audit lines of alice's 2026 echo and get-env calls",
      () => {
        gw.audit.flush();
        return [find("echo"), find("get-env")];
      },
      ([a, b]) => a !== undefined && b !== undefined,
    );
    assert.equal(find("echo")!.outcome, "ok");
    assert.equal(find("get-env")!.outcome, "denied");
    assert.equal(find("echo")!.session, undefined, "no session in the 2026 era");
  });

  test("server/discover announces only what the client may see, and only allowed versions; cacheScope is private", async () => {
    const r = await modernRpc(url, ALICE, "server/discover", {});
    assert.equal(r.status, 200);
    const res = r.body.result;
    assert.deepEqual(res.supportedVersions, [MODERN]);
    assert.ok(res.capabilities.tools, "alice may see tools");
    assert.equal(res.capabilities.resources, undefined, "alice may see no resources: not announced");
    assert.equal(res.capabilities.prompts, undefined, "alice may see no prompts: not announced");
    assert.equal(res.cacheScope, "private");
    const b = (await modernRpc(url, BOB, "server/discover", {})).body.result;
    assert.ok(b.capabilities.resources && b.capabilities.tools);
  });

  test("lists the gateway filters are answered with cacheScope private and a ttlMs", async () => {
    const r = await modernRpc(url, BOB, "resources/list", {});
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.result.resources.map((x: { uri: string }) => x.uri),
      ["demo://resource/static/document/a"],
    );
    assert.equal(r.body.result.cacheScope, "private");
    assert.equal(typeof r.body.result.ttlMs, "number");
    assert.equal(r.body.result.resultType, "complete");
  });

  test("Mcp-Method / Mcp-Name / Mcp-Param headers that disagree with the body are refused with 400 -32020 before any policy decision", async () => {
    const before = calls.length;
    // Header names an allowed tool, body an allowed one too: still refused (the server acts on the body).
    let r = await modernRpc(url, ALICE, "tools/call", { name: "echo", arguments: { text: "x" } }, { "mcp-name": "in-region" });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32020);
    r = await modernRpc(url, ALICE, "tools/call", { name: "get-env", arguments: {} }, { "mcp-name": "echo" });
    assert.equal(r.status, 400, "a denied tool behind an allowed Mcp-Name is a mismatch, not a policy question");
    assert.equal(r.body.error.code, -32020);
    r = await modernRpc(url, ALICE, "tools/call", { name: "echo", arguments: { text: "x" } }, { "mcp-method": "tools/list" });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32020);
    r = await modernRpc(url, ALICE, "tools/call", { name: "echo", arguments: { text: "x" } }, { "mcp-name": null });
    assert.equal(r.status, 400, "Mcp-Name is required on tools/call");
    assert.equal(r.body.error.code, -32020);
    // x-mcp-header: the body's region must be mirrored in Mcp-Param-Region.
    r = await modernRpc(url, ALICE, "tools/call", { name: "in-region", arguments: { region: "eu-west1" } }, { "mcp-param-region": "us-east1" });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32020);
    assert.match(r.body.error.message, /Mcp-Param-Region/);
    r = await modernRpc(url, ALICE, "tools/call", { name: "in-region", arguments: { region: "eu-west1" } });
    assert.equal(r.status, 400, "a missing Mcp-Param-Region header is a mismatch too");
    assert.equal(calls.length, before, "nothing reached the server");
    // Base64 sentinel, decoded before comparing; and the server sees the header.
    r = await modernRpc(
      url,
      ALICE,
      "tools/call",
      { name: "in-region", arguments: { region: "eu-west1" } },
      { "mcp-param-region": `=?base64?${Buffer.from("eu-west1").toString("base64")}?=` },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.content[0].text, "ran in eu-west1");
  });

  test("a method the 2026 server does not implement: its 404 with -32601 reaches the client (not a 2025 'session not found')", async () => {
    const r = await modernRpc(url, BOB, "no/such-method", {});
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.equal(r.body.error.code, -32601);
  });

  test("an unsupported version gets 400 -32022 naming the supported list", async () => {
    const r = await modernRpc(url, ALICE, "tools/list", {}, {}, "2099-01-01");
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32022);
    assert.deepEqual(r.body.error.data.supported, ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]);
    assert.equal(r.body.error.data.requested, "2099-01-01");
  });

  test("MRTR: input_required passes through; the retry is authorized like a first call and cannot change the call", async () => {
    const first = await modernRpc(url, ALICE, "tools/call", { name: "deploy", arguments: { env: "prod" } });
    assert.equal(first.status, 200);
    assert.equal(first.body.result.resultType, "input_required");
    assert.ok(first.body.result.inputRequests.confirm);
    const answer = { confirm: { action: "accept", content: { confirm: true } } };
    // The retry naming a denied tool is refused by policy, inputResponses or not.
    const smuggled = await modernRpc(url, ALICE, "tools/call", { name: "get-env", arguments: {}, inputResponses: answer });
    assert.equal(smuggled.body.error?.code, -32003, JSON.stringify(smuggled.body));
    // Arguments are validated on the retry too.
    const bad = await modernRpc(url, ALICE, "tools/call", { name: "deploy", arguments: { env: 5 }, inputResponses: answer });
    assert.equal(bad.body.error?.code, -32602);
    const done = await modernRpc(url, ALICE, "tools/call", { name: "deploy", arguments: { env: "prod" }, inputResponses: answer });
    assert.equal(done.body.result.resultType, "complete", JSON.stringify(done.body));
    assert.equal(done.body.result.content[0].text, "deployed to prod");
  });

  test("subscriptions/listen: notifications a client may not see are dropped, the others arrive", async () => {
    const alice = await modernRpc(
      url,
      ALICE,
      "subscriptions/listen",
      { notifications: { toolsListChanged: true, resourcesListChanged: true } },
      {},
      MODERN,
      true,
    );
    const bob = await modernRpc(url, BOB, "subscriptions/listen", { notifications: { toolsListChanged: true, resourcesListChanged: true } }, {}, MODERN, true);
    try {
      const ackA = await alice.events.next("alice's acknowledgment", (m) => m.method === "notifications/subscriptions/acknowledged");
      const ackB = await bob.events.next("bob's acknowledgment", (m) => m.method === "notifications/subscriptions/acknowledged");
      assert.deepEqual(ackA.params.notifications, { toolsListChanged: true }, "alice's acknowledgment agrees only to what she will be sent");
      assert.deepEqual(ackB.params.notifications, { toolsListChanged: true, resourcesListChanged: true });
      upstream.handler.notify.resourcesChanged();
      upstream.handler.notify.toolsChanged();
      const b1 = await bob.events.next("bob's resources list change", (m) => m.method === "notifications/resources/list_changed");
      assert.ok(b1);
      await alice.events.next("alice's tools list change", (m) => m.method === "notifications/tools/list_changed");
      assert.ok(
        !alice.events.seen.some((m) => m.method === "notifications/resources/list_changed"),
        "alice may see no resources: their list change is not announced to her",
      );
    } finally {
      alice.close();
      bob.close();
    }
  });

  test("a client holds at most 8 listen streams; closing one makes room", async () => {
    const open = [];
    try {
      for (let i = 0; i < 8; i++) {
        const l = await modernRpc(url, BOB, "subscriptions/listen", { notifications: { toolsListChanged: true } }, {}, MODERN, true);
        assert.equal(l.status, 200);
        open.push(l);
      }
      const ninth = await modernRpc(url, BOB, "subscriptions/listen", { notifications: { toolsListChanged: true } });
      assert.equal(ninth.status, 429);
      const alice = await modernRpc(url, ALICE, "subscriptions/listen", { notifications: { toolsListChanged: true } }, {}, MODERN, true);
      assert.equal(alice.status, 200, "another client is not affected");
      alice.close();
      open.pop()!.close();
      await waitUntil(
        "a listen stream to be accepted again after one was closed",
        async () => {
          const r = await modernRpc(url, BOB, "subscriptions/listen", { notifications: { toolsListChanged: true } }, {}, MODERN, true);
          r.close();
          return r.status;
        },
        (s) => s === 200,
      );
    } finally {
      for (const l of open) l.close();
    }
  });

  test("a resource subscription the client may not read is refused", async () => {
    const r = await modernRpc(url, BOB, "subscriptions/listen", { notifications: { resourceSubscriptions: ["demo://private/b"] } });
    assert.equal(r.body.error?.code, -32003);
  });
});
