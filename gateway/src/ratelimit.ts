// Token buckets. Locally: one bucket per key in a Map (rates in divided mode are already divided by
// the replica count by the renderer). Shared: the same bucket kept in Redis by one atomic Lua script,
// so all replicas draw from one budget. The Redis client is imported only when mode is "redis".
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
      return { ok: true, retryAfter: 0 };
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
  scriptLoad(s: string): Promise<string>;
  evalSha(sha: string, opts: { keys: string[]; arguments: string[] }): Promise<unknown>;
  on(ev: string, fn: (e: unknown) => void): unknown;
}

export class RedisLimiter implements Limiter {
  readonly #client: RedisLike;
  readonly #prefix: string;
  readonly #fallback = new LocalLimiter();
  #sha = "";

  private constructor(client: RedisLike, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  static async connect(url: string, prefix: string): Promise<RedisLimiter> {
    const { createClient } = await import("redis");
    const client = createClient({
      url,
      socket: { connectTimeout: 2000, reconnectStrategy: (n: number) => Math.min(100 * 2 ** n, 5000) },
    }) as unknown as RedisLike;
    client.on("error", (e) => log("warn", "redis limiter error", { error: errorKind(e) }));
    const limiter = new RedisLimiter(client, prefix);
    await client.connect();
    limiter.#sha = await client.scriptLoad(SCRIPT);
    return limiter;
  }

  async take(key: string, perMinute: number, burst: number): Promise<Take> {
    const rate = perMinute / 60_000;
    const cap = Math.max(1, burst);
    const ttl = String(Math.ceil((cap / Math.max(rate, 1e-9)) * 2) + 1000);
    const run = async () =>
      (await this.#client.evalSha(this.#sha, {
        keys: [`${this.#prefix}${key}`],
        arguments: [String(rate), String(cap), ttl],
      })) as [number, number];
    try {
      let r: [number, number];
      try {
        r = await run();
      } catch (e) {
        // A restarted Redis has forgotten the script: load it again once.
        if (!String((e as Error)?.message).includes("NOSCRIPT")) throw e;
        this.#sha = await this.#client.scriptLoad(SCRIPT);
        r = await run();
      }
      return r[0] === 1 ? { ok: true, retryAfter: 0 } : { ok: false, retryAfter: Math.max(1, Math.ceil(r[1] / 1000)) };
    } catch (e) {
      // Redis down: keep enforcing the limit in this replica rather than failing open or failing every call.
      log("warn", "redis limiter unavailable, enforcing locally", { error: errorKind(e) });
      return this.#fallback.take(key, perMinute, burst);
    }
  }

  async close(): Promise<void> {
    await this.#fallback.close();
    try {
      if (this.#client.close) await this.#client.close();
      else if (this.#client.quit) await this.#client.quit();
    } catch {
      this.#client.destroy?.();
    }
  }
}
