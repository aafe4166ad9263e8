// Sharing equal immutable values between cached objects. Objects parsed from the API server are all
// distinct, even when thousands of them carry the same JSON (the same checklist item on every McpServer's
// status, the same "apps/v1" on every Deployment): a cache of 10,000 servers then holds 10,000 copies.
// A pool hands out one frozen instance per distinct value, so equal values cost their memory once.
// Frozen, because a shared value that one reader changed would change under every other object.

/** A bounded pool of frozen, shared JSON values, keyed by their JSON text. */
export class SharedValues {
  private readonly pool = new Map<string, unknown>();
  private readonly strings = new Map<string, string>();
  private readonly limit: number;

  /** `limit`: distinct values kept; when full the pool starts over (values handed out stay valid, only sharing restarts). */
  constructor(limit = 20_000) {
    this.limit = limit;
  }

  /** The shared, deeply frozen instance equal to `value` (JSON data: no functions, no cycles). */
  share<T>(value: T): T {
    if (value === null || typeof value !== "object") return value;
    const key = JSON.stringify(value);
    const hit = this.pool.get(key);
    if (hit !== undefined) return hit as T;
    if (this.pool.size >= this.limit) this.pool.clear();
    const frozen = deepFreeze(value);
    this.pool.set(key, frozen);
    return frozen;
  }

  /** Each element shared on its own (arrays whose elements repeat across objects more than whole arrays do). */
  shareEach<T>(values: readonly T[]): T[] {
    return values.map((v) => this.share(v));
  }

  /** A string equal to `s`, the same instance every time (for the few strings every object repeats). */
  string(s: string): string {
    const hit = this.strings.get(s);
    if (hit !== undefined) return hit;
    if (this.strings.size >= this.limit) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }

  get size(): number {
    return this.pool.size + this.strings.size;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
