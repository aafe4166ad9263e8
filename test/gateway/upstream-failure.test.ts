// A gateway-held session (a client on the older HTTP+SSE transport in front of a streamable-HTTP server)
// whose server goes away: the client's next call gets the gateway's clean JSON-RPC error "upstream
// unavailable" at once, never a hang until the request timeout and never the server's internals.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { waitFor } from "../support/index.ts";
import { MemorySink, baseConfig, startToy, tempDir, type Toy, writeKeys } from "./helpers.ts";

const ALICE = "alice-Ut6Yh3Jk9Lm2Nb5Vc8Xz";
let toy: Toy;
let gw: Gateway;
let url: string;

before(async () => {
  toy = await startToy();
  const dir = tempDir("keys");
  writeKeys(dir, { alice: ALICE });
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
  cfg.authorization = { rules: [{ name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["add"], deny: [] } }] };
  // A request timeout far beyond the test's own patience: an answer that only came from it would fail the test.
  cfg.limits = { ...cfg.limits, requestTimeoutSeconds: 600 };
  gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const { port } = await gw.start();
  url = `http://127.0.0.1:${port}`;
  await waitFor("the gateway to be ready", () => gw.ready);
});

after(async () => {
  await gw?.close();
  await toy?.close().catch(() => undefined);
});

test("a server that went away: the held session's next call is answered with upstream unavailable, not left to time out", async () => {
  const h = { authorization: `Bearer ${ALICE}` };
  const c = new Client({ name: "upstream-failure", version: "1.0.0" });
  await c.connect(
    new SSEClientTransport(new URL("/sse", url), {
      requestInit: { headers: h },
      eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...h } }) },
    }),
  );
  try {
    const ok = await c.callTool({ name: "add", arguments: { a: 2, b: 3 } });
    assert.deepEqual(ok.content, [{ type: "text", text: "5" }]);
    await toy.close(); // the server is gone: connections refused from now on
    // The SDK's own timeout (120 s) is the test's patience; the gateway's request timeout is 600 s.
    const err = await c.callTool({ name: "add", arguments: { a: 1, b: 1 } }, undefined, { timeout: 120_000 }).then(
      () => assert.fail("a call to a server that is gone succeeded"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof McpError, `expected a JSON-RPC error, got ${String(err)}`);
    assert.equal(err.code, -32002);
    assert.match(err.message, /upstream unavailable/);
    assert.doesNotMatch(JSON.stringify(err.data ?? {}), /ECONNREFUSED|127\.0\.0\.1|at .*\.ts/, "no internals in the error");
  } finally {
    await c.close();
  }
});
