// A value computed once per key, for lookups made on every request from names a client chooses (a
// tool's limit, a rate-limit bucket key, an argument name's redaction verdict). Bounded: such keys are
// many only under attack (invented client ids, tool and argument names), and then it starts over.
export class BoundedMemo<K, V> {
  readonly #values = new Map<K, V>();
  readonly #max: number;
  readonly #compute: (k: K) => V;

  constructor(max: number, compute: (k: K) => V) {
    this.#max = max;
    this.#compute = compute;
  }

  get(k: K): V {
    let v = this.#values.get(k);
    if (v === undefined) {
      v = this.#compute(k);
      if (this.#values.size >= this.#max) this.#values.clear();
      this.#values.set(k, v);
    }
    return v;
  }
}
