// The exchanges in flight (with a deadline each): two parallel arrays instead of a Map or Set.
//
// Why not a Map: an entry is added and removed on every request, so V8 rehashes the Map's table every
// few requests, and the table it leaves behind points to its successor (V8's OrderedHashTable keeps
// that link for live iterators). Once one such table is in the old generation (a mark-compact promotes
// whatever is young), the scavenger treats its pointers as roots until the next mark-compact, dead or
// not: the successor survives, is promoted, points to the next one, and with the tables go the
// exchanges they held and everything those reach (request, response, parsed body, upstream request).
// Measured with --trace-gc-nvp at 8 connections: ~500 KB promoted per scavenge in that state against
// ~10 KB without it, and allocation sampling that keeps objects collected by mark-compacts shows whole
// request graphs (~6 KB per request) among the promoted. Arrays leave no chain: a grown backing store
// is not pointed to by the one it replaced, and a removed slot is cleared.

/** A set of keys, each with a number (a deadline), small (bounded by the concurrency limit). */
export class InFlight<K extends object> {
  readonly #keys: K[] = [];
  readonly #values: number[] = [];

  get size(): number {
    return this.#keys.length;
  }

  has(k: K): boolean {
    return this.#keys.indexOf(k) >= 0;
  }

  set(k: K, value = 0): void {
    const i = this.#keys.indexOf(k);
    if (i >= 0) this.#values[i] = value;
    else {
      this.#keys.push(k);
      this.#values.push(value);
    }
  }

  delete(k: K): boolean {
    const keys = this.#keys;
    const i = keys.indexOf(k);
    if (i < 0) return false;
    const last = keys.length - 1;
    if (i !== last) {
      keys[i] = keys[last]!;
      this.#values[i] = this.#values[last]!;
    }
    keys.pop();
    this.#values.pop();
    return true;
  }

  /** A copy of the keys (callers may delete while they walk it). */
  keys(): K[] {
    return this.#keys.slice();
  }

  /** Removes and returns the keys whose value is at most `now` (deadlines that passed). */
  takeExpired(now: number): K[] {
    const out: K[] = [];
    for (let i = this.#keys.length - 1; i >= 0; i--) if (this.#values[i]! <= now) out.push(this.#keys[i]!);
    for (const k of out) this.delete(k);
    return out;
  }
}

/**
 * Keys with a deadline (performance.now() ms), checked by one interval every `everyMs` while there are
 * any: a timer per key cost a setTimeout and a clearTimeout on every request for a timeout that almost
 * never fires, and an interval that never stops wakes an idle gateway for nothing. `onExpired` gets each
 * key whose deadline passed (at most `everyMs` late), already removed.
 */
export class Deadlines<K extends object> {
  readonly #pending = new InFlight<K>();
  readonly #everyMs: number;
  readonly #onExpired: (k: K) => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(everyMs: number, onExpired: (k: K) => void) {
    this.#everyMs = everyMs;
    this.#onExpired = onExpired;
  }

  get size(): number {
    return this.#pending.size;
  }

  arm(k: K, deadline: number): void {
    this.#pending.set(k, deadline);
    if (!this.#timer && !this.#closed) {
      this.#timer = setInterval(() => this.#sweep(), this.#everyMs);
      this.#timer.unref();
    }
  }

  /** The key's deadline no longer applies (its work finished, or moved on to another deadline). */
  disarm(k: K): void {
    this.#pending.delete(k);
  }

  /** Stops checking for good (shutdown answers what is left itself). */
  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    // Nothing pending: the interval stops; the next arm() starts it again.
    if (this.#pending.size === 0) {
      this.#stop();
      return;
    }
    for (const k of this.#pending.takeExpired(performance.now())) this.#onExpired(k);
  }
}
