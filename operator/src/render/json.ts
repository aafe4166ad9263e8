// Reading rendered objects (plain JSON) without a cast at every step: a field that is not an object reads
// as {} and one that is not a list as [], so a check over a tampered or partial object answers instead
// of throwing. Tests read objects the same way (test/support/objects.ts re-exports these).
export type Obj = Record<string, unknown>;

/** `v` when it is a JSON object, otherwise {}. */
export function obj(v: unknown): Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {};
}

/** `v`'s elements as objects when it is a list, otherwise []. */
export function list(v: unknown): Obj[] {
  return Array.isArray(v) ? v.map(obj) : [];
}
