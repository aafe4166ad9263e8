// Issue 13, the caller's identity for a stdio server: `mcp-bastion stdio-bridge --identity-env FACT=NAME`
// in front of server-everything in stdio mode (its get-env tool reports the process's environment), the
// gateway telling the bridge who each session belongs to. Each session's process gets its own client's
// identity (and a signed JWT that verifies against the gateway's JWKS); variables of those names in the
// bridge's own environment never reach a process; the client's own key never does; another client cannot
// use the session; a connection without the gateway's preamble gets no process; reserved names are refused.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { identityPreamble } from "../../gateway/src/bridge.ts";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { freePort, waitUntil, withDeadline } from "../support/index.ts";
import { EVERYTHING, MemorySink, ROOT, baseConfig, tempDir, writeKeys } from "./helpers.ts";

const ALICE = "alice-Hq3Rt6Yu9Io2Pa5Sd8Fg";
const BOB = "bob-Zx1Cv2Bn3Mq4Wl5Ek6Rj";
const CLI = join(ROOT, "cli/bin/mcp-bastion.js");
const NAMES = { client: "MCP_CLIENT", subject: "MCP_SUBJECT", groups: "MCP_GROUPS", source: "MCP_SOURCE", token: "MCP_IDENTITY_TOKEN" };
let bridge: ChildProcess;
let bridgePort: number;
let bridgeLog = "";
let gw: Gateway;
let base: string;
let adminPort: number;

async function streamable(key: string, extra: Record<string, string> = {}): Promise<Client> {
  const c = new Client({ name: "authz-stdio", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}`, ...extra } } }));
  return c;
}

/** The environment of the process behind this client's session, as server-everything's get-env reports it. */
async function envOf(c: Client): Promise<Record<string, string>> {
  const r = (await c.callTool({ name: "get-env", arguments: {} })) as { content: { type: string; text: string }[] };
  return JSON.parse(r.content[0]!.text) as Record<string, string>;
}

function sessionsStarted(): number {
  return bridgeLog.match(/"msg":"session started"/g)?.length ?? 0;
}

before(async () => {
  bridgePort = await freePort();
  const flags = Object.entries(NAMES).flatMap(([fact, name]) => ["--identity-env", `${fact}=${name}`]);
  bridge = spawn(
    process.execPath,
    [CLI, "stdio-bridge", "--port", String(bridgePort), "--max-sessions", "6", ...flags, "--", process.execPath, EVERYTHING, "stdio"],
    {
      stdio: ["ignore", "ignore", "pipe"],
      // The container's own environment has variables of those names: they must never reach a process as if verified.
      env: { ...process.env, MCP_SUBJECT: "forged-subject", MCP_GROUPS: "forged-admins", MCP_IDENTITY_TOKEN: "forged-token" },
    },
  );
  const listening = new Promise<void>((resolve, reject) => {
    bridge.stderr!.on("data", (d: Buffer) => {
      bridgeLog += d.toString();
      if (bridgeLog.includes('"msg":"listening"')) resolve();
    });
    bridge.on("exit", (c) => reject(new Error(`bridge exited ${c}: ${bridgeLog}`)));
  });
  await withDeadline("the stdio bridge to log that it listens", listening, 60_000, () => bridgeLog);
  const dir = tempDir("keys");
  writeKeys(dir, { alice: ALICE, bob: BOB });
  const cfg = baseConfig({ upstream: { transport: "stdio", bridge: { host: "127.0.0.1", port: bridgePort } }, auth: { apiKeys: { dir } } });
  cfg.authorization!.rules = [{ name: "everyone", clients: { apiKeys: ["alice", "bob"] }, tools: { allow: ["get-env", "echo"], deny: [] } }];
  cfg.authorization!.identity = { headers: {}, signedJwt: { audience: "stdio-everything", ttlSeconds: 300 }, env: NAMES };
  gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const ports = await gw.start();
  adminPort = ports.adminPort;
  base = `http://127.0.0.1:${ports.port}`;
  await waitUntil(
    "the gateway in front of the bridge to be ready (tool catalog loaded through a preamble-carrying session)",
    () => gw.ready,
    (r) => r,
    60_000,
  );
});

after(async () => {
  await gw?.close();
  bridge?.kill("SIGTERM");
  await new Promise((r) => (bridge && bridge.exitCode === null ? bridge.once("exit", r) : r(undefined)));
});

describe("the caller's identity in a stdio server's environment", () => {
  test("each session's process carries its own client's verified identity and a JWT it can verify; never the client's key or the container's forged values", async () => {
    const a = await streamable(ALICE, { "x-mcp-subject": "root" });
    const b = await streamable(BOB);
    try {
      const [ea, eb] = await Promise.all([envOf(a), envOf(b)]);
      assert.equal(ea.MCP_CLIENT, "apikey:alice");
      assert.equal(ea.MCP_SUBJECT, "alice");
      assert.equal(ea.MCP_SOURCE, "127.0.0.1");
      assert.equal(eb.MCP_CLIENT, "apikey:bob");
      assert.equal(eb.MCP_SUBJECT, "bob");
      // An API-key client has no groups: the container's MCP_GROUPS is removed, not passed on.
      assert.equal(ea.MCP_GROUPS, undefined);
      for (const e of [ea, eb]) {
        const all = JSON.stringify(e);
        assert.ok(!all.includes(ALICE) && !all.includes(BOB), "a client's own key reached a server process");
        assert.ok(!all.includes("forged"), `a forged value from the container's environment reached a process: ${all.match(/"[A-Z_]*":"forged[^"]*"/)}`);
      }
      const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${adminPort}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(ea.MCP_IDENTITY_TOKEN!, jwks, { audience: "stdio-everything", issuer: "mcp-bastion-gateway" });
      assert.equal(payload.sub, "alice");
      assert.equal(payload.client, "apikey:alice");
      assert.equal((await jwtVerify(eb.MCP_IDENTITY_TOKEN!, jwks, { audience: "stdio-everything" })).payload.sub, "bob");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("another client presenting a session's id never reaches its process", async () => {
    const a = await streamable(ALICE);
    try {
      await envOf(a);
      const sid = (a.transport as StreamableHTTPClientTransport).sessionId!;
      const started = sessionsStarted();
      const res = await fetch(`${base}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${BOB}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": sid,
          "mcp-protocol-version": "2025-06-18",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "get-env", arguments: {} } }),
      });
      const body = await res.text();
      assert.equal(res.status, 404, `bob used alice's session: ${res.status} ${body.slice(0, 200)}`);
      assert.ok(!body.includes("MCP_CLIENT"), "bob saw alice's process environment");
      assert.equal(sessionsStarted(), started, "no process was started for the refused request");
    } finally {
      await a.close();
    }
  });

  test("a client on the older HTTP+SSE transport gets a process with its identity and a signed token too", async () => {
    const h = { authorization: `Bearer ${BOB}` };
    const c = new Client({ name: "authz-stdio-sse", version: "1.0.0" });
    await c.connect(
      new SSEClientTransport(new URL(`${base}/sse`), {
        requestInit: { headers: h },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...h } }) },
      }),
    );
    try {
      const e = await envOf(c);
      assert.equal(e.MCP_CLIENT, "apikey:bob");
      const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${adminPort}/.well-known/jwks.json`));
      assert.equal((await jwtVerify(e.MCP_IDENTITY_TOKEN ?? "missing", jwks, { audience: "stdio-everything" })).payload.sub, "bob");
    } finally {
      await c.close();
    }
  });

  test("a connection to the bridge without the gateway's preamble, or with a fact it does not know, gets no process", async () => {
    const refusedBefore = bridgeLog.match(/refusing connection: no valid identity preamble/g)?.length ?? 0;
    const started = sessionsStarted();
    const tryLine = (line: string) =>
      new Promise<string>((resolve) => {
        const s = tcpConnect({ host: "127.0.0.1", port: bridgePort });
        let got = "";
        s.setEncoding("utf8");
        s.on("data", (d: string) => (got += d));
        s.on("error", () => undefined);
        s.on("close", () => resolve(got));
        s.write(line);
      });
    const initialize = `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "direct", version: "1" } } })}\n`;
    // A JSON-RPC message first (what a caller without the gateway would send), then a preamble naming PATH.
    assert.equal(await tryLine(initialize), "", "the bridge answered a connection without a preamble");
    assert.equal(
      await tryLine(`${JSON.stringify({ mcpBastionIdentity: { PATH: "/opt/elsewhere" } })}\n${initialize}`),
      "",
      "the bridge served a preamble with an unknown fact",
    );
    await waitUntil(
      "the bridge to log both refusals",
      () => (bridgeLog.match(/refusing connection: no valid identity preamble/g)?.length ?? 0) - refusedBefore,
      (n) => n >= 2,
      30_000,
    );
    assert.equal(sessionsStarted(), started, "a refused connection started a process");
    // The same bridge serves a connection that starts with a preamble (the gateway's way).
    const answer = await new Promise<string>((resolve) => {
      const s = tcpConnect({ host: "127.0.0.1", port: bridgePort });
      let got = "";
      s.setEncoding("utf8");
      s.on("data", (d: string) => {
        got += d;
        if (got.includes("\n")) s.destroy();
      });
      s.on("close", () => resolve(got));
      s.write(identityPreamble({ subject: "direct" }) + initialize);
    });
    assert.match(answer, /"protocolVersion"/);
  });

  test("the bridge refuses identity variable names that change how programs start", () => {
    for (const bad of ["subject=LD_PRELOAD", "client=PATH", "token=NODE_OPTIONS", "shell=MCP_X"]) {
      const r = spawnSync(process.execPath, [CLI, "stdio-bridge", "--port", "0", "--identity-env", bad, "--", "true"], { encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 2, `--identity-env ${bad} was accepted: ${r.stderr}`);
      assert.match(r.stderr, /--identity-env/);
    }
  });
});
