// Issue 10, class 2: every admitted request releases its concurrency slot and leaves exactly one
// audit line, whatever ends it. A property test drives random sequences of the ways a call can end -
// its answer, the client hanging up, the upstream closing the session, the tool timeout, a duplicate
// request id, a burst of notifications, gateway shutdown - against a real MCP server (the SDK's
// McpServer) behind a gateway-held session (older SSE transport upstream) and behind the proxy
// (streamable HTTP upstream), then checks: nothing in flight, one audit line per HTTP request sent.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { MemorySink, baseConfig, openSession, tempDir, writeKeys } from "./helpers.ts";
import { waitUntil } from "../support/index.ts";
import { type Peer, startPeer } from "./peer.ts";

const KEY = "prop-client-Qw3Er5Ty7Ui9Op";
let peer: Peer;

before(async () => {
  peer = await startPeer();
});
after(async () => {
  await peer?.close();
});

type Kind = "sse" | "streamable-http";
type Ev = "call" | "answer" | "abort" | "dup" | "timeout" | "upstream-close" | "notify";

interface Sent {
  /** Settles when the HTTP exchange is over (answered, refused or cut). */
  settled: Promise<number>;
  abort(): void;
}

function post(port: number, headers: Record<string, string>, body: unknown): Sent {
  let abort: () => void = () => {};
  const settled = new Promise<number>((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const r = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/mcp",
        method: "POST",
        headers: { ...headers, "content-type": "application/json", accept: "application/json, text/event-stream", "content-length": String(data.length) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(-1));
        res.on("close", () => resolve(res.statusCode ?? -1));
      },
    );
    r.on("error", () => resolve(-1));
    abort = () => {
      r.destroy();
      resolve(-2);
    };
    r.end(data);
  });
  return { settled, abort: () => abort() };
}

function initialize(port: number): Promise<string> {
  return openSession(`http://127.0.0.1:${port}/mcp`, {
    authorization: `Bearer ${KEY}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  });
}

async function runSequence(kind: Kind, events: Ev[], shutdown: boolean): Promise<void> {
  const dir = tempDir("prop-keys");
  writeKeys(dir, { prop: KEY });
  const sink = new MemorySink();
  const cfg = baseConfig({
    upstream: kind === "sse" ? { transport: "sse", url: `${peer.base}/sse` } : { transport: "streamable-http", url: `${peer.base}/mcp` },
    auth: { apiKeys: { dir } },
  });
  cfg.authorization.rules = [{ name: "prop", clients: { apiKeys: ["prop"] }, tools: { allow: ["hold", "stall"], deny: [] } }];
  cfg.limits.toolTimeouts = [{ tool: "stall", timeoutSeconds: 1 }];
  cfg.limits.maxConcurrentRequests = 64;
  cfg.limits.maxConcurrentPerClient = 64;
  const gw = new Gateway({ config: parseConfig(cfg), auditSink: sink });
  const { port } = await gw.start();
  let closed = false;
  try {
    await waitUntil(
      "gateway ready",
      () => gw.ready,
      (r) => r,
    );
    let sent = 0;
    const all: Sent[] = [];
    const open: { id: number; key: string; s: Sent }[] = [];
    let sid = await initialize(port);
    sent++;
    const h = () => ({ authorization: `Bearer ${KEY}`, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" });
    // Each request the gateway has seen moves this by one: admitted (in flight) or finished (audited).
    const progress = () => {
      gw.audit.flush();
      return gw.inflight + sink.records().filter((r) => r.client === "apikey:prop").length;
    };
    const send = (body: unknown) => {
      const s = post(port, h(), body);
      sent++;
      all.push(s);
      return s;
    };
    const sendSeen = async (body: unknown) => {
      const s = send(body);
      await waitUntil("the gateway sees the request", progress, (n) => n >= sent, 10_000, 25);
      return s;
    };
    let next = 1;
    for (const ev of events) {
      switch (ev) {
        case "call": {
          const id = next++;
          const key = `k${id}-${Math.random()}`;
          const before = peer.holding();
          open.push({ id, key, s: await sendSeen({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "hold", arguments: { key } } }) });
          // An abort or a duplicate is about a call the gateway admitted: wait until the server runs it.
          await waitUntil(
            "the call reaches the server",
            () => peer.holding(),
            (n) => n > before,
            10_000,
            25,
          );
          break;
        }
        case "answer": {
          const o = open.shift();
          if (o) peer.release(o.key);
          break;
        }
        case "abort": {
          const o = open.pop();
          o?.s.abort();
          break;
        }
        case "dup": {
          const o = open[0];
          if (o) await sendSeen({ jsonrpc: "2.0", id: o.id, method: "tools/call", params: { name: "hold", arguments: { key: o.key } } });
          break;
        }
        case "timeout":
          await sendSeen({ jsonrpc: "2.0", id: next++, method: "tools/call", params: { name: "stall", arguments: { key: `stall-${Math.random()}` } } });
          break;
        case "notify":
          await sendSeen({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "p", progress: 1 } });
          break;
        case "upstream-close":
          // Let the requests sent so far reach the server first, then the server drops every session.
          await new Promise((r) => setImmediate(r));
          await peer.closeSessions();
          sid = await initialize(port);
          sent++;
          break;
      }
      // Some events land while earlier requests are still on their way, some after.
      if (Math.random() < 0.5) await new Promise((r) => setTimeout(r, 5));
    }
    if (shutdown) {
      await gw.close();
      closed = true;
    } else peer.release();
    await Promise.all(all.map((s) => s.settled));
    await waitUntil(
      "no request in flight",
      () => gw.inflight,
      (n) => n === 0,
      10_000,
    );
    gw.audit.flush();
    const lines = await waitUntil(
      "one audit line per request",
      () => {
        gw.audit.flush();
        return sink.records().filter((r) => r.client === "apikey:prop").length;
      },
      (n) => n >= sent,
      10_000,
    );
    assert.equal(lines, sent, `audit lines for ${sent} requests (events ${events.join(",")}; shutdown ${shutdown})`);
    if (!closed) {
      // The slots really are free: a fresh call is admitted and answered.
      const s = post(port, h(), { jsonrpc: "2.0", id: 999, method: "tools/call", params: { name: "hold", arguments: { key: "final" } } });
      await waitUntil(
        "final call reaches the server",
        () => peer.holding(),
        (n) => n > 0,
        10_000,
      ).catch(() => undefined);
      peer.release();
      const status = await s.settled;
      assert.ok(status === 200 || status === 404, `a fresh call after the sequence got HTTP ${status}`);
    }
  } finally {
    if (!closed) await gw.close();
    peer.release();
  }
}

const events = fc.array(fc.constantFrom<Ev>("call", "call", "answer", "abort", "dup", "timeout", "upstream-close", "notify"), { minLength: 1, maxLength: 10 });

describe("every admitted request ends once: slot released, one audit line", () => {
  for (const kind of ["sse", "streamable-http"] as const) {
    test(`random endings, ${kind === "sse" ? "gateway-held session (SSE upstream)" : "proxied session (streamable HTTP upstream)"}`, async () => {
      await fc.assert(
        fc.asyncProperty(events, fc.boolean(), (evs, shutdown) => runSequence(kind, evs, shutdown)),
        { numRuns: 12, endOnFailure: true },
      );
    });
  }

  test("the named cases, each on its own: abort, duplicate id, upstream close, timeout, shutdown", async () => {
    for (const kind of ["sse", "streamable-http"] as const) {
      await runSequence(kind, ["call", "abort"], false);
      await runSequence(kind, ["call", "dup", "answer"], false);
      await runSequence(kind, ["call", "call", "upstream-close"], false);
      await runSequence(kind, ["timeout"], false);
      await runSequence(kind, ["call", "call", "abort"], true);
    }
  });
});
