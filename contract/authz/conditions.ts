// CEL conditions on a call: written by the platform team (never by the server, whose own inputSchema is
// exactly what the gateway does not trust), compiled once at config load, evaluated per call.
//
// Evaluator: @bufbuild/cel (Buf's CEL for ECMAScript, tested against the cel-spec conformance suite).
// Variables:
//   request  {method, tool, arguments, uri, prompt}
//   client   {name, kind, subject, groups, scopes, claims, spiffeId, source}
//   now      google.protobuf.Timestamp (the gateway's clock: now.getHours('Europe/Berlin'), now < timestamp('...'))
// Extra functions, for what the checklists ask and CEL's standard library cannot say safely:
//   cleanPath(p)         POSIX normalization ('.', '..', '//' resolved) of the path the server will open
//   pathWithin(p, dir)   cleanPath(p) is dir or below it (so '/data/../etc' is not within '/data')
//   urlHost(u)           lower-case host name of a URL as WHATWG URL (Node's fetch) parses it; "" when invalid
//   urlScheme(u)         its scheme without ':' ("" when invalid)
import { posix } from "node:path";
import {
  type CelInput,
  CelScalar,
  type CelValue,
  celEnv,
  celFunc,
  celList,
  celMethod,
  celMap,
  isCelError,
  isCelList,
  isCelMap,
  mapType,
  objectType,
  parse,
  plan,
} from "@bufbuild/cel";
import type { Expr } from "@bufbuild/cel-spec/cel/expr/syntax_pb.js";
import { TIME_ZONE_FUNCS } from "./celtime.ts";
import { type Timestamp, TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";

/** cleanPath: what `path.resolve`-style servers make of a path, without touching the file system. */
export function cleanPath(p: string): string {
  if (p === "") return "";
  const n = posix.normalize(p);
  // normalize keeps a trailing slash and leading '..' of relative paths; both are fine for prefix checks.
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

export function pathWithin(p: string, dir: string): boolean {
  if (p.includes("\u0000")) return false;
  const c = cleanPath(p);
  const d = cleanPath(dir);
  if (!c.startsWith("/") || !d.startsWith("/")) return false;
  if (d === "/") return true;
  return c === d || c.startsWith(`${d}/`);
}

function parsedUrl(u: string): URL | undefined {
  try {
    return new URL(u);
  } catch {
    return undefined;
  }
}

export function urlHost(u: string): string {
  const x = parsedUrl(u);
  if (!x) return "";
  // WHATWG already lower-cases and punycodes; strip the brackets of IPv6 literals and a trailing dot.
  return x.hostname.replace(/^\[|\]$/g, "").replace(/\.$/, "");
}

export function urlScheme(u: string): string {
  const x = parsedUrl(u);
  return x ? x.protocol.replace(/:$/, "") : "";
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * The number of Unicode code points in s, as CEL's size(string) defines it and as `[...s].length`
 * counts them (a lone surrogate counts as one), without building that array: @bufbuild/cel's own
 * size(string) does `[...s].length`, which made `size(request.arguments.x) <= 1024` cost ~15 ms of CPU
 * for a 1 MB argument, on every call, before refusing it.
 */
export function codePointCount(s: string): number {
  if (!SURROGATE.test(s)) return s.length;
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

const S = CelScalar.STRING;
/** The functions conditions get on top of CEL's standard library (exported for the conformance test). */
export const CONDITION_FUNCS = [
  // Same overload ids as the standard library's ("size(string)", "string.size()"): the resolver keeps one
  // function per id, the one given last, so these replace bufbuild's (same result, no array per call).
  celFunc("size", [S], CelScalar.INT, (s) => BigInt(codePointCount(s))),
  celMethod("size", S, [], CelScalar.INT, function (this: string) {
    return BigInt(codePointCount(this));
  }),
  celFunc("cleanPath", [S], S, (p) => cleanPath(p)),
  celFunc("pathWithin", [S, S], CelScalar.BOOL, (p, d) => pathWithin(p, d)),
  celFunc("urlHost", [S], S, (u) => urlHost(u)),
  celFunc("urlScheme", [S], S, (u) => urlScheme(u)),
  // now.getHours('Europe/Berlin') and the other accessors with a time zone: one formatter per zone.
  ...TIME_ZONE_FUNCS,
];

const VARIABLES = {
  request: mapType(S, CelScalar.DYN),
  client: mapType(S, CelScalar.DYN),
  now: objectType(TimestampSchema),
} as const;

const ENV = celEnv({ variables: VARIABLES, funcs: CONDITION_FUNCS });

/** Operators and macros the parser emits that are not in the function resolver. */
const BUILTIN_CALLS = new Set(["_&&_", "_||_", "_?_:_", "@not_strictly_false", "_[_]", "@in", "!_"]);
let knownFunctions: Set<string> | undefined;
function known(): Set<string> {
  if (!knownFunctions) {
    knownFunctions = new Set(BUILTIN_CALLS);
    for (const f of ENV.funcs) knownFunctions.add(f.name);
  }
  return knownFunctions;
}

/**
 * Walks the parsed expression for what a type checker would refuse and the evaluator would only notice
 * at run time (when the branch is reached): unknown functions and unknown variables.
 */
function checkNames(e: Expr | undefined, scope: ReadonlySet<string>, problems: string[]): void {
  if (!e) return;
  const k = e.exprKind;
  switch (k.case) {
    case "identExpr":
      if (!scope.has(k.value.name)) problems.push(`undeclared reference to "${k.value.name}" (use request, client or now)`);
      return;
    case "selectExpr":
      checkNames(k.value.operand, scope, problems);
      return;
    case "callExpr":
      if (!known().has(k.value.function)) problems.push(`unknown function "${k.value.function}"`);
      checkNames(k.value.target, scope, problems);
      for (const a of k.value.args) checkNames(a, scope, problems);
      return;
    case "listExpr":
      for (const a of k.value.elements) checkNames(a, scope, problems);
      return;
    case "structExpr":
      for (const f of k.value.entries) {
        if (f.keyKind.case === "mapKey") checkNames(f.keyKind.value, scope, problems);
        checkNames(f.value, scope, problems);
      }
      return;
    case "comprehensionExpr": {
      const c = k.value;
      checkNames(c.iterRange, scope, problems);
      checkNames(c.accuInit, scope, problems);
      const inner = new Set(scope);
      for (const v of [c.iterVar, c.iterVar2, c.accuVar]) if (v) inner.add(v);
      checkNames(c.loopCondition, inner, problems);
      checkNames(c.loopStep, inner, problems);
      checkNames(c.result, inner, problems);
      return;
    }
    default:
      return;
  }
}

/**
 * What a program reads its variables from: `request` and `client` as CEL maps (toCel), `now`, and
 * optionally the values of the dotted names in `Uses.paths` ("request.arguments.path"), each present only
 * when every step of it is a present key of a CEL map (see selectPath).
 */
export type Activation = { readonly request: unknown; readonly client: unknown; readonly now: Timestamp; readonly [path: string]: unknown };

/**
 * Which fields of `request` and `client` an expression reads, so the activation builds only those:
 * "all" when it uses the map as a whole (`'tool' in request`, `request[k]`, passing it to a function)
 * or when a comprehension variable shadows the name (then the walk cannot tell the two apart).
 *
 * `paths`: the dotted names the evaluator looks up before anything else. @bufbuild/cel plans
 * `request.arguments.path` as a qualified name (CEL's name resolution: the longest prefix that names a
 * variable wins) and tries, on every evaluation, "request.arguments.path" and then "request.arguments"
 * against the activation and its protobuf registry (a message or enum of that name) before it selects
 * `arguments` and `path` from `request`: most of the cost of a typical condition. Only `request`,
 * `client` and `now` are variables and the registry holds only the well-known types, so those longer
 * names never resolve to anything else; an activation that answers them with the selected value (and
 * with undefined when a step is absent, so the evaluator walks and reports the error itself) gives the
 * same result without the misses. undefined: supply no paths, because the evaluator could ask for one
 * of these names for something else: a comprehension variable named request or client (bufbuild looks a
 * dotted name up in the outer activation before the local variable), or a constant index key with a
 * dot (`request.arguments['a.b']` is looked up as "request.arguments.a.b" too).
 */
export interface Uses {
  request: ReadonlySet<string> | "all";
  client: ReadonlySet<string> | "all";
  paths: ReadonlySet<string> | undefined;
}
export type Program = ((a: Activation) => { ok: true } | { ok: false; error?: string }) & { readonly uses: Uses };

type MutableUses = { request: Set<string> | "all"; client: Set<string> | "all"; paths: Set<string> | undefined };

/** Index operators whose constant string key bufbuild also appends to a qualified name (see Uses.paths). */
const INDEX_CALLS = new Set(["_[_]", "_[?_]", "_?._"]);

/** "request.a.b" for a chain of plain selects on the variable request or client, else undefined. */
function dottedName(e: Expr | undefined): string | undefined {
  const k = e?.exprKind;
  if (k?.case === "identExpr") return k.value.name === "request" || k.value.name === "client" ? k.value.name : undefined;
  if (k?.case !== "selectExpr" || k.value.testOnly) return undefined;
  const operand = dottedName(k.value.operand);
  return operand === undefined ? undefined : `${operand}.${k.value.field}`;
}

function fieldsUsed(e: Expr | undefined, uses: MutableUses): void {
  if (!e) return;
  const k = e.exprKind;
  switch (k.case) {
    case "identExpr":
      // The map itself, not one field of it.
      if (k.value.name === "request" || k.value.name === "client") uses[k.value.name] = "all";
      return;
    case "selectExpr": {
      const name = k.value.testOnly ? undefined : dottedName(e);
      if (name !== undefined) uses.paths?.add(name);
      const op = k.value.operand?.exprKind;
      if (op?.case === "identExpr" && (op.value.name === "request" || op.value.name === "client")) {
        const u = uses[op.value.name];
        if (u !== "all") u.add(k.value.field);
        return;
      }
      fieldsUsed(k.value.operand, uses);
      return;
    }
    case "callExpr":
      if (INDEX_CALLS.has(k.value.function)) {
        const key = k.value.args[1]?.exprKind;
        if (key?.case === "constExpr" && key.value.constantKind.case === "stringValue" && key.value.constantKind.value.includes(".")) uses.paths = undefined;
      }
      fieldsUsed(k.value.target, uses);
      for (const a of k.value.args) fieldsUsed(a, uses);
      return;
    case "listExpr":
      for (const a of k.value.elements) fieldsUsed(a, uses);
      return;
    case "structExpr":
      for (const f of k.value.entries) {
        if (f.keyKind.case === "mapKey") fieldsUsed(f.keyKind.value, uses);
        fieldsUsed(f.value, uses);
      }
      return;
    case "comprehensionExpr": {
      const c = k.value;
      for (const v of [c.iterVar, c.iterVar2, c.accuVar])
        if (v === "request" || v === "client") {
          uses[v] = "all";
          uses.paths = undefined;
        }
      for (const x of [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result]) fieldsUsed(x, uses);
      return;
    }
    default:
      return;
  }
}

/** The fields every one of these programs reads, together (what one shared activation must provide). */
export function unionUses(programs: readonly Program[]): Uses {
  const out: MutableUses = { request: new Set(), client: new Set(), paths: new Set() };
  for (const p of programs) {
    for (const v of ["request", "client"] as const) {
      const a = out[v];
      const b = p.uses[v];
      if (a === "all") continue;
      if (b === "all") out[v] = "all";
      else for (const f of b) a.add(f);
    }
    // One activation serves all programs: a program that must not be answered a dotted name (see Uses)
    // could otherwise be answered one another program reads.
    if (p.uses.paths === undefined) out.paths = undefined;
    else if (out.paths) for (const n of p.uses.paths) out.paths.add(n);
  }
  return out;
}

const HOLDS = Object.freeze({ ok: true as const });
const FAILS = Object.freeze({ ok: false as const });

/** Compiles one expression; throws an Error whose message is the parser's or checker's complaint. */
export function compileCondition(expression: string): Program {
  if (expression.length > 4096) throw new Error("expression longer than 4096 characters");
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(expression);
  } catch (e) {
    throw new Error(e instanceof Error ? e.message.replace(/^<input>:/, "at ") : "does not parse");
  }
  const problems: string[] = [];
  checkNames(parsed.expr, new Set(Object.keys(VARIABLES)), problems);
  if (problems.length > 0) throw new Error([...new Set(problems)].join("; "));
  const run = plan(ENV, parsed);
  const uses: MutableUses = { request: new Set(), client: new Set(), paths: new Set() };
  fieldsUsed(parsed.expr, uses);
  return Object.assign(
    (a: Activation) => {
      const r = run(a as never) as CelValue | unknown;
      if (r === true) return HOLDS;
      if (r === false) return FAILS;
      if (isCelError(r)) return { ok: false as const, error: r.message.slice(0, 200) };
      return { ok: false as const, error: "the condition did not evaluate to a bool" };
    },
    { uses },
  );
}

/** The error of an expression, or undefined when it compiles (the operator's validation uses this). */
export function conditionError(expression: string): string | undefined {
  try {
    compileCondition(expression);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * JSON values as CEL sees them: objects become maps (faster to select on than plain objects, and never
 * mistaken by the evaluator for a protobuf message: a client's arguments may hold a "$typeName" or a
 * "constructor" key). Converted one level at a time, when the expression reaches it: a condition that
 * reads one argument does not pay for copying a large document in another. Returned as CEL values
 * (celMap/celList, what the evaluator would wrap a Map or array in on every access otherwise).
 */
export function toCel(v: unknown, depth = 0): CelInput {
  if (v === null || typeof v !== "object") return v as CelInput;
  if (depth > 64) return null;
  if (Array.isArray(v)) return celList(v.map((x) => toCel(x, depth + 1)));
  return celMap(new JsonMap(v as Record<string, unknown>, depth));
}

/**
 * The value of `root.f1.f2...` as the evaluator selects it from CEL maps (CelMap.get, which is what
 * its field access does on a map), or undefined when a step is absent or not a map: then the evaluator
 * falls back to selecting step by step and reports the error (or handles the message) itself.
 */
export function selectPath(root: unknown, fields: readonly string[]): unknown {
  let v = root;
  for (const f of fields) {
    if (!isCelMap(v)) return undefined;
    v = v.get(f);
    if (v === undefined) return undefined;
  }
  return v;
}

/** A JSON object as a CEL map whose nested objects and arrays are converted on first read. */
class JsonMap extends Map<string, CelInput> {
  readonly #depth: number;

  constructor(o: Record<string, unknown>, depth: number) {
    super();
    this.#depth = depth;
    for (const k of Object.keys(o)) super.set(k, o[k] as CelInput);
  }

  override get(k: string): CelInput | undefined {
    const v = super.get(k);
    // Converted already when it is a CEL map or list: JSON has no symbol keys, so a JSON object never is one.
    if (v === null || typeof v !== "object" || isCelMap(v) || isCelList(v)) return v;
    const c = toCel(v, this.#depth + 1);
    super.set(k, c);
    return c;
  }

  override *entries(): MapIterator<[string, CelInput]> {
    for (const k of super.keys()) yield [k, this.get(k)!];
  }

  override *values(): MapIterator<CelInput> {
    for (const k of super.keys()) yield this.get(k)!;
  }

  override forEach(fn: (value: CelInput, key: string, map: Map<string, CelInput>) => void, thisArg?: unknown): void {
    for (const k of super.keys()) fn.call(thisArg, this.get(k)!, k, this);
  }

  override [Symbol.iterator](): MapIterator<[string, CelInput]> {
    return this.entries();
  }
}

export function celTimestamp(ms: number): Timestamp {
  return timestampFromMs(ms);
}
