// The shared limiter's store is a dependency that fails: a replica must neither fail open (no limit), nor
// fail every call, nor hang while Redis is down, slow to start, or gone mid-run. What a user sees: a pod
// that starts while Redis is down serves at once under its own bucket, joins the shared budget when Redis
// comes up, and keeps answering promptly (still limited) when Redis is killed under it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createClient } from "redis";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import type { RedisLimiter } from "../../gateway/src/ratelimit.ts";
import { freePort, waitFor, withDeadline } from "../support/index.ts";
import { MemorySink, type Toy, baseConfig, startToy, tempDir, writeKeys } from "./helpers.ts";
import { type Redis, startRedis } from "./redis-server.ts";

// One client per test, so each test starts with a full bucket wherever it lives.
const KEYS = {
  down: "outage-key-Hq7Wd2Lm9Zx4Cv8B",
  up: "outage-key-Pn3Ks8Yt5Rb1Gf6J",
  hung: "outage-key-Wc4Ej7Ua2Dn9Qs5L",
  killed: "outage-key-Zm6Tv1Ox8Bh3Ni7K",
};
let toy: Toy;
let gw: Gateway;
let url: string;
let adminPort: number;
let redisPort: number;
let redis: Redis | undefined;
let sink: MemorySink;
const logged: string[] = [];

before(async () => {
  toy = await startToy();
  redisPort = await freePort(); // nothing listens here yet
  const dir = tempDir("keys");
  writeKeys(dir, KEYS);
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
  cfg.authorization.rules = [{ name: "tenant", clients: { apiKeys: Object.keys(KEYS) }, tools: { allow: ["add"], deny: [] } }];
  // 6/min (one token per 10 s), burst 4: a refusal comes within a handful of calls wherever the budget lives.
  cfg.limits = { ...cfg.limits, perClient: { requestsPerMinute: 6, burst: 4 }, mode: "redis", replicas: 2, redisUrl: `redis://127.0.0.1:${redisPort}` };
  sink = new MemorySink();
  gw = new Gateway({ config: parseConfig(cfg), auditSink: sink });
  // The gateway logs JSON lines to stderr; keep the limiter's so the test can say what the operator would read.
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    const s = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    if (s.includes("redis limiter")) logged.push(s);
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
  const started = await withDeadline("the gateway starts while its Redis is down", gw.start(), 30_000);
  const port = started.port;
  adminPort = started.adminPort;
  url = `http://127.0.0.1:${port}/mcp`;
});

after(async () => {
  await gw?.close();
  await toy?.close();
  await redis?.kill();
});

const limiter = () => gw.limiter as RedisLimiter;

async function connect(who: keyof typeof KEYS): Promise<Client> {
  const c = new Client({ name: "redis-outage-test", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${KEYS[who]}` } } }));
  return c;
}

/** Calls until the first refusal (each call with a deadline: a call waiting on a dead Redis is the bug). */
async function callsUntilRefused(c: Client, max = 30): Promise<{ served: number; refusal: string }> {
  for (let served = 0; served < max; served++) {
    const err = await withDeadline(
      `call ${served + 1} answered (served or refused) without waiting on Redis`,
      c.callTool({ name: "add", arguments: { a: 1, b: 2 } }).then(
        () => undefined,
        (e: unknown) => String(e),
      ),
      15_000,
    );
    if (err) return { served, refusal: err };
  }
  return { served: max, refusal: "" };
}

/** The gauge the chart's McpBastionRateLimitNotShared alert reads, as Prometheus would scrape it. */
async function sharedGauge(): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return /^mcp_gateway_ratelimit_shared(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1];
}

async function bucketsInRedis(): Promise<string[]> {
  const c = createClient({ url: `redis://127.0.0.1:${redisPort}` });
  await c.connect();
  try {
    return await c.keys("mcp-bastion:*");
  } finally {
    await c.close();
  }
}

test("Redis down at start: the gateway serves at once and still limits each client locally", async () => {
  assert.equal(limiter().connected, false);
  const c = await connect("down"); // initialize takes a token
  const { served, refusal } = await callsUntilRefused(c);
  assert.match(refusal, /-32029.*rate limit exceeded for this client/, "the local bucket refuses: no fail-open while Redis is down");
  assert.ok(served >= 2 && served <= 6, `burst 4 (initialize + ${served} calls before the refusal, with what a slow machine refilled)`);
  assert.equal(limiter().shared, false);
  assert.ok(
    logged.some((l) => l.includes("redis limiter unavailable, enforcing locally")),
    "the log says the limit is enforced per replica",
  );
  assert.equal(await sharedGauge(), "0", "the metric says this replica enforces alone");
  await c.close();
});

test("Redis comes up: the gateway joins the shared budget without a restart", async () => {
  redis = await startRedis(redisPort);
  await waitFor("the limiter connected to the new Redis", () => limiter().connected, 60_000);
  const c = await connect("up");
  await waitFor(
    "a bucket of this client in Redis",
    async () => {
      await c.callTool({ name: "add", arguments: { a: 1, b: 1 } }).catch(() => undefined);
      return (await bucketsInRedis()).find((k) => k.endsWith("c:apikey:up"));
    },
    60_000,
    1000,
  );
  assert.equal(limiter().shared, true);
  assert.ok(
    logged.some((l) => l.includes("redis limiter available, enforcing the shared budget")),
    "the log says when the shared budget applies again",
  );
  assert.equal(await sharedGauge(), "1");
  await c.close();
});

/** "served", or the error the call was refused with (as text, to match its JSON-RPC code). */
function servedOrError(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "served",
    (e: unknown) => String(e),
  );
}

test("Redis hung (stopped, connections open): each call waits at most the limiter's timeout, then is decided locally", async () => {
  const c = await connect("hung");
  await c.callTool({ name: "add", arguments: { a: 1, b: 1 } }).catch(() => undefined);
  redis!.freeze();
  try {
    const t0 = performance.now();
    const first = await withDeadline("a call while Redis answers nothing", servedOrError(c.callTool({ name: "add", arguments: { a: 5, b: 5 } })), 15_000);
    assert.ok(first === "served" || /-32029/.test(first), `served or refused by the local bucket: ${first}`);
    assert.equal(limiter().shared, false, "the decision was local");
    // The next calls within REDIS_RETRY_AFTER_MS do not wait on Redis at all.
    await c.callTool({ name: "add", arguments: { a: 6, b: 6 } }).catch(() => undefined);
    const took = performance.now() - t0;
    assert.ok(took < 10_000, `two calls with Redis hung took ${Math.round(took)} ms (the take times out after 500 ms)`);
  } finally {
    redis!.thaw();
  }
  await waitFor("the limiter back on Redis after it answers again", () => limiter().connected, 60_000);
  await c.close();
});

test("Redis killed mid-run: calls keep being answered promptly and limited, none waits for Redis", async () => {
  const c = await connect("killed");
  await redis!.kill();
  redis = undefined;
  const { refusal } = await callsUntilRefused(c);
  assert.match(refusal, /-32029/, "still limited after Redis died");
  assert.equal(limiter().shared, false);
  const calls = toy.calls.add ?? 0;
  const again = await withDeadline(
    "a refused call answered while Redis is gone",
    servedOrError(c.callTool({ name: "add", arguments: { a: 3, b: 4 } })),
    15_000,
  );
  assert.match(again, /-32029/);
  assert.equal(toy.calls.add ?? 0, calls, "a refused call never reaches the server");
  assert.ok(
    sink.records().some((r) => r.outcome === "rate-limited" && r.tool === "add"),
    `the refusals are audited as rate-limited calls of add: ${sink.lines.slice(-2).join(" | ")}`,
  );
  await c.close();
});
