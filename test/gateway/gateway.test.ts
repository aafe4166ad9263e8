// The gateway as users run it (`mcp-bastion gateway --config FILE`, a child process) in front of the
// real server-everything over streamable HTTP, exercised with the official SDK client.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { waitFor, waitUntil } from "../support/index.ts";
import { type Issuer, ROOT, baseConfig, startEverything, startIssuer, tempDir, type Child } from "./helpers.ts";

const ALICE = "alice-Zt3kq9VwPp2LmX8sRf4Y";
const BOB = "bob-Hs8Jd2KfLq9WmZ3xVb7N";
const CAROL = "carol-Qw4Er5Ty6Ui7Op8As9Df";

let upstream: Child;
let issuer: Issuer;
let gw: ChildProcess;
let base: string;
let admin: string;
let keysDir: string;
let stdout = "";
let stderr = "";

/** Kubernetes' Secret volume layout: NAME -> ..data/NAME, ..data -> ..<version>; rotation swaps ..data. */
function mountKeys(dir: string, version: string, keys: Record<string, string>): void {
  const v = join(dir, `..${version}`);
  mkdirSync(v);
  for (const [name, key] of Object.entries(keys)) writeFileSync(join(v, name), key);
  symlinkSync(`..${version}`, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const name of Object.keys(keys)) {
    try {
      symlinkSync(join("..data", name), join(dir, name));
    } catch {
      // already linked from the previous version
    }
  }
}

async function connect(headers: Record<string, string>): Promise<Client> {
  const c = new Client({ name: "gateway-test", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } }));
  return c;
}

async function rpc(body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body,
  });
}

before(async () => {
  [upstream, issuer] = await Promise.all([startEverything("streamableHttp"), startIssuer()]);
  keysDir = tempDir("keys");
  mountKeys(keysDir, "v1", { alice: ALICE, bob: BOB });
  const cfg = baseConfig({
    upstream: { transport: "streamable-http", url: `http://127.0.0.1:${upstream.port}/mcp` },
    auth: {
      apiKeys: { dir: keysDir },
      jwt: {
        issuer: issuer.url,
        audiences: ["mcp-test"],
        algorithms: ["RS256", "ES256"],
        maxTokenAgeSeconds: 3600,
        subjectClaim: "sub",
        groupsClaim: "groups",
      },
    },
  });
  cfg.authorization.rules.push(
    { name: "carol", clients: { apiKeys: ["carol"] }, tools: { allow: ["echo"], deny: [] } },
    { name: "readers", clients: { groups: ["readers"] }, tools: { allow: ["echo", "get-sum"], deny: ["get-sum"] } },
  );
  cfg.limits.perTool = [{ tool: "get-sum", requestsPerMinute: 60, burst: 2 }];
  cfg.limits.toolTimeouts = [{ tool: "trigger-long-running-operation", timeoutSeconds: 1 }];
  const file = join(tempDir("cfg"), "gateway.json");
  writeFileSync(file, JSON.stringify(cfg));
  gw = spawn(process.execPath, [join(ROOT, "cli/bin/mcp-bastion.js"), "gateway", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  gw.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  const ports = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start within 60 s: ${stderr}`)), 60_000);
    gw.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"gateway listening","port":(\d+),"adminPort":(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(t);
        resolve({ port: Number(m[1]), adminPort: Number(m[2]) });
      }
    });
    gw.on("exit", (c) => reject(new Error(`gateway exited ${c}: ${stderr}`)));
  });
  base = `http://127.0.0.1:${ports.port}`;
  admin = `http://127.0.0.1:${ports.adminPort}`;
  await waitUntil(
    "the gateway's /readyz to answer 200",
    async () => (await fetch(`${admin}/readyz`)).status,
    (s) => s === 200,
  );
});

after(async () => {
  gw?.kill("SIGTERM");
  await new Promise((r) => (gw && gw.exitCode === null ? gw.once("exit", r) : r(undefined)));
  await Promise.all([upstream?.stop(), issuer?.close()]);
  rmSync(keysDir, { recursive: true, force: true });
});

describe("authentication", () => {
  test("no credentials: 401 with a WWW-Authenticate pointing at the RFC 9728 metadata, and the SDK client cannot connect", async () => {
    const r = await rpc(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }));
    assert.equal(r.status, 401);
    const www = r.headers.get("www-authenticate") ?? "";
    assert.match(www, /^Bearer resource_metadata="http:\/\/127\.0\.0\.1\/\.well-known\/oauth-protected-resource\/mcp"/);
    const meta = (await (await fetch(`${base}/.well-known/oauth-protected-resource/mcp`)).json()) as Record<string, unknown>;
    assert.equal(meta.resource, "http://127.0.0.1/mcp");
    assert.deepEqual(meta.authorization_servers, [issuer.url]);
    await assert.rejects(connect({}), /-32001/);
  });

  test("a wrong API key is refused", async () => {
    await assert.rejects(connect({ authorization: "Bearer not-a-key-0000000000" }), /-32001/);
    await assert.rejects(connect({ "x-api-key": `${ALICE}x` }), /-32001/);
  });

  test("JWTs: expired, alg none and HS256 signed with the public key are refused; a valid one works", async () => {
    const expired = await issuer.sign(
      { sub: "dave", groups: ["readers"] },
      { iat: Math.floor(Date.now() / 1000) - 7200, expiresIn: Math.floor(Date.now() / 1000) - 3600 },
    );
    await assert.rejects(connect({ authorization: `Bearer ${expired}` }), /-32001/);

    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer.url, aud: "mcp-test", sub: "mallory", groups: ["readers"], iat: now, exp: now + 300 };
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
    await assert.rejects(connect({ authorization: `Bearer ${none}` }), /-32001/);

    const { createHmac } = await import("node:crypto");
    const head = `${b64({ alg: "HS256", typ: "JWT", kid: "k1" })}.${b64(claims)}`;
    const hs = `${head}.${createHmac("sha256", issuer.publicPem).update(head).digest("base64url")}`;
    const r = await rpc(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }), { authorization: `Bearer ${hs}` });
    assert.equal(r.status, 401);
    assert.match(r.headers.get("www-authenticate") ?? "", /error="invalid_token"/);

    const good = await issuer.sign({ sub: "dave", groups: ["readers"] });
    const c = await connect({ authorization: `Bearer ${good}` });
    // group "readers" allows echo and get-sum but denies get-sum: deny wins.
    assert.deepEqual((await c.listTools()).tools.map((t) => t.name).sort(), ["echo"]);
    await c.close();
  });

  test("keys from OIDC discovery keep serving while the issuer is unreachable", async () => {
    issuer.down = true;
    try {
      const token = await issuer.sign({ sub: "erin", groups: ["readers"] });
      const c = await connect({ authorization: `Bearer ${token}` });
      const r = await c.callTool({ name: "echo", arguments: { message: "offline issuer" } });
      assert.deepEqual(r.content, [{ type: "text", text: "Echo: offline issuer" }]);
      await c.close();
    } finally {
      issuer.down = false;
    }
  });
});

describe("authorization, validation, limits", () => {
  test("a good key lists only its allowed tools and can call them", async () => {
    const c = await connect({ authorization: `Bearer ${ALICE}` });
    assert.deepEqual((await c.listTools()).tools.map((t) => t.name).sort(), ["echo", "get-sum"]);
    const r = await c.callTool({ name: "echo", arguments: { message: "hello" } });
    assert.deepEqual(r.content, [{ type: "text", text: "Echo: hello" }]);
    // resources and prompts: alice has no rule for them, so default deny leaves the lists empty.
    assert.deepEqual((await c.listPrompts()).prompts, []);
    assert.deepEqual((await c.listResources()).resources, []);
    await c.close();
  });

  test("resources and prompts are filtered by rule and refused outside it", async () => {
    const c = await connect({ authorization: `Bearer ${BOB}` });
    const uris = (await c.listResources()).resources.map((r) => r.uri);
    assert.ok(uris.length > 0);
    assert.ok(
      uris.every((u) => u.startsWith("demo://resource/static/document/")),
      uris.join(","),
    );
    assert.ok((await c.listPrompts()).prompts.length > 0);
    await assert.rejects(c.readResource({ uri: "demo://resource/dynamic/text/1" }), /-32003.*not allowed/);
    await c.close();
  });

  test("a forbidden tool and arguments that break the input schema are refused by the gateway", async () => {
    const c = await connect({ authorization: `Bearer ${ALICE}` });
    await assert.rejects(c.callTool({ name: "get-env", arguments: {} }), (e: Error) => {
      assert.match(e.message, /-32003/);
      assert.match(e.message, /tool "get-env" is not allowed/);
      return true;
    });
    await assert.rejects(
      c.callTool({ name: "echo", arguments: { message: 42 } }),
      /-32602.*invalid arguments for tool "echo": argument message must be string/,
    );
    await assert.rejects(c.callTool({ name: "echo", arguments: {} }), /-32602.*must have required property 'message'/);
    await c.close();
  });

  test("the per-tool rate limit trips with 429 + Retry-After and recovers", async () => {
    // get-sum allows a burst of 2 and then one call per second. A loaded machine may take longer than a
    // second between two calls, so the test does not count on the third call being refused: it calls until
    // refused and checks that no more calls got through than the burst plus what the elapsed time refilled.
    const c = await connect({ authorization: `Bearer ${ALICE}` });
    const sid = (c.transport as StreamableHTTPClientTransport).sessionId!;
    const t0 = Date.now();
    let passed = 0;
    let refusal: unknown;
    while (passed < 30) {
      const err = await c.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err) {
        refusal = err;
        break;
      }
      passed++;
    }
    const refilled = Math.floor((Date.now() - t0) / 1000) + 1;
    assert.match(String(refusal), /-32029.*rate limit exceeded for tool \\"get-sum\\"; retry after 1 s/);
    assert.ok(passed >= 2, `the burst of 2 is served before any refusal (served ${passed})`);
    assert.ok(passed <= 2 + refilled, `at most burst + 1/s got through: ${passed} calls in ${refilled} s`);
    // The same refusal on the wire: HTTP 429 with Retry-After (call until refused, for the same reason).
    const raw = await waitUntil(
      "a raw get-sum call to be refused with 429",
      async () => {
        const r = await rpc(JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "get-sum", arguments: { a: 1, b: 1 } } }), {
          authorization: `Bearer ${ALICE}`,
          "mcp-session-id": sid,
          "mcp-protocol-version": "2025-06-18",
        });
        if (r.status !== 429) await r.text();
        return r;
      },
      (r) => r.status === 429,
      30_000,
      0,
    );
    assert.equal(raw.headers.get("retry-after"), "1");
    assert.equal(((await raw.json()) as { error: { code: number } }).error.code, -32029);
    // echo has no tool limit: still fine meanwhile.
    await c.callTool({ name: "echo", arguments: { message: "x" } });
    // 60/min = one token per second: get-sum works again once the bucket refilled.
    const r = await waitFor("get-sum to be served again after the refill", () => c.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } }), 30_000, 500);
    assert.match(JSON.stringify(r.content), /5/);
    await c.close();
  });

  test("a tool timeout answers with a JSON-RPC error", async () => {
    const c = await connect({ authorization: `Bearer ${BOB}` });
    const t0 = Date.now();
    // The operation takes 60 s and its tool timeout is 1 s: an answer well before 60 s (30 s leaves room for
    // any load) can only come from the gateway cutting it.
    await assert.rejects(c.callTool({ name: "trigger-long-running-operation", arguments: { duration: 60, steps: 1 } }), /-32008.*timed out after 1 s/);
    assert.ok(Date.now() - t0 < 30_000, `cut at the tool timeout, not after the 60 s operation (took ${Date.now() - t0} ms)`);
    await c.close();
  });

  test("a session belongs to the client that created it", async () => {
    const a = await connect({ authorization: `Bearer ${ALICE}` });
    const sid = (a.transport as StreamableHTTPClientTransport).sessionId!;
    const r = await rpc(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }), {
      authorization: `Bearer ${BOB}`,
      "mcp-session-id": sid,
      "mcp-protocol-version": "2025-06-18",
    });
    assert.equal(r.status, 404);
    assert.doesNotMatch(await r.text(), /echo/);
    await a.close();
  });

  test("malformed JSON, batches and oversized bodies get sanitized errors", async () => {
    const h = { authorization: `Bearer ${ALICE}` };
    const bad = await rpc("{nope", h);
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, -32700);
    assert.doesNotMatch(body.error.message, /at |\/work|node_modules|SyntaxError/);
    const batch = await rpc("[]", h);
    assert.equal(((await batch.json()) as { error: { code: number } }).error.code, -32600);
    const big = await rpc(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(70_000) } }), h);
    assert.equal(big.status, 413);
  });
});

describe("operations", () => {
  test("a rotated key works and the removed one stops working, without restart", async () => {
    await assert.rejects(connect({ authorization: `Bearer ${CAROL}` }), /-32001/);
    mountKeys(keysDir, "v2", { alice: ALICE, carol: CAROL });
    rmSync(join(keysDir, "bob")); // kubelet removes the link of a key that left the Secret
    const ping = async (key: string) => (await rpc('{"jsonrpc":"2.0","id":1,"method":"ping"}', { authorization: `Bearer ${key}` })).status;
    await waitUntil(
      "the new key (carol) to be accepted",
      () => ping(CAROL),
      (s) => s !== 401,
    );
    const c = await connect({ authorization: `Bearer ${CAROL}` });
    assert.deepEqual(
      (await c.listTools()).tools.map((t) => t.name),
      ["echo"],
    );
    await c.close();
    await waitUntil(
      "the removed key (bob) to be refused",
      () => ping(BOB),
      (s) => s === 401,
    );
  });

  test("every call leaves an audit line with redacted arguments, and no secret is in any output", async () => {
    const c = await connect({ authorization: `Bearer ${ALICE}` });
    const token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    await c.callTool({ name: "echo", arguments: { message: token } });
    await c.close();
    // The audit line is written by another process: wait until it arrived (stdout keeps the order, so
    // every earlier line is there too).
    // (Match that line itself: other lines may carry [REDACTED] too.)
    await waitFor("the audit line of the redacted echo call on the gateway's stdout", () =>
      /"tools\/call"[^\n]*"arguments":\{"message":"\[REDACTED\]"\}[^\n]*\n/.test(stdout),
    );
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const calls = lines.filter((l) => l.method === "tools/call");
    assert.ok(calls.length >= 8, `audit lines for calls: ${calls.length}`);
    for (const l of lines) for (const k of ["time", "client", "source", "method", "outcome", "latencyMs"]) assert.ok(k in l, `audit line without ${k}`);
    const mine = calls.find((l) => JSON.stringify(l.arguments).includes("REDACTED"));
    assert.ok(mine, "the token-like argument is redacted");
    assert.equal(mine.client, "apikey:alice");
    assert.equal(mine.tool, "echo");
    assert.ok(calls.some((l) => l.outcome === "denied" && l.tool === "get-env"));
    assert.ok(calls.some((l) => l.outcome === "rate-limited" && l.tool === "get-sum"));
    assert.ok(calls.some((l) => l.outcome === "invalid" && l.tool === "echo"));
    assert.ok(lines.some((l) => l.outcome === "unauthenticated"));
    const all = stdout + stderr;
    for (const secret of [ALICE, BOB, CAROL, token, "eyJ"]) assert.ok(!all.includes(secret), `output contains ${secret.slice(0, 6)}…`);
    assert.doesNotMatch(all, /\n\s+at /, "no stack trace");
  });

  test("/metrics, /healthz and /readyz are on the admin port only", async () => {
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
    assert.equal((await fetch(`${admin}/readyz`)).status, 200);
    const m = await (await fetch(`${admin}/metrics`)).text();
    assert.match(m, /mcp_gateway_auth_failures_total\{reason="invalid-key"[^}]*\} [1-9]/);
    assert.match(m, /mcp_gateway_auth_failures_total\{reason="algorithm"[^}]*\} [1-9]/);
    assert.match(m, /mcp_gateway_rate_limited_total\{scope="tool"[^}]*\} [1-9]/);
    assert.match(m, /mcp_gateway_denied_total\{kind="tools"[^}]*\} [1-9]/);
    assert.match(m, /mcp_gateway_request_duration_seconds_bucket\{[^}]*method="tools\/call"/);
    assert.match(m, /mcp_gateway_phase_seconds_total\{phase="auth"/);
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ALICE}` } })).status, 404);
  });
});
