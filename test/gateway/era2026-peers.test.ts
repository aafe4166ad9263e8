// issue 11: the gateway's protocol-era matrix with real peers only. The same endpoint serves 2026-07-28
// (stateless) clients and 2025 clients; upstreams of both eras: the v2 TypeScript SDK server (2026-07-28, and
// 2025 through its legacy leg) and server-everything (v1 SDK: 2025 only, bridged for 2026 clients). First the
// peers alone, so a failure below is the gateway's and not the harness's; then every case through the gateway.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Client as V2Client } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { type GatewayConfigInput, GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { waitUntil } from "../support/index.ts";
import { serveV2 } from "./era-helpers.ts";
import { type Calls, codeOf, MODERN, peerServer, v1Client, v2Client } from "./era-peers.ts";
import { baseConfig, type Child, MemorySink, startEverything, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-key-era-matrix-0123456789";
const BOB = "bob-key-era-matrix-0123456789ab";
const LEGACY = "2025-11-25";

/** alice: echo and deploy, nothing else (no resources, no prompts); bob: every tool but get-env, the public resource. */
const RULES: GatewayConfigInput["authorization"]["rules"] = [
  { name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["echo", "deploy", "get-sum"], deny: [] } },
  {
    name: "bob",
    clients: { apiKeys: ["bob"] },
    tools: { allow: ["*"], deny: ["get-env"] },
    resources: { allow: ["demo://resource/static/document/*"], deny: [] },
  },
];

async function startGateway(upstreamUrl: string, protocol?: GatewayConfigInput["protocol"]) {
  const keys = tempDir("era-matrix-keys");
  writeKeys(keys, { alice: ALICE, bob: BOB });
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: upstreamUrl }, auth: { apiKeys: { dir: keys } }, ...(protocol ? { protocol } : {}) });
  cfg.authorization.rules = RULES;
  const sink = new MemorySink();
  const gw = new Gateway({ config: GatewayConfigSchema.parse(cfg), auditSink: sink });
  const ports = await gw.start();
  await waitUntil(
    "the gateway to be ready (its catalog loaded from the upstream)",
    () => gw.ready,
    (r) => r,
  );
  return { gw, sink, url: `http://127.0.0.1:${ports.port}/mcp` };
}

/** Closes clients whatever happened (a failed assertion must not leave streams open). */
async function closeAll(clients: (V2Client | V1Client | undefined)[]) {
  await Promise.allSettled(clients.map((c) => c?.close()));
}

const names = (r: { tools: { name: string }[] }) => r.tools.map((t) => t.name).sort();

/** The first audit line matching `pred` (the gateway writes them in batches: wait for it). */
function auditOf(sink: MemorySink, pred: (r: Record<string, unknown>) => boolean) {
  return waitUntil(
    "the audit line",
    () => sink.records().find(pred),
    (r) => r !== undefined,
  ).then((r) => r!);
}

describe("the peers alone: the v2 SDK server with v2 and v1 SDK clients (no gateway)", () => {
  const calls: Calls = [];
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  before(async () => {
    upstream = await serveV2(peerServer(calls));
  });
  after(async () => upstream?.close());

  test("v2 client in auto mode negotiates 2026-07-28, lists, calls, and answers an elicitation inside MRTR", async () => {
    const elicited: string[] = [];
    const c = await v2Client(upstream.url, "unused", "auto", { elicited });
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      assert.deepEqual(names(await c.listTools()), ["deploy", "echo", "get-env"]);
      assert.deepEqual((await c.callTool({ name: "echo", arguments: { text: "hi" } })).content, [{ type: "text", text: "hi" }]);
      assert.deepEqual((await c.callTool({ name: "deploy", arguments: { env: "prod" } })).content, [{ type: "text", text: "deployed to prod" }]);
      assert.deepEqual(elicited, ["Deploy to prod?"]);
    } finally {
      await closeAll([c]);
    }
  });

  test("v2 client in legacy mode and the v1 client speak a 2025 revision to the same server", async () => {
    const legacy = await v2Client(upstream.url, "unused", "legacy");
    const v1 = await v1Client(upstream.url, "unused");
    try {
      assert.equal(legacy.getNegotiatedProtocolVersion(), LEGACY);
      assert.deepEqual(names(await legacy.listTools()), ["deploy", "echo", "get-env"]);
      assert.deepEqual(names(await v1.listTools()), ["deploy", "echo", "get-env"]);
      assert.deepEqual((await v1.callTool({ name: "echo", arguments: { text: "v1" } })).content, [{ type: "text", text: "v1" }]);
    } finally {
      await closeAll([legacy, v1]);
    }
  });

  test("subscriptions/listen delivers list-changed notifications to a v2 client", async () => {
    const c = await v2Client(upstream.url, "unused", "auto");
    const seen: string[] = [];
    c.setNotificationHandler("notifications/tools/list_changed", () => void seen.push("tools"));
    try {
      const sub = await c.listen({ toolsListChanged: true });
      upstream.handler.notify.toolsChanged();
      await waitUntil(
        "the tools list change on the listen stream",
        () => seen,
        (s) => s.includes("tools"),
      );
      await sub.close();
    } finally {
      await closeAll([c]);
    }
  });
});

describe("through the gateway: a 2026-07-28 upstream (the v2 SDK server)", () => {
  const calls: Calls = [];
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    upstream = await serveV2(peerServer(calls));
    gateway = await startGateway(upstream.url);
  });
  after(async () => {
    await gateway?.gw.close();
    await upstream?.close();
  });

  test("2026 era: the v2 client (auto) discovers, lists its allowed tools, calls one; a denied tool is refused and never runs", async () => {
    const c = await v2Client(gateway.url, ALICE, "auto");
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(c.getProtocolEra(), "modern");
      assert.ok(c.getServerCapabilities()?.tools, "discover announces tools to alice");
      assert.equal(c.getServerCapabilities()?.resources, undefined, "alice may read no resource: discover does not announce resources");
      assert.deepEqual(names(await c.listTools()), ["deploy", "echo"]);
      assert.deepEqual((await c.callTool({ name: "echo", arguments: { text: "modern" } })).content, [{ type: "text", text: "modern" }]);
      const before = calls.length;
      await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
      assert.equal(calls.length, before, "the denied tool never reached the server");
      const refused = await auditOf(gateway.sink, (r) => r.tool === "get-env" && String(r.client).endsWith("alice"));
      assert.equal(refused.protocol, MODERN, `the audit line names the revision: ${JSON.stringify(refused)}`);
      assert.equal(refused.session, undefined, "a 2026 request has no session");
    } finally {
      await closeAll([c]);
    }
  });

  test("2025 era on the same endpoint: the v2 client (legacy) and the v1 client list and call; the denied tool is refused", async () => {
    const legacy = await v2Client(gateway.url, ALICE, "legacy");
    const v1 = await v1Client(gateway.url, BOB);
    try {
      assert.equal(legacy.getNegotiatedProtocolVersion(), LEGACY);
      assert.deepEqual(names(await legacy.listTools()), ["deploy", "echo"]);
      assert.deepEqual((await legacy.callTool({ name: "echo", arguments: { text: "legacy" } })).content, [{ type: "text", text: "legacy" }]);
      assert.deepEqual(names(await v1.listTools()), ["deploy", "echo"]);
      const before = calls.length;
      await assert.rejects(v1.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
      await assert.rejects(legacy.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
      assert.equal(calls.length, before, "the denied tool never reached the server");
      const refused = await auditOf(gateway.sink, (r) => r.tool === "get-env" && String(r.client).endsWith("bob"));
      assert.match(String(refused.protocol), /^2025-/, `the audit line names the 2025 revision: ${JSON.stringify(refused)}`);
    } finally {
      await closeAll([legacy, v1]);
    }
  });

  test("the older HTTP+SSE transport (v1 SDK client) keeps working in front of the same server, with the same checks", async () => {
    const c = new V1Client({ name: "era-matrix-sse", version: "1.0.0" });
    await c.connect(
      new SSEClientTransport(new URL(gateway.url.replace(/\/mcp$/, "/sse")), {
        requestInit: { headers: { "x-api-key": BOB } },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), "x-api-key": BOB } }) },
      }),
    );
    try {
      assert.deepEqual(names(await c.listTools()), ["deploy", "echo"]);
      assert.deepEqual((await c.callTool({ name: "echo", arguments: { text: "sse" } })).content, [{ type: "text", text: "sse" }]);
      const before = calls.length;
      await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
      assert.equal(calls.length, before, "the denied tool never reached the server");
    } finally {
      await closeAll([c]);
    }
  });

  test("MRTR through the gateway: the server's elicitation reaches the v2 client, its answer completes the call", async () => {
    const elicited: string[] = [];
    const c = await v2Client(gateway.url, ALICE, "auto", { elicited });
    try {
      const r = await c.callTool({ name: "deploy", arguments: { env: "staging" } });
      assert.deepEqual(r.content, [{ type: "text", text: "deployed to staging" }]);
      assert.deepEqual(elicited, ["Deploy to staging?"]);
      assert.deepEqual(calls.at(-1), { tool: "deploy", args: { env: "staging" } });
    } finally {
      await closeAll([c]);
    }
  });

  test("subscriptions/listen: each client gets only the list changes of what it may see", async () => {
    const alice = await v2Client(gateway.url, ALICE, "auto");
    const bob = await v2Client(gateway.url, BOB, "auto");
    const seen = { alice: [] as string[], bob: [] as string[] };
    for (const [who, c] of [
      ["alice", alice],
      ["bob", bob],
    ] as const) {
      c.setNotificationHandler("notifications/tools/list_changed", () => void seen[who].push("tools"));
      c.setNotificationHandler("notifications/resources/list_changed", () => void seen[who].push("resources"));
    }
    try {
      const subs = [
        await alice.listen({ toolsListChanged: true, resourcesListChanged: true }),
        await bob.listen({ toolsListChanged: true, resourcesListChanged: true }),
      ];
      upstream.handler.notify.resourcesChanged();
      upstream.handler.notify.toolsChanged();
      await waitUntil(
        "bob to see both list changes",
        () => seen.bob,
        (s) => s.includes("tools") && s.includes("resources"),
      );
      await waitUntil(
        "alice to see the tools list change",
        () => seen.alice,
        (s) => s.includes("tools"),
      );
      assert.ok(
        !seen.alice.includes("resources"),
        `alice saw ${JSON.stringify(seen.alice)}: the resources list change was announced to a client that may see no resource`,
      );
      await Promise.all(subs.map((s) => s.close()));
    } finally {
      await closeAll([alice, bob]);
    }
  });

  test("subscriptions/listen: the acknowledgment agrees only to what the client may see", async () => {
    // The spec: the acknowledgment's filter is "the subset the server agreed to honor". The gateway never sends
    // alice resource list changes (she may see no resource), so agreeing to them would announce what she may not see.
    const alice = await v2Client(gateway.url, ALICE, "auto");
    const bob = await v2Client(gateway.url, BOB, "auto");
    try {
      const a = await alice.listen({ toolsListChanged: true, resourcesListChanged: true });
      const b = await bob.listen({ toolsListChanged: true, resourcesListChanged: true });
      assert.equal(b.honoredFilter.resourcesListChanged, true, "bob's acknowledgment keeps resource list changes");
      assert.equal(a.honoredFilter.toolsListChanged, true, "alice's acknowledgment keeps tool list changes");
      assert.notEqual(a.honoredFilter.resourcesListChanged, true, "alice's acknowledgment agrees to resource list changes she will never be sent");
      await Promise.all([a.close(), b.close()]);
    } finally {
      await closeAll([alice, bob]);
    }
  });

  test("a real client whose Mcp-Name header disagrees with its body is refused with -32020 before any policy decision", async () => {
    // A proxy between the v2 SDK and the wire: the header names the allowed echo, the body calls get-env.
    const tamper: typeof fetch = async (input, init) => {
      const h = new Headers(init?.headers);
      if (h.get("mcp-method") === "tools/call") h.set("mcp-name", "echo");
      return fetch(input, { ...init, headers: h });
    };
    const c = await v2Client(gateway.url, ALICE, "auto", { fetch: tamper });
    try {
      const before = calls.length;
      await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32020);
      await assert.rejects(c.callTool({ name: "deploy", arguments: { env: "prod" } }), (e) => codeOf(e) === -32020);
      assert.equal(calls.length, before, "nothing reached the server");
      assert.deepEqual(
        (await c.callTool({ name: "echo", arguments: { text: "same" } })).content,
        [{ type: "text", text: "same" }],
        "header and body agree: served",
      );
    } finally {
      await closeAll([c]);
    }
  });

  test("a real client asking for a revision nobody speaks is refused with -32022 and the supported list", async () => {
    // A proxy that makes a real client ask for a revision nobody speaks, in the header and in _meta alike.
    const future: typeof fetch = async (input, init) => {
      const h = new Headers(init?.headers);
      let body = init?.body;
      if (h.get("mcp-protocol-version") === MODERN && typeof body === "string") {
        h.set("mcp-protocol-version", "2099-01-01");
        body = body.replaceAll(`"io.modelcontextprotocol/protocolVersion":"${MODERN}"`, `"io.modelcontextprotocol/protocolVersion":"2099-01-01"`);
      }
      const r = await fetch(input, { ...init, headers: h, body });
      if (r.status === 400) {
        const text = await r.clone().text();
        refusals.push({ status: r.status, body: JSON.parse(text) as { error?: { code: number; data?: { supported?: string[] } } } });
      }
      return r;
    };
    const refusals: { status: number; body: { error?: { code: number; data?: { supported?: string[] } } } }[] = [];
    const c = await v2Client(gateway.url, ALICE, "auto", { fetch: future }).catch((e: unknown) => e);
    if (!(c instanceof Error)) await closeAll([c as V2Client]);
    assert.ok(refusals.length > 0, "the gateway refused the unknown revision");
    assert.equal(refusals[0]!.body.error?.code, -32022);
    assert.deepEqual(refusals[0]!.body.error?.data?.supported, ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]);
  });
});

describe("through the gateway: the per-server allowlist (spec.protocol.versions)", () => {
  const calls: Calls = [];
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  let only2025: Awaited<ReturnType<typeof startGateway>>;
  let only2026: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    upstream = await serveV2(peerServer(calls));
    // Without 2025-11-25, the revision today's 2025 clients ask for first: they must be offered 2025-06-18.
    only2025 = await startGateway(upstream.url, { versions: ["2025-06-18", "2025-03-26"] });
    only2026 = await startGateway(upstream.url, { versions: ["2026-07-28"] });
  });
  after(async () => {
    await only2025?.gw.close();
    await only2026?.gw.close();
    await upstream?.close();
  });

  test("only older 2025 revisions allowed: a client pinned to 2026-07-28 is refused naming the allowed list; auto and the v1 client are offered 2025-06-18 and work", async () => {
    await assert.rejects(v2Client(only2025.url, ALICE, { pin: MODERN }), (e) =>
      /2025-06-18/.test(String((e as Error).message) + JSON.stringify((e as { data?: unknown }).data ?? "")),
    );
    const auto = await v2Client(only2025.url, ALICE, "auto");
    const v1 = await v1Client(only2025.url, BOB);
    try {
      assert.equal(auto.getProtocolEra(), "legacy");
      assert.equal(auto.getNegotiatedProtocolVersion(), "2025-06-18", "the client asked for 2025-11-25 and was offered the newest allowed revision");
      assert.deepEqual(names(await auto.listTools()), ["deploy", "echo"]);
      assert.deepEqual(names(await v1.listTools()), ["deploy", "echo"]);
      const line = await auditOf(only2025.sink, (r) => r.method === "tools/list" && String(r.client).endsWith("bob"));
      assert.equal(line.protocol, "2025-06-18", `the v1 client's requests carry the offered revision: ${JSON.stringify(line)}`);
    } finally {
      await closeAll([auto, v1]);
    }
  });

  test("only 2026-07-28 allowed: a 2025 client's initialize is refused naming 2026-07-28; the 2026 client works", async () => {
    await assert.rejects(v1Client(only2026.url, ALICE), (e) => /2026-07-28/.test(String((e as Error).message)));
    const modern = await v2Client(only2026.url, ALICE, "auto");
    try {
      assert.equal(modern.getNegotiatedProtocolVersion(), MODERN);
      assert.deepEqual(names(await modern.listTools()), ["deploy", "echo"]);
    } finally {
      await closeAll([modern]);
    }
  });
});

describe("through the gateway: server-everything (a 2025-only server) bridged for 2026 clients", () => {
  let everything: Child;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    everything = await startEverything("streamableHttp");
    gateway = await startGateway(`http://127.0.0.1:${everything.port}/mcp`);
  });
  after(async () => {
    await gateway?.gw.close();
    await everything?.stop();
  });

  test("the v2 client negotiates 2026-07-28 with the gateway, lists and calls server-everything's tools; a denied tool is refused", async () => {
    const alice = await v2Client(gateway.url, ALICE, "auto");
    const bob = await v2Client(gateway.url, BOB, "auto");
    try {
      assert.equal(alice.getNegotiatedProtocolVersion(), MODERN);
      assert.deepEqual(names(await alice.listTools()), ["echo", "get-sum"]);
      const echoed = await alice.callTool({ name: "echo", arguments: { message: "bridged" } });
      assert.match(JSON.stringify(echoed.content), /bridged/);
      const sum = await alice.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
      assert.match(JSON.stringify(sum.content), /5/);
      const bobTools = names(await bob.listTools());
      assert.ok(bobTools.includes("echo") && !bobTools.includes("get-env"), `bob's list: ${bobTools.join(", ")}`);
      await assert.rejects(bob.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
    } finally {
      await closeAll([alice, bob]);
    }
  });

  test("an elicitation server-everything sends on its 2025 session reaches the 2026 client as MRTR and the answer goes back", async () => {
    const elicited: string[] = [];
    const bob = await v2Client(gateway.url, BOB, "auto", { elicited, answer: "decline" });
    try {
      const r = await bob.callTool({ name: "trigger-elicitation-request", arguments: {} });
      assert.equal(elicited.length, 1, "the client's elicitation handler ran once");
      assert.match(elicited[0]!, /Please provide inputs/);
      assert.match(JSON.stringify(r.content), /decline/i, `the server saw the client's answer: ${JSON.stringify(r.content).slice(0, 300)}`);
    } finally {
      await closeAll([bob]);
    }
  });

  test("2025 clients still work on the same endpoint: the v1 client lists, calls and answers the elicitation on its session", async () => {
    const elicited: string[] = [];
    const v1 = await v1Client(gateway.url, BOB, elicited);
    try {
      const tools = (await v1.listTools()).tools.map((t) => t.name);
      assert.ok(tools.includes("echo") && !tools.includes("get-env"));
      await assert.rejects(v1.callTool({ name: "get-env", arguments: {} }), (e) => codeOf(e) === -32003);
      const r = await v1.callTool({ name: "trigger-elicitation-request", arguments: {} });
      assert.equal(elicited.length, 1);
      assert.ok(r.content);
    } finally {
      await closeAll([v1]);
    }
  });
});
