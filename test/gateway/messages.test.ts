// Issue 10, classes 3 and 4: every client message is checked and charged, and answers reach the
// request they answer. Against the SDK's McpServer behind a gateway-held session (older SSE
// transport upstream) and behind the proxy (streamable HTTP upstream).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { MemorySink, baseConfig, tempDir, writeKeys } from "./helpers.ts";
import { waitUntil } from "../support/index.ts";
import { type Peer, startPeer } from "./peer.ts";

/** One client per test: the notification budget (burst 3) is per client. */
const KEYS: Record<string, string> = {
  noid: "noid-msg-Zx8Cv6Bn4Mq2Wp",
  flood: "flood-msg-Lk9Jh7Gf5Ds3Aq",
  dup: "dup-msg-Po0Iu8Yt6Re4Wq",
  many: "many-msg-Mn1Bv3Cx5Za7Sd",
};
let peer: Peer;
const gws: Record<string, { gw: Gateway; port: number; sink: MemorySink }> = {};
const KINDS = ["sse", "streamable-http"] as const;

before(async () => {
  peer = await startPeer();
  for (const kind of KINDS) {
    const dir = tempDir("msg-keys");
    writeKeys(dir, KEYS);
    const sink = new MemorySink();
    const cfg = baseConfig({
      upstream: kind === "sse" ? { transport: "sse", url: `${peer.base}/sse` } : { transport: "streamable-http", url: `${peer.base}/mcp` },
      auth: { apiKeys: { dir } },
    });
    cfg.authorization.rules = [{ name: "all", clients: { apiKeys: ["*"] }, tools: { allow: ["echo", "hold"], deny: [] } }];
    cfg.limits.notifications = { requestsPerMinute: 6, burst: 3 };
    const gw = new Gateway({ config: parseConfig(cfg), auditSink: sink });
    const { port } = await gw.start();
    await waitUntil(
      "gateway ready",
      () => gw.ready,
      (r) => r,
    );
    gws[kind] = { gw, port, sink };
  }
});

after(async () => {
  await Promise.all(Object.values(gws).map((g) => g.gw.close()));
  await peer?.close();
});

async function rpc(
  port: number,
  key: string,
  body: unknown,
  sid?: string,
): Promise<{
  status: number;
  json: { error?: { code: number; message: string }; result?: Record<string, unknown> } | undefined;
  sid: string | null;
  retryAfter: string | null;
}> {
  const r = await fetch(`http://127.0.0.1:${port}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(sid ? { "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let json: { error?: { code: number; message: string }; result?: Record<string, unknown> } | undefined;
  try {
    // An SSE answer carries the message in its data line.
    json = JSON.parse(text.startsWith("event:") || text.startsWith("data:") ? /^data: (.*)$/m.exec(text)![1]! : text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, sid: r.headers.get("mcp-session-id"), retryAfter: r.headers.get("retry-after") };
}

async function session(port: number, key: string): Promise<string> {
  const r = await rpc(port, key, {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
  });
  assert.equal(r.status, 200);
  assert.ok(r.sid);
  await rpc(port, key, { jsonrpc: "2.0", method: "notifications/initialized" }, r.sid);
  return r.sid;
}

for (const kind of KINDS) {
  describe(`messages without an id (${kind})`, () => {
    test("a request method sent without an id is refused and never reaches the server", async () => {
      const { port } = gws[kind]!;
      const sid = await session(port, KEYS.noid!);
      const ran = peer.calls["secret-admin"] ?? 0;
      const denied = await rpc(port, KEYS.noid!, { jsonrpc: "2.0", method: "tools/call", params: { name: "secret-admin", arguments: {} } }, sid);
      assert.equal(denied.status, 400);
      assert.equal(denied.json?.error?.code, -32600);
      assert.match(denied.json?.error?.message ?? "", /"tools\/call" is a request and needs an "id"/);
      // initialize as a notification would open an upstream session per message.
      const created = peer.created;
      for (let i = 0; i < 5; i++) {
        const r = await rpc(port, KEYS.noid!, {
          jsonrpc: "2.0",
          method: "initialize",
          params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
        });
        assert.equal(r.status, 400);
      }
      const ping = await rpc(port, KEYS.noid!, { jsonrpc: "2.0", method: "ping" }, sid);
      assert.equal(ping.status, 400);
      // Whatever was on its way: nothing of the above reached the server.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(peer.calls["secret-admin"] ?? 0, ran, "the denied tool ran on the server");
      assert.equal(peer.created, created, "sessions created upstream by id-less initialize");
    });

    test("notifications draw from a bounded budget of their own: a flood is refused with 429", async () => {
      const { port, sink } = gws[kind]!;
      const sid = await session(port, KEYS.flood!);
      // session() sent notifications/initialized: 2 of the burst of 3 are left.
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 6; i++) {
        const r = await rpc(port, KEYS.flood!, { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "t", progress: i } }, sid);
        statuses.push(r.status);
        if (r.status === 429) retryAfter = r.retryAfter;
      }
      assert.deepEqual(statuses.slice(0, 2), [202, 202]);
      assert.ok(
        statuses.slice(2).every((s) => s === 429),
        `statuses ${statuses.join(",")}`,
      );
      assert.ok(Number(retryAfter) >= 1, "Retry-After on the refusal");
      // The request budget is separate: calls still work.
      const call = await rpc(
        port,
        KEYS.flood!,
        { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "echo", arguments: { message: "still" } } },
        sid,
      );
      assert.equal(call.status, 200);
      gws[kind]!.gw.audit.flush();
      assert.ok(
        sink.records().some((r) => r.method === "notifications/progress" && r.outcome === "rate-limited"),
        "refused notifications are audited",
      );
    });
  });

  describe(`answers reach the request they answer (${kind})`, () => {
    test("a second request with an id already in flight is refused; the first gets its own answer", async () => {
      const { port } = gws[kind]!;
      const sid = await session(port, KEYS.dup!);
      const before = peer.holding();
      const first = rpc(port, KEYS.dup!, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "hold", arguments: { key: `dup-${kind}` } } }, sid);
      await waitUntil(
        "the first call runs on the server",
        () => peer.holding(),
        (n) => n > before,
      );
      const second = await rpc(port, KEYS.dup!, { jsonrpc: "2.0", id: 7, method: "tools/list" }, sid);
      assert.equal(second.status, 400);
      assert.match(second.json?.error?.message ?? "", /request id 7 is already in flight/);
      peer.release(`dup-${kind}`);
      const a = await first;
      assert.equal(a.status, 200);
      assert.deepEqual(a.json?.result?.content, [{ type: "text", text: `released dup-${kind}` }]);
      // The id is free again once answered, and a list answer is filtered for the client.
      const list = await rpc(port, KEYS.dup!, { jsonrpc: "2.0", id: 7, method: "tools/list" }, sid);
      assert.equal(list.status, 200);
      assert.deepEqual(((list.json?.result?.tools ?? []) as { name: string }[]).map((t) => t.name).sort(), ["echo", "hold"]);
    });

    test("many concurrent calls from the SDK client each get their own answer, and lists stay filtered", async () => {
      const { port } = gws[kind]!;
      const c = new Client({ name: "concurrent", version: "1" });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEYS.many}` } } }),
      );
      const work = Array.from({ length: 20 }, (_, i) =>
        i % 4 === 0
          ? c.listTools().then((r) =>
              r.tools
                .map((t) => t.name)
                .sort()
                .join(","),
            )
          : c.callTool({ name: "echo", arguments: { message: `m${i}` } }).then((r) => JSON.stringify(r.content)),
      );
      const out = await Promise.all(work);
      out.forEach((o, i) => {
        if (i % 4 === 0) assert.equal(o, "echo,hold", `list ${i}`);
        else assert.equal(o, JSON.stringify([{ type: "text", text: `echo: m${i}` }]), `call ${i}`);
      });
      await c.close();
    });
  });
}
