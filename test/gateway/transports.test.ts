// The other transports: a stdio server (server-everything in stdio mode) behind `mcp-bastion
// stdio-bridge`, an upstream on the older HTTP+SSE transport, and SDK clients on the older transport.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { freePort, waitFor, waitUntil, withDeadline } from "../support/index.ts";
import { type Child, EVERYTHING, MemorySink, ROOT, baseConfig, startEverything, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-Ut6Yh3Jk9Lm2Nb5Vc8Xz";
const BOB = "bob-Pq1Wo2Ei3Ru4Ty5Al6Sk";
const CLI = join(ROOT, "cli/bin/mcp-bastion.js");
let bridge: ChildProcess;
let bridgePort: number;
let bridgeLog = "";
let sseUp: Child;
let viaBridge: Gateway;
let viaSse: Gateway;
let bridgeUrl: string;
let sseUrl: string;
const sink = new MemorySink();

function headers(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

async function streamable(base: string, key: string): Promise<Client> {
  const c = new Client({ name: "transport-test", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: headers(key) } }));
  return c;
}

async function legacy(base: string, key: string): Promise<Client> {
  const c = new Client({ name: "transport-test", version: "1.0.0" });
  const h = headers(key);
  await c.connect(
    new SSEClientTransport(new URL(`${base}/sse`), {
      requestInit: { headers: h },
      eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...h } }) },
    }),
  );
  return c;
}

async function gateway(upstream: Parameters<typeof baseConfig>[0]["upstream"]): Promise<[Gateway, string]> {
  const dir = tempDir("keys");
  writeKeys(dir, { alice: ALICE, bob: BOB });
  const gw = new Gateway({ config: parseConfig(baseConfig({ upstream, auth: { apiKeys: { dir } } })), auditSink: sink });
  const { port } = await gw.start();
  await waitFor(`the gateway in front of ${upstream.transport} to be ready (tool catalog loaded through the upstream)`, () => gw.ready);
  return [gw, `http://127.0.0.1:${port}`];
}

before(async () => {
  bridgePort = await freePort();
  bridge = spawn(process.execPath, [CLI, "stdio-bridge", "--port", String(bridgePort), "--max-sessions", "4", "--", process.execPath, EVERYTHING, "stdio"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const listening = new Promise<void>((resolve, reject) => {
    bridge.stderr!.on("data", (d: Buffer) => {
      bridgeLog += d.toString();
      if (bridgeLog.includes('"msg":"listening"')) resolve();
    });
    bridge.on("exit", (c) => reject(new Error(`bridge exited ${c}: ${bridgeLog}`)));
  });
  await withDeadline("the stdio bridge to log that it listens", listening, 60_000, () => bridgeLog);
  sseUp = await startEverything("sse");
  [[viaBridge, bridgeUrl], [viaSse, sseUrl]] = await Promise.all([
    gateway({ transport: "stdio", bridge: { host: "127.0.0.1", port: bridgePort } }),
    gateway({ transport: "sse", url: `http://127.0.0.1:${sseUp.port}/sse` }),
  ]);
});

after(async () => {
  await Promise.all([viaBridge?.close(), viaSse?.close()]);
  bridge?.kill("SIGTERM");
  await Promise.all([new Promise((r) => (bridge && bridge.exitCode === null ? bridge.once("exit", r) : r(undefined))), sseUp?.stop()]);
});

/** Waits until exactly n server processes live (the gateway's own short tools/list sessions come and go). */
async function waitSessions(n: number): Promise<void> {
  await waitUntil(`${n} stdio server processes alive (sessions started minus ended in the bridge log)`, liveSessions, (live) => live === n, 60_000, 100);
}

function liveSessions(): number {
  const started = bridgeLog.match(/"msg":"session started"/g)?.length ?? 0;
  const ended = bridgeLog.match(/"msg":"session ended"/g)?.length ?? 0;
  return started - ended;
}

describe("stdio server through the bridge", () => {
  test("each MCP session gets its own server process, filtered and checked like any upstream", async () => {
    await waitSessions(0);
    const a = await streamable(bridgeUrl, ALICE);
    await waitSessions(1);
    assert.deepEqual((await a.listTools()).tools.map((t) => t.name).sort(), ["echo", "get-sum"]);
    assert.deepEqual((await a.callTool({ name: "echo", arguments: { message: "via stdio" } })).content, [{ type: "text", text: "Echo: via stdio" }]);
    await assert.rejects(a.callTool({ name: "get-env", arguments: {} }), /-32003/);
    await assert.rejects(a.callTool({ name: "echo", arguments: { message: ["x"] } }), /-32602/);
    const b = await streamable(bridgeUrl, BOB);
    await waitSessions(2);
    assert.ok((await b.listTools()).tools.length > 2);
    // Ending the session ends its process.
    await (a.transport as StreamableHTTPClientTransport).terminateSession();
    await (b.transport as StreamableHTTPClientTransport).terminateSession();
    await Promise.all([a.close(), b.close()]);
    await waitSessions(0);
  });

  test("two clients cannot take every server process: each holds its share, dropped sessions' processes end (issue 10, class 5)", async () => {
    await waitSessions(0);
    // A second gateway on the same bridge (4 children) that may hold 2 sessions: 1 per client.
    const dir = tempDir("keys");
    writeKeys(dir, { alice: ALICE, bob: BOB });
    const cfg = baseConfig({ upstream: { transport: "stdio", bridge: { host: "127.0.0.1", port: bridgePort } }, auth: { apiKeys: { dir } } });
    cfg.limits.maxHostedSessions = 2;
    const gw = new Gateway({ config: parseConfig(cfg), auditSink: sink });
    const { port } = await gw.start();
    try {
      for (let i = 0; i < 200 && !gw.ready; i++) await new Promise((r) => setTimeout(r, 50));
      await waitSessions(0); // the catalog's own session has ended
      const base = `http://127.0.0.1:${port}`;
      const mine: Client[] = [];
      for (let i = 0; i < 3; i++) mine.push(await streamable(base, ALICE), await streamable(base, BOB));
      // Each client kept its newest session; the older ones were closed and their processes ended.
      await waitSessions(2);
      const ok = async (c: Client) =>
        c.callTool({ name: "echo", arguments: { message: "x" } }).then(
          () => true,
          () => false,
        );
      assert.deepEqual(await Promise.all(mine.map(ok)), [false, false, false, false, true, true]);
      await Promise.all(mine.map((c) => (c.transport as StreamableHTTPClientTransport).terminateSession().catch(() => undefined)));
      await Promise.all(mine.map((c) => c.close()));
      await waitSessions(0);
    } finally {
      await gw.close();
    }
  });

  test("a client on the older HTTP+SSE transport works against the stdio server too", async () => {
    const c = await legacy(bridgeUrl, BOB);
    assert.deepEqual((await c.callTool({ name: "get-sum", arguments: { a: 20, b: 22 } })).content, [{ type: "text", text: "The sum of 20 and 22 is 42." }]);
    await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), /-32003/);
    await c.close();
  });

  test("the bridge limits its children and kills a child when its connection closes", async () => {
    await waitSessions(0); // the earlier tests' sessions are closed by now
    const seen = bridgeLog.length;
    const socks = [];
    for (let i = 0; i < 5; i++) socks.push(tcpConnect({ host: "127.0.0.1", port: bridgePort }));
    await waitSessions(4);
    await waitFor("the bridge to log that it refused the fifth connection (child limit reached)", () => bridgeLog.includes("child limit reached"), 60_000, 100);
    for (const s of socks) s.destroy();
    await waitSessions(0);
    const pids = [...bridgeLog.slice(seen).matchAll(/"msg":"session started","pid":(\d+)/g)].map((m) => Number(m[1]));
    assert.ok(pids.length >= 4, `children started: ${pids.length}`);
    const alive = pids.filter((p) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, [], "children of closed connections are gone");
  });

  test("--install copies an executable bridge into a directory", () => {
    const dir = tempDir("bridge");
    execFileSync(process.execPath, [CLI, "stdio-bridge", "--install", dir], { stdio: "pipe" });
    const exe = join(dir, "mcp-bastion-bridge");
    assert.ok(existsSync(exe));
    assert.ok((statSync(exe).mode & 0o111) !== 0, "executable");
    assert.match(execFileSync(exe, ["--help"]).toString(), /usage: mcp-bastion stdio-bridge/);
  });
});

describe("HTTP+SSE", () => {
  test("an upstream on the older SSE transport, through a streamable HTTP client", async () => {
    const c = await streamable(sseUrl, ALICE);
    assert.deepEqual((await c.listTools()).tools.map((t) => t.name).sort(), ["echo", "get-sum"]);
    assert.deepEqual((await c.callTool({ name: "echo", arguments: { message: "sse up" } })).content, [{ type: "text", text: "Echo: sse up" }]);
    await c.close();
  });

  test("a client holds at most 8 gateway-held sessions: the least recently used one is closed", async () => {
    const clients: Client[] = [];
    for (let i = 0; i < 9; i++) clients.push(await streamable(sseUrl, BOB));
    await assert.rejects(clients[0]!.callTool({ name: "echo", arguments: { message: "first" } }), /404|session not found/i);
    for (const c of clients.slice(1))
      assert.deepEqual((await c.callTool({ name: "echo", arguments: { message: "x" } })).content, [{ type: "text", text: "Echo: x" }]);
    // Another client's sessions are untouched by bob's.
    const a = await streamable(sseUrl, ALICE);
    assert.deepEqual((await a.callTool({ name: "echo", arguments: { message: "a" } })).content, [{ type: "text", text: "Echo: a" }]);
    await Promise.all([...clients, a].map((c) => c.close()));
  });

  test("older-transport clients are authenticated, filtered and bound to their session", async () => {
    await assert.rejects(legacy(bridgeUrl, "wrong-key-0000000000000"), /401|Unauthorized|Non-200/i);
    const c = await legacy(sseUrl, ALICE);
    assert.deepEqual((await c.listTools()).tools.map((t) => t.name).sort(), ["echo", "get-sum"]);
    const sid = new URL((c.transport as unknown as { _endpoint: URL })._endpoint).searchParams.get("sessionId");
    const r = await fetch(`${sseUrl}/messages?sessionId=${sid}`, {
      method: "POST",
      headers: { ...headers(BOB), "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 5, method: "tools/list" }),
    });
    assert.equal(r.status, 404);
    await c.close();
    sink.records();
  });
});
