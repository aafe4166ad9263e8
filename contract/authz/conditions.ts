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
import { CelScalar, type CelValue, celEnv, celFunc, isCelError, mapType, objectType, parse, plan } from "@bufbuild/cel";
import type { Expr } from "@bufbuild/cel-spec/cel/expr/syntax_pb.js";
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

const S = CelScalar.STRING;
const FUNCS = [
  celFunc("cleanPath", [S], S, (p) => cleanPath(p)),
  celFunc("pathWithin", [S, S], CelScalar.BOOL, (p, d) => pathWithin(p, d)),
  celFunc("urlHost", [S], S, (u) => urlHost(u)),
  celFunc("urlScheme", [S], S, (u) => urlScheme(u)),
];

const VARIABLES = {
  request: mapType(S, CelScalar.DYN),
  client: mapType(S, CelScalar.DYN),
  now: objectType(TimestampSchema),
} as const;

const ENV = celEnv({ variables: VARIABLES, funcs: FUNCS });

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

export type Activation = { request: Map<string, unknown>; client: Map<string, unknown>; now: Timestamp };
export type Program = (a: Activation) => { ok: true } | { ok: false; error?: string };

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
  return (a) => {
    const r = run(a as never) as CelValue | unknown;
    if (r === true) return { ok: true };
    if (r === false) return { ok: false };
    if (isCelError(r)) return { ok: false, error: r.message.slice(0, 200) };
    return { ok: false, error: "the condition did not evaluate to a bool" };
  };
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

/** JSON values as CEL sees them: objects become maps (faster to select on than plain objects). */
export function toCel(v: unknown, depth = 0): unknown {
  if (v === null || typeof v !== "object") return v;
  if (depth > 64) return null;
  if (Array.isArray(v)) return v.map((x) => toCel(x, depth + 1));
  const m = new Map<string, unknown>();
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) m.set(k, toCel(x, depth + 1));
  return m;
}

export function celTimestamp(ms: number): Timestamp {
  return timestampFromMs(ms);
}
