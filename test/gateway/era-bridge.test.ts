// issue 11: 2026-07-28 clients in front of 2025 upstreams, bridged by the gateway: server-everything
// over stdio behind the bridge (its elicitation tool becomes an MRTR round trip), and a v1 SDK server
// over streamable HTTP (its list changes feed subscriptions/listen). Sessions are per client identity.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { type Bridge, startBridge } from "../../gateway/src/bridge.ts";
import { GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { waitUntil } from "../support/index.ts";
import { MODERN, modernRpc } from "./era-helpers.ts";
import { type Child, EVERYTHING, MemorySink, baseConfig, serveSdkServer, startEverything, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-key-0123456789abcdef";
const BOB = "bob-key-0123456789abcdef01";
const CAROL = "carol-key-0123456789abcdef";
const DAVE = "dave-key-0123456789abcdef0";

async function startGateway(upstream: Parameters<typeof baseConfig>[0]["upstream"]): Promise<{ gw: Gateway; url: string }> {
  const keys = tempDir("era-bridge-keys");
  writeKeys(keys, { alice: ALICE, bob: BOB, carol: CAROL, dave: DAVE });
  const cfg = baseConfig({ upstream, auth: { apiKeys: { dir: keys } } });
  cfg.authorization.rules = [
    {
      name: "alice",
      clients: { apiKeys: ["alice"] },
      tools: { allow: ["echo", "get-sum", "trigger-elicitation-request", "trigger-sampling-request", "add-tool", "toggle-subscriber-updates"], deny: [] },
      resources: { allow: ["demo://*"], deny: [] },
    },
    { name: "bob", clients: { apiKeys: ["bob"] }, tools: { allow: ["*"], deny: ["get-env"] } },
    { name: "others", clients: { apiKeys: ["carol", "dave"] }, tools: { allow: ["echo"], deny: [] } },
  ];
  cfg.limits.toolTimeouts = [{ tool: "trigger-long-running-operation", timeoutSeconds: 5 }];
  const gw = new Gateway({ config: GatewayConfigSchema.parse(cfg), auditSink: new MemorySink() });
  const ports = await gw.start();
  await waitUntil(
    "the gateway to be ready (catalog loaded)",
    () => gw.ready,
    (r) => r,
    60_000,
  );
  return { gw, url: `http://127.0.0.1:${ports.port}/mcp` };
}

describe("2026 clients, stdio server (2025) behind the bridge", () => {
  let bridge: Bridge;
  let gw: Gateway;
  let url: string;

  before(async () => {
    bridge = await startBridge({ host: "127.0.0.1", port: 0, command: process.execPath, args: [EVERYTHING, "stdio"], maxChildren: 16 });
    ({ gw, url } = await startGateway({ transport: "stdio", bridge: { host: "127.0.0.1", port: bridge.port } }));
  });

  after(async () => {
    await gw?.close();
    await bridge?.close();
  });

  test("the v2 SDK client negotiates 2026-07-28 with the gateway and lists and calls through a bridged session", async () => {
    const c = new Client({ name: "era-bridge", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } });
    await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { "x-api-key": ALICE } } }));
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      const names = (await c.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(names, ["echo", "get-sum", "toggle-subscriber-updates", "trigger-elicitation-request", "trigger-sampling-request"]);
      assert.deepEqual((await c.callTool({ name: "echo", arguments: { message: "bridged" } })).content, [{ type: "text", text: "Echo: bridged" }]);
      await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), /not allowed/);
    } finally {
      await c.close();
    }
  });

  test("results carry the 2026 shape: resultType, and ttlMs + cacheScope private on lists", async () => {
    const r = await modernRpc(url, BOB, "tools/list", {});
    assert.equal(r.status, 200);
    assert.equal(r.body.result.resultType, "complete");
    assert.equal(r.body.result.cacheScope, "private");
    assert.equal(r.body.result.ttlMs, 0);
    assert.ok(!r.body.result.tools.some((t: { name: string }) => t.name === "get-env"), "bob's denied tool is not listed");
    const d = await modernRpc(url, BOB, "server/discover", {});
    assert.deepEqual(d.body.result.supportedVersions, ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]);
    assert.ok(d.body.result.capabilities.tools);
    assert.equal(d.body.result.cacheScope, "private");
  });

  test("an elicitation of the 2025 server becomes an MRTR round trip; the retry must be the same call by the same client", async () => {
    const first = await modernRpc(url, ALICE, "tools/call", { name: "trigger-elicitation-request", arguments: {} });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const ir = first.body.result;
    assert.equal(ir.resultType, "input_required", JSON.stringify(first.body));
    const [key] = Object.keys(ir.inputRequests);
    assert.equal(ir.inputRequests[key!].method, "elicitation/create");
    assert.equal(typeof ir.requestState, "string");
    const answer = { [key!]: { action: "accept", content: { name: "Ada", check: true, email: "ada@example.com" } } };
    // Another client presenting alice's requestState: refused (the token is bound to alice).
    const stolen = await modernRpc(url, BOB, "tools/call", {
      name: "trigger-elicitation-request",
      arguments: {},
      inputResponses: answer,
      requestState: ir.requestState,
    });
    assert.equal(stolen.body.error?.code, -32602, JSON.stringify(stolen.body));
    // Alice's token on another call (an allowed tool, other arguments): refused, the parked call is not resumed by it.
    const other = await modernRpc(url, ALICE, "tools/call", {
      name: "echo",
      arguments: { message: "x" },
      inputResponses: answer,
      requestState: ir.requestState,
    });
    assert.equal(other.body.error?.code, -32602, JSON.stringify(other.body));
    const done = await modernRpc(url, ALICE, "tools/call", {
      name: "trigger-elicitation-request",
      arguments: {},
      inputResponses: answer,
      requestState: ir.requestState,
    });
    assert.equal(done.status, 200);
    assert.equal(done.body.result.resultType, "complete", JSON.stringify(done.body));
    assert.match(JSON.stringify(done.body.result.content), /Ada/);
    // A token is used once.
    const again = await modernRpc(url, ALICE, "tools/call", {
      name: "trigger-elicitation-request",
      arguments: {},
      inputResponses: answer,
      requestState: ir.requestState,
    });
    assert.equal(again.body.error?.code, -32602);
  });

  test("the v2 SDK client answers the bridged elicitation with its own handler (MRTR fulfilled by the SDK)", async () => {
    const c = new Client({ name: "era-bridge-elicit", version: "1.0.0" }, { versionNegotiation: { mode: "auto" }, capabilities: { elicitation: {} } });
    const asked: unknown[] = [];
    c.setRequestHandler("elicitation/create", async (req) => {
      asked.push(req.params);
      return { action: "accept", content: { name: "Grace", check: true } };
    });
    await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { "x-api-key": ALICE } } }));
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      const r = await c.callTool({ name: "trigger-elicitation-request", arguments: {} });
      assert.equal(asked.length, 1, "the client's handler was asked once");
      assert.match(JSON.stringify(r.content), /Grace/);
    } finally {
      await c.close();
    }
  });

  test("tool timeouts hold for bridged 2026 calls: answered with -32008 at the tool's timeout", async () => {
    const started = Date.now();
    const r = await modernRpc(url, BOB, "tools/call", { name: "trigger-long-running-operation", arguments: { duration: 60, steps: 2 } });
    assert.equal(r.body.error?.code, -32008, JSON.stringify(r.body));
    assert.ok(Date.now() - started < 40_000, "answered at the 5 s tool timeout, not after the 60 s operation");
  });

  test("progress of a bridged call arrives on its own response stream, before the result", async () => {
    const r = await modernRpc(url, BOB, "tools/call", {
      name: "trigger-long-running-operation",
      arguments: { duration: 1, steps: 2 },
      _meta: { progressToken: "p-1" },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.result?.resultType, "complete", JSON.stringify(r.body));
    assert.ok(
      r.events.some((m) => m.method === "notifications/progress" && m.params.progressToken === "p-1"),
      `progress seen: ${JSON.stringify(r.events)}`,
    );
  });

  test("a server request the client did not declare the capability for is answered with an error at once (no hang)", async () => {
    const started = Date.now();
    // modernRpc declares only elicitation: the sampling request cannot be relayed.
    const r = await modernRpc(url, ALICE, "tools/call", { name: "trigger-sampling-request", arguments: { prompt: "hi" } });
    assert.equal(r.status, 200);
    assert.ok(r.body.error !== undefined || r.body.result?.isError === true, JSON.stringify(r.body));
    assert.match(JSON.stringify(r.body), /did not declare the sampling capability/, "the server got the gateway's refusal of its sampling request");
    assert.ok(Date.now() - started < 20_000, "answered long before the request timeout (30 s)");
  });

  test("a resource subscription on subscriptions/listen becomes resources/subscribe on the client's session; its updates arrive", async () => {
    const uri = "demo://resource/static/document/architecture.md";
    const listen = await modernRpc(url, ALICE, "subscriptions/listen", { notifications: { resourceSubscriptions: [uri] } }, {}, MODERN, true);
    try {
      const ack = await listen.events.next("the acknowledgment", (m) => m.method === "notifications/subscriptions/acknowledged");
      assert.deepEqual(ack.params.notifications, { resourceSubscriptions: [uri] });
      // server-everything sends updates for subscribed resources every 5 s once a session turns them on.
      const t = await modernRpc(url, ALICE, "tools/call", { name: "toggle-subscriber-updates", arguments: {} });
      assert.match(JSON.stringify(t.body.result?.content), /Started/, JSON.stringify(t.body));
      const u = await listen.events.next(
        "notifications/resources/updated for the subscribed URI",
        (m) => m.method === "notifications/resources/updated",
        30_000,
      );
      assert.equal(u.params.uri, uri);
      assert.equal(u.params._meta["io.modelcontextprotocol/subscriptionId"], ack.params._meta["io.modelcontextprotocol/subscriptionId"]);
      await modernRpc(url, ALICE, "tools/call", { name: "toggle-subscriber-updates", arguments: {} });
    } finally {
      listen.close();
    }
  });

  test("each client gets its own upstream session (its own stdio process), reused for its next calls, never another's", async () => {
    const echo = (key: string, message: string) => modernRpc(url, key, "tools/call", { name: "echo", arguments: { message } });
    const before = bridge.children();
    assert.equal((await echo(CAROL, "1")).body.result?.content?.[0]?.text, "Echo: 1");
    assert.deepEqual(gw.bridge.sessionOwners("apikey:carol"), ["apikey:carol"]);
    await waitUntil(
      "a stdio process for carol's session",
      () => bridge.children(),
      (n) => n >= before + 1,
    );
    await echo(CAROL, "2");
    assert.deepEqual(gw.bridge.sessionOwners("apikey:carol"), ["apikey:carol"], "carol's second call reuses her session");
    const withCarol = bridge.children();
    await echo(DAVE, "3");
    assert.deepEqual(gw.bridge.sessionOwners("apikey:dave"), ["apikey:dave"], "dave gets a session of his own, not carol's");
    await waitUntil(
      "a second stdio process, for dave",
      () => bridge.children(),
      (n) => n >= withCarol + 1,
    );
  });
});

describe("2026 clients, HTTP+SSE server (2025, server-everything sse) bridged", () => {
  let upstream: Child;
  let gw: Gateway;
  let url: string;

  before(async () => {
    upstream = await startEverything("sse");
    ({ gw, url } = await startGateway({ transport: "sse", url: `http://127.0.0.1:${upstream.port}/sse` }));
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  test("lists and calls with the 2026 shape; a denied tool is refused", async () => {
    const l = await modernRpc(url, ALICE, "tools/list", {});
    assert.equal(l.body.result.cacheScope, "private");
    assert.deepEqual(l.body.result.tools.map((t: { name: string }) => t.name).sort(), [
      "echo",
      "get-sum",
      "toggle-subscriber-updates",
      "trigger-elicitation-request",
      "trigger-sampling-request",
    ]);
    const r = await modernRpc(url, ALICE, "tools/call", { name: "get-sum", arguments: { a: 2, b: 3 } });
    assert.equal(r.body.result.resultType, "complete");
    assert.match(JSON.stringify(r.body.result.content), /5/);
    const d = await modernRpc(url, ALICE, "tools/call", { name: "get-env", arguments: {} });
    assert.equal(d.body.error?.code, -32003);
  });
});

describe("2026 clients, 2025 streamable-HTTP server (v1 SDK): subscriptions/listen fed by the session's notifications", () => {
  let upstream: Awaited<ReturnType<typeof serveSdkServer>>;
  let gw: Gateway;
  let url: string;

  before(async () => {
    upstream = await serveSdkServer(() => {
      const s = new McpServer({ name: "legacy-http", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } });
      s.registerTool("echo", { description: "Echoes", inputSchema: { message: z.string() } }, async ({ message }) => ({
        content: [{ type: "text", text: message }],
      }));
      let n = 0;
      // Registering a tool on a live session makes the SDK announce tools/list_changed to that session.
      s.registerTool("add-tool", { description: "Adds a tool", inputSchema: {} }, async () => {
        n++;
        s.registerTool(`extra-${n}`, { description: "Extra", inputSchema: {} }, async () => ({ content: [] }));
        return { content: [{ type: "text", text: "added" }] };
      });
      return s;
    });
    ({ gw, url } = await startGateway({ transport: "streamable-http", url: upstream.url }));
  });

  after(async () => {
    await gw?.close();
    upstream?.server.closeAllConnections();
    await new Promise((r) => upstream?.server.close(r));
  });

  test("the upstream is found to be 2025 and bridged; list changes reach the listen stream of the client whose session changed", async () => {
    assert.equal(await gw.upstreamEra(), "legacy");
    const listen = await modernRpc(
      url,
      ALICE,
      "subscriptions/listen",
      { notifications: { toolsListChanged: true, resourceSubscriptions: ["demo://x"] } },
      {},
      MODERN,
      true,
    );
    try {
      const ack = await listen.events.next("the acknowledgment", (m) => m.method === "notifications/subscriptions/acknowledged");
      assert.deepEqual(
        ack.params.notifications,
        { toolsListChanged: true },
        "this server offers no resource subscriptions: they are omitted from the acknowledgment",
      );
      const bobs = await modernRpc(
        url,
        BOB,
        "subscriptions/listen",
        { notifications: { toolsListChanged: true, resourcesListChanged: true } },
        {},
        MODERN,
        true,
      );
      const ackB = await bobs.events.next("bob's acknowledgment", (m) => m.method === "notifications/subscriptions/acknowledged");
      bobs.close();
      assert.deepEqual(ackB.params.notifications, { toolsListChanged: true }, "bob may see no resources: their list changes are not agreed to");
      const r = await modernRpc(url, ALICE, "tools/call", { name: "add-tool", arguments: {} });
      assert.equal(r.body.result?.content?.[0]?.text, "added", JSON.stringify(r.body));
      const n = await listen.events.next("tools/list_changed on alice's listen stream", (m) => m.method === "notifications/tools/list_changed");
      assert.ok(n.params._meta["io.modelcontextprotocol/subscriptionId"] !== undefined, "tagged with the subscription id");
    } finally {
      listen.close();
    }
  });
});
