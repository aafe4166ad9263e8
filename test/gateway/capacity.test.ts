// Issue 10, class 5: one or two clients cannot take shared capacity from everyone. Sessions bound to
// clients, gateway-held sessions (a server process each on stdio), concurrency slots and the time a
// body may take all have per-client caps, and every session the gateway drops is closed upstream.
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import type { Channel } from "../../gateway/src/channel.ts";
import type { Identity } from "../../gateway/src/authz.ts";
import { SessionTable } from "../../gateway/src/sessions.ts";
import { MemorySink, baseConfig, tempDir, writeKeys } from "./helpers.ts";
import { waitUntil } from "../support/index.ts";
import { type Peer, startPeer } from "./peer.ts";

const KEYS = { alice: "alice-cap-Gh5Jk7Lq9Wz2Xc", bob: "bob-cap-Vb4Nm6Qw8Er1Ty", carol: "carol-cap-Ui3Op5As7Df9Gh" };
let peer: Peer;

before(async () => {
  peer = await startPeer();
});
after(async () => {
  await peer?.close();
});

async function gateway(upstream: "sse" | "streamable-http", limits: Record<string, unknown>): Promise<{ gw: Gateway; url: string; port: number }> {
  const dir = tempDir("cap-keys");
  writeKeys(dir, KEYS);
  const cfg = baseConfig({
    upstream: upstream === "sse" ? { transport: "sse", url: `${peer.base}/sse` } : { transport: "streamable-http", url: `${peer.base}/mcp` },
    auth: { apiKeys: { dir } },
  });
  cfg.authorization.rules = [{ name: "all", clients: { apiKeys: ["*"] }, tools: { allow: ["echo", "hold"], deny: [] } }];
  Object.assign(cfg.limits, limits);
  const gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const { port } = await gw.start();
  await waitUntil(
    "gateway ready",
    () => gw.ready,
    (r) => r,
  );
  return { gw, url: `http://127.0.0.1:${port}/mcp`, port };
}

async function client(url: string, key: string): Promise<Client> {
  const c = new Client({ name: "cap", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  return c;
}

async function echoes(c: Client): Promise<boolean> {
  try {
    const r = await c.callTool({ name: "echo", arguments: { message: "x" } });
    return JSON.stringify(r.content).includes("echo: x");
  } catch {
    return false;
  }
}

describe("sessions", () => {
  test("a client over its session cap loses its own oldest sessions, closed upstream; other clients keep theirs", async () => {
    const { gw, url } = await gateway("streamable-http", { maxSessionsPerClient: 3 });
    try {
      const bob = await client(url, KEYS.bob);
      const deleted = peer.deleted;
      const alice: Client[] = [];
      for (let i = 0; i < 5; i++) alice.push(await client(url, KEYS.alice));
      // The two oldest of alice's five are dropped and DELETEd upstream (the server frees them).
      await waitUntil(
        "evicted sessions closed upstream",
        () => peer.deleted - deleted,
        (n) => n === 2,
      );
      assert.deepEqual(await Promise.all(alice.map(echoes)), [false, false, true, true, true]);
      assert.equal(await echoes(bob), true, "bob's session survived alice's flood");
      await Promise.all([...alice, bob].map((c) => c.close()));
    } finally {
      await gw.close();
    }
  });

  test("a full table makes room from the client holding the most, never from one holding fewer", () => {
    const closed: string[] = [];
    const t = new SessionTable(
      { maxBound: 4, maxBoundPerClient: 4, maxHosted: 1, maxHostedPerClient: 1 },
      () => ({}) as Channel,
      (s) => closed.push(s.id),
    );
    const id = (name: string): Identity => ({ key: `apikey:${name}`, kind: "apikey", name });
    t.bind("bob-1", id("bob"));
    for (let i = 0; i < 20; i++) t.bind(`alice-${i}`, id("alice"));
    assert.ok(t.resolve("bob-1", id("bob"), "streamable-http"), "bob's session is still bound");
    assert.equal(t.resolve("bob-1", id("alice"), "streamable-http"), undefined, "and only to bob");
    assert.equal(closed.length, 17, "every dropped binding is closed upstream");
    assert.ok(closed.every((c) => c.startsWith("alice-")));
    // A newcomer still gets a place: from alice, who holds the most.
    t.bind("carol-1", id("carol"));
    assert.ok(t.resolve("carol-1", id("carol"), "streamable-http"));
    assert.ok(t.resolve("bob-1", id("bob"), "streamable-http"));
  });

  test("gateway-held sessions: two clients cannot take every upstream session (process), and dropped ones are closed upstream", async () => {
    // 4 gateway-held sessions in all: each client holds at most 1.
    const { gw, url } = await gateway("sse", { maxHostedSessions: 4 });
    try {
      await waitUntil(
        "the catalog's own session is closed",
        () => peer.live().sse,
        (n) => n === 0,
      );
      const a: Client[] = [];
      const b: Client[] = [];
      for (let i = 0; i < 3; i++) {
        a.push(await client(url, KEYS.alice));
        b.push(await client(url, KEYS.bob));
      }
      // Each kept only its newest; the others were closed upstream.
      await waitUntil(
        "upstream sessions of alice and bob",
        () => peer.live().sse,
        (n) => n === 2,
      );
      assert.deepEqual(await Promise.all(a.map(echoes)), [false, false, true]);
      assert.deepEqual(await Promise.all(b.map(echoes)), [false, false, true]);
      const carol = await client(url, KEYS.carol);
      assert.equal(await echoes(carol), true, "a third client still gets a session");
      // Clients that end their sessions (DELETE) end them upstream too.
      await Promise.all([...a, ...b, carol].map((c) => (c.transport as StreamableHTTPClientTransport).terminateSession().catch(() => undefined)));
      await Promise.all([...a, ...b, carol].map((c) => c.close()));
      await waitUntil(
        "deleted sessions end upstream",
        () => peer.live().sse,
        (n) => n === 0,
      );
    } finally {
      await gw.close();
    }
  });
});

describe("slots and slow bodies", () => {
  test("slow request bodies hold at most the client's share of slots, and only until the body deadline", async () => {
    // 4 slots, 1 per client, bodies within 1 s.
    const { gw, url, port } = await gateway("streamable-http", { maxConcurrentRequests: 4, maxConcurrentPerClient: 1, bodyTimeoutSeconds: 1 });
    try {
      const carol = await client(url, KEYS.carol);
      const got: string[] = [];
      /** The status lines of the answers so far. */
      const answers = () => got.map((g) => g.split("\r\n")[0] ?? "").filter((l) => l.startsWith("HTTP/"));
      const slow = (key: string) => {
        const s = tcpConnect(port, "127.0.0.1");
        const i = got.push("") - 1;
        s.on("data", (d) => {
          got[i] += d.toString();
        });
        s.on("error", () => undefined);
        // Headers and the first bytes of a 100-byte body; the rest never comes.
        s.write(
          `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"`,
        );
        return s;
      };
      const t0 = Date.now();
      const socks = [slow(KEYS.alice), slow(KEYS.bob), slow(KEYS.alice), slow(KEYS.bob)];
      // alice's and bob's second slow body are over their share: refused at once.
      await waitUntil(
        "second slow bodies refused",
        () => answers().filter((a) => a.includes(" 503 ")).length,
        (n) => n === 2,
      );
      // Meanwhile another client is served.
      assert.equal(await echoes(carol), true, "carol served while alice and bob send slow bodies");
      // The slow ones lose their slot at the deadline.
      await waitUntil(
        "slow bodies cut at the deadline",
        () => answers().filter((a) => a.includes(" 408 ")).length,
        (n) => n === 2,
      );
      assert.ok(Date.now() - t0 < 10_000, "cut near the 1 s deadline");
      await waitUntil(
        "no slot held",
        () => gw.inflight,
        (n) => n === 0,
      );
      for (const s of socks) s.destroy();
      await carol.close();
    } finally {
      await gw.close();
    }
  });
});
