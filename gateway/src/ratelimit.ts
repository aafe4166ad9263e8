// Token buckets. Locally: one bucket per key in a Map (rates in divided mode are already divided by
// the replica count by the renderer). Shared: the same bucket kept in Redis by one atomic Lua script,
// so all replicas draw from one budget. The Redis client is imported only when mode is "redis".
import { Gauge, type Registry } from "prom-client";
import { log, errorKind } from "./log.ts";

export interface Take {
  ok: boolean;
  /** Seconds until one token is available (only when !ok). */
  retryAfter: number;
}

export interface Limiter {
  take(key: string, perMinute: number, burst: number): Take | Promise<Take>;
  close(): Promise<void>;
}

/** The answer of every granted take (two per tools/call): shared, callers only read it. */
const TAKEN: Take = Object.freeze({ ok: true, retryAfter: 0 });

interface Bucket {
  tokens: number;
  at: number;
}

export class LocalLimiter implements Limiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  #sweep: NodeJS.Timeout;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    // Full buckets carry no information: drop them so idle clients cost no memory.
    this.#sweep = setInterval(() => this.#dropIdle(), 60_000);
    this.#sweep.unref();
  }

  take(key: string, perMinute: number, burst: number): Take {
    const now = this.#now();
    const rate = perMinute / 60_000; // tokens per ms
    const cap = Math.max(1, burst);
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: cap, at: now };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(cap, b.tokens + (now - b.at) * rate);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return TAKEN;
    }
    return { ok: false, retryAfter: rate > 0 ? Math.ceil((1 - b.tokens) / rate / 1000) : 60 };
  }

  #dropIdle(): void {
    const now = this.#now();
    for (const [k, b] of this.#buckets) if (now - b.at > 600_000) this.#buckets.delete(k);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
  }
}

// KEYS[1] bucket; ARGV: rate (tokens/ms), capacity, ttl ms. Uses the Redis server's clock so replicas
// with skewed clocks agree. Returns {allowed, ms until next token}.
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil then tokens = cap; at = now end
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local ok = 0
local wait = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 else
  if rate > 0 then wait = math.ceil((1 - tokens) / rate) else wait = 60000 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {ok, wait}
`;

interface RedisLike {
  connect(): Promise<unknown>;
  quit?(): Promise<unknown>;
  close?(): Promise<unknown>;
  destroy?(): void;
  readonly isReady: boolean;
  scriptLoad(s: string): Promise<string>;
  evalSha(sha: string, opts: { keys: string[]; arguments: string[] }): Promise<unknown>;
  on(ev: string, fn: (e: unknown) => void): unknown;
}

/** A take that Redis has not answered in this time is decided locally (Redis hung, or the network to it). */
export const REDIS_TAKE_TIMEOUT_MS = 500;
/** After a failed or late answer, takes stay local this long before Redis is asked again. */
export const REDIS_RETRY_AFTER_MS = 1000;

class RedisTimeout extends Error {
  override name = "RedisTimeout";
}

/**
 * Rejects when `p` has not settled within `ms`. A late reply is still read by the client (its queue stays
 * in step with the connection) and then ignored.
 */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RedisTimeout()), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * The shared budget in Redis, with this replica's own bucket whenever Redis cannot answer: the gateway
 * never fails open (no limit) and never fails every call because the limiter's store is down. A replica
 * that starts while Redis is down serves at once under its local bucket and moves to the shared one when
 * Redis is ready; no command waits in an offline queue (a call would hang until Redis returned).
 */
export class RedisLimiter implements Limiter {
  readonly #client: RedisLike;
  readonly #prefix: string;
  readonly #fallback = new LocalLimiter();
  #sha = "";
  #localUntil = 0;
  /** Undefined until the first decision, so the first local one is logged too. */
  #shared: boolean | undefined;
  #closed = false;

  private constructor(client: RedisLike, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  /** Starts connecting and returns at once; takes are local until Redis is ready and has the script. */
  static async connect(url: string, prefix: string): Promise<RedisLimiter> {
    const { createClient } = await import("redis");
    const client = createClient({
      url,
      disableOfflineQueue: true,
      // A connection that went quiet without a reset (a partition) is noticed and replaced.
      pingInterval: 10_000,
      // node-redis applies this only while a command waits to be written; once written it waits for the
      // reply forever, hence the deadline around each take below.
      commandOptions: { timeout: REDIS_TAKE_TIMEOUT_MS },
      socket: { connectTimeout: 2000, reconnectStrategy: (n: number) => Math.min(100 * 2 ** n, 5000) },
    }) as unknown as RedisLike;
    const limiter = new RedisLimiter(client, prefix);
    client.on("error", (e) => log("warn", "redis limiter error", { error: errorKind(e) }));
    client.on("ready", () => void limiter.#loadScript());
    client.connect().catch((e: unknown) => {
      if (!limiter.#closed) log("warn", "redis limiter could not connect", { error: errorKind(e) });
    });
    return limiter;
  }

  /** Whether the next take will ask Redis (connected, script loaded, no recent failure). */
  get connected(): boolean {
    return this.#sha !== "" && this.#client.isReady && performance.now() >= this.#localUntil;
  }

  /** Whether the last decision came from the shared budget (false while Redis is down or not yet ready). */
  get shared(): boolean {
    return this.#shared === true;
  }

  async #loadScript(): Promise<void> {
    try {
      this.#sha = await this.#client.scriptLoad(SCRIPT);
    } catch (e) {
      log("warn", "redis limiter could not load its script", { error: errorKind(e) });
    }
  }

  #setShared(shared: boolean, e?: unknown): void {
    if (shared === this.#shared) return;
    this.#shared = shared;
    if (shared) log("info", "redis limiter available, enforcing the shared budget", {});
    else log("warn", "redis limiter unavailable, enforcing locally", { error: e === undefined ? "not connected" : errorKind(e) });
  }

  async take(key: string, perMinute: number, burst: number): Promise<Take> {
    if (!this.#sha || !this.#client.isReady || performance.now() < this.#localUntil) {
      this.#setShared(false);
      return this.#fallback.take(key, perMinute, burst);
    }
    const rate = perMinute / 60_000;
    const cap = Math.max(1, burst);
    const ttl = String(Math.ceil((cap / Math.max(rate, 1e-9)) * 2) + 1000);
    const run = () =>
      withDeadline(
        this.#client.evalSha(this.#sha, {
          keys: [`${this.#prefix}${key}`],
          arguments: [String(rate), String(cap), ttl],
        }) as Promise<[number, number]>,
        REDIS_TAKE_TIMEOUT_MS,
      );
    try {
      let r: [number, number];
      try {
        r = await run();
      } catch (e) {
        // A restarted Redis has forgotten the script: load it again once.
        if (!String((e as Error)?.message).includes("NOSCRIPT")) throw e;
        this.#sha = await withDeadline(this.#client.scriptLoad(SCRIPT), REDIS_TAKE_TIMEOUT_MS);
        r = await run();
      }
      this.#setShared(true);
      return r[0] === 1 ? { ok: true, retryAfter: 0 } : { ok: false, retryAfter: Math.max(1, Math.ceil(r[1] / 1000)) };
    } catch (e) {
      // Redis down, hung or slow: keep enforcing the limit in this replica rather than failing open or
      // failing every call, and give Redis a moment before the next call waits on it again.
      this.#localUntil = performance.now() + REDIS_RETRY_AFTER_MS;
      this.#setShared(false, e);
      return this.#fallback.take(key, perMinute, burst);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#fallback.close();
    try {
      if (this.#client.close) await this.#client.close();
      else if (this.#client.quit) await this.#client.quit();
    } catch {
      this.#client.destroy?.();
    }
  }
}

/**
 * mcp_gateway_ratelimit_shared: 1 while this replica's limits come from the shared Redis budget, 0 while it
 * enforces them on its own (Redis down, hung or not yet connected: the replicas together then admit up to
 * replicas x the configured rate). The chart's McpBastionRateLimitNotShared alert fires on 0.
 */
export function registerLimiterMetrics(registry: Registry, limiter: RedisLimiter): void {
  new Gauge({
    name: "mcp_gateway_ratelimit_shared",
    help: "1 while rate limits are enforced from the shared Redis budget, 0 while this replica enforces them alone (Redis unavailable)",
    registers: [registry],
    collect() {
      this.set(limiter.connected ? 1 : 0);
    },
  });
}
