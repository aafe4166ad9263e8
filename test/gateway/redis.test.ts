// Limits hold across replicas: two gateways sharing a Redis limiter (a real redis-server from Debian's
// packages, unpacked by hack/deps-gateway.sh) give a client one budget, not one per replica.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import type { RedisLimiter } from "../../gateway/src/ratelimit.ts";
import { waitFor } from "../support/index.ts";
import { MemorySink, type Toy, baseConfig, startToy, tempDir, writeKeys } from "./helpers.ts";
import { type Redis, startRedis } from "./redis-server.ts";

const KEY = "tenant-key-Rt5Yu8Io2Pa4Sd6F";
let redis: Redis;
let redisPort: number;
let toy: Toy;
const gws: Gateway[] = [];
const urls: string[] = [];

before(async () => {
  redis = await startRedis();
  redisPort = redis.port;
  toy = await startToy();
  for (let i = 0; i < 2; i++) {
    const dir = tempDir("keys");
    writeKeys(dir, { tenant: KEY });
    const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
    cfg.authorization.rules = [{ name: "tenant", clients: { apiKeys: ["tenant"] }, tools: { allow: ["add"], deny: [] } }];
    cfg.limits = { ...cfg.limits, perClient: { requestsPerMinute: 6, burst: 5 }, mode: "redis", replicas: 2, redisUrl: `redis://127.0.0.1:${redisPort}` };
    const gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
    const { port } = await gw.start();
    gws.push(gw);
    urls.push(`http://127.0.0.1:${port}/mcp`);
  }
  // The gateways listen at once and decide locally until their Redis client is ready.
  for (const gw of gws) await waitFor("the gateway's Redis limiter connected", () => (gw.limiter as RedisLimiter).connected || undefined);
});

after(async () => {
  await Promise.all(gws.map((g) => g.close()));
  await toy?.close();
  await redis?.kill();
});

async function connect(url: string): Promise<Client> {
  const c = new Client({ name: "redis-test", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${KEY}` } } }));
  return c;
}

test("two replicas draw from one shared bucket per client", async () => {
  // 6/min (one token per 10 s), burst 5; initialize costs a token. With one budget per replica the two
  // replicas together would serve 10 requests; with the shared bucket they serve 5, plus what the elapsed
  // time refilled (a loaded machine may be slow, so the bound counts the refill instead of assuming none).
  const t0 = Date.now();
  const a = await connect(urls[0]!); // initialize: 1 token
  const b = await connect(urls[1]!); // initialize: 2 tokens
  const callsBefore = toy.calls.add ?? 0;
  let served = 0;
  // Alternate between the replicas until one refuses, then call the other until it refuses too.
  const untilRefused = async (clients: Client[]): Promise<unknown> => {
    for (let i = 0; i < 30; i++) {
      const err = await clients[i % clients.length]!.callTool({ name: "add", arguments: { a: 1, b: 1 } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err) return err;
      served++;
    }
    return undefined;
  };
  const first = await untilRefused([a, b]);
  assert.match(String(first), /-32029.*rate limit exceeded for this client; retry after \d+ s/);
  const firstIsA = served % 2 === 0;
  const second = await untilRefused([firstIsA ? b : a]);
  assert.match(String(second), /-32029/, "the other replica refuses too");
  const refill = Math.ceil((Date.now() - t0) / 10_000);
  assert.ok(2 + served >= 5, `the burst of 5 is served before a refusal (initialize x2 + ${served} calls)`);
  assert.ok(2 + served <= 5 + refill, `one budget for both replicas: initialize x2 + ${served} calls with ${refill} tokens refilled`);
  assert.equal(toy.calls.add, callsBefore + served, "refused calls never reach the server");
  await Promise.all([a.close(), b.close()]);
});

test("after Redis forgets the script (SCRIPT FLUSH, as on a restart) the shared limiter keeps working", async () => {
  const { createClient } = await import("redis");
  const admin = createClient({ url: `redis://127.0.0.1:${redisPort}` });
  await admin.connect();
  await admin.sendCommand(["SCRIPT", "FLUSH"]);
  await admin.sendCommand(["FLUSHALL"]);
  await admin.close();
  const a = await connect(urls[0]!);
  await a.callTool({ name: "add", arguments: { a: 2, b: 2 } });
  const keys = await (async () => {
    const c = createClient({ url: `redis://127.0.0.1:${redisPort}` });
    await c.connect();
    const k = await c.keys("mcp-bastion:*");
    await c.close();
    return k;
  })();
  assert.ok(
    keys.some((k) => k.endsWith("c:apikey:tenant")),
    `the bucket lives in Redis again: ${keys.join(",")}`,
  );
  await a.close();
});
