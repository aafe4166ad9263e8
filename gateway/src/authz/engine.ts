// The whole authorization decision for one operation, compiled once from the gateway config:
// rules (clients, allow/deny globs) narrowed by time windows, source CIDRs, OAuth scopes, read-only
// tool annotations and CEL conditions; per-tool constraints (a JSON Schema overlay on the arguments and
// CEL conditions); and the scopes each tool/resource/prompt needs. Pure over its inputs: the clock is
// injected, the tool facts (pins, annotations) come from a callback.
import type { ValidateFunction } from "ajv";
import { Authorizer, type Identity, type Kind, ruleNamesClient } from "../authz.ts";
import { describeAjvError } from "../catalog.ts";
import { anyGlob } from "../glob.ts";
import { canonicalResourcePattern } from "../names.ts";
import { type CelInput, celList, celMap } from "@bufbuild/cel";
import { type Activation, type Program, type Uses, celTimestamp, compileCondition, selectPath, toCel, unionUses } from "../../../contract/authz/conditions.ts";
import { missingScopes, unionScopes } from "./scopes.ts";
import { type CidrSet, cidrSet } from "./source.ts";
import { compileOverlay } from "../../../contract/authz/overlay.ts";
import { type Schedule, isActive, nextChange, ruleSchedule } from "../../../contract/authz/windows.ts";

export interface ConditionSpec {
  expression: string;
  message?: string;
}

interface AllowDeny {
  allow: readonly string[];
  deny: readonly string[];
}

/** One authorization rule as the gateway config carries it (the issue-13 fields are optional). */
export interface RuleSpec {
  name: string;
  clients: { apiKeys?: readonly string[]; subjects?: readonly string[]; groups?: readonly string[]; spiffeIds?: readonly string[] };
  tools?: AllowDeny;
  resources?: AllowDeny;
  prompts?: AllowDeny;
  scopes?: readonly string[];
  schedule?: Schedule;
  sources?: readonly string[];
  readOnlyTools?: boolean;
  conditions?: readonly ConditionSpec[];
}

export interface ScopeRequirement {
  tools?: readonly string[];
  resources?: readonly string[];
  prompts?: readonly string[];
  scopes: readonly string[];
}

export interface ConstraintSpec {
  name: string;
  tools: readonly string[];
  arguments?: Record<string, unknown>;
  conditions?: readonly ConditionSpec[];
}

export interface AccessConfig {
  rules: readonly RuleSpec[];
  scopes?: readonly ScopeRequirement[];
  constraints?: readonly ConstraintSpec[];
  /** Scopes every token must carry (also the 401 challenge's `scope`). */
  requiredScopes?: readonly string[];
  /** Extra scopes for `scopes_supported` besides those the rules and requirements name. */
  scopesSupported?: readonly string[];
}

/** What the gateway knows of a tool, for rules that allow only read-only tools. */
export interface ToolFacts {
  /** The tool matches its pin including annotations (a legacy pin without annotations does not count). */
  pinnedWithAnnotations: boolean;
  annotations?: { readOnlyHint?: unknown; destructiveHint?: unknown };
}

export interface RequestFacts {
  source: string;
  now: number;
}

export interface Operation {
  method: string;
  kind: Kind;
  name: string;
  arguments?: unknown;
}

export type Refusal =
  | { kind: "denied"; rule?: string; reason: string }
  | { kind: "insufficient_scope"; rule?: string; reason: string; scopes: string[] }
  | { kind: "invalid"; rule: string; reason: string };

export type Decision = { ok: true; rule?: string } | { ok: false; refusal: Refusal };

interface CompiledCondition {
  program: Program;
  message: string;
  expression: string;
}

interface CompiledRule {
  spec: RuleSpec;
  scopes: readonly string[];
  sources: CidrSet | undefined;
  schedule: Schedule | undefined;
  conditions: CompiledCondition[];
  /** Cached schedule state, valid until `until` (ms). */
  active: boolean;
  /** The cached state holds for from <= now < until (a clock set back recomputes). */
  from: number;
  until: number;
  /**
   * The rule's allow globs and its deny globs, each as a one-rule Authorizer: name matching (and any
   * normalization of names and URIs the Authorizer does) is the plain authorizer's, never a second copy.
   */
  allows: Authorizer;
  denies: Authorizer;
  /** Source address -> admitted (BlockList lookups parse the address each time; clients repeat). */
  sourceMemo: Map<string, boolean>;
}

interface CompiledConstraint {
  spec: ConstraintSpec;
  validate: ValidateFunction | undefined;
  conditions: CompiledCondition[];
}

/** A rule field and what is wrong with it; the operator turns these into InvalidSpec messages. */
export interface CompileProblem {
  field: string;
  message: string;
}

function compileConditions(list: readonly ConditionSpec[] | undefined, field: string, problems: CompileProblem[]): CompiledCondition[] {
  const out: CompiledCondition[] = [];
  (list ?? []).forEach((c, i) => {
    try {
      out.push({ program: compileCondition(c.expression), message: c.message ?? `condition ${c.expression} is not met`, expression: c.expression });
    } catch (e) {
      problems.push({ field: `${field}[${i}].expression`, message: `${JSON.stringify(c.expression.slice(0, 200))}: ${(e as Error).message}` });
    }
  });
  return out;
}

/** Compiles everything once; `problems` is non-empty when some expression or schema is invalid. */
export function compileAccess(cfg: AccessConfig): { rules: CompiledRule[]; constraints: CompiledConstraint[]; problems: CompileProblem[] } {
  const problems: CompileProblem[] = [];
  const rules = cfg.rules.map((r, i): CompiledRule => {
    let sources: CidrSet | undefined;
    if (r.sources && r.sources.length > 0) {
      try {
        sources = cidrSet(r.sources);
      } catch (e) {
        problems.push({ field: `rules[${i}].sources`, message: (e as Error).message });
        sources = cidrSet([]);
      }
    }
    return {
      spec: r,
      scopes: r.scopes ?? [],
      sources,
      schedule: r.schedule,
      conditions: compileConditions(r.conditions, `rules[${i}].conditions`, problems),
      active: true,
      from: Number.POSITIVE_INFINITY,
      until: Number.NEGATIVE_INFINITY,
      allows: new Authorizer([sectionsAs(r, "allow")]),
      denies: new Authorizer([sectionsAs(r, "deny")]),
      sourceMemo: new Map(),
    };
  });
  const constraints = (cfg.constraints ?? []).map((c, i): CompiledConstraint => {
    let validate: ValidateFunction | undefined;
    if (c.arguments) {
      try {
        validate = compileOverlay(c.arguments);
      } catch (e) {
        problems.push({ field: `constraints[${i}].arguments`, message: `invalid JSON Schema: ${(e as Error).message}` });
      }
    }
    return { spec: c, validate, conditions: compileConditions(c.conditions, `constraints[${i}].conditions`, problems) };
  });
  return { rules, constraints, problems };
}

/** Whether the config uses anything beyond clients + allow/deny globs (else the plain Authorizer decides). */
export function usesExtendedAuthorization(cfg: AccessConfig): boolean {
  return (
    (cfg.scopes?.length ?? 0) > 0 ||
    (cfg.constraints?.length ?? 0) > 0 ||
    (cfg.requiredScopes?.length ?? 0) > 0 ||
    cfg.rules.some(
      (r) => (r.scopes?.length ?? 0) > 0 || r.schedule !== undefined || (r.sources?.length ?? 0) > 0 || r.readOnlyTools || (r.conditions?.length ?? 0) > 0,
    )
  );
}

function admits(r: CompiledRule, source: string): boolean {
  let v = r.sourceMemo.get(source);
  if (v === undefined) {
    v = r.sources!.has(source);
    if (r.sourceMemo.size >= 4096) r.sourceMemo.clear();
    r.sourceMemo.set(source, v);
  }
  return v;
}

/** A one-rule config whose allow lists are the rule's `allow` (or its `deny`) globs. */
function sectionsAs(r: RuleSpec, which: "allow" | "deny"): ConstructorParameters<typeof Authorizer>[0][number] {
  const section = (s: AllowDeny | undefined) => (s ? { allow: [...s[which]], deny: [] } : undefined);
  const c = r.clients;
  return {
    name: r.name,
    clients: {
      ...(c.apiKeys ? { apiKeys: [...c.apiKeys] } : {}),
      ...(c.subjects ? { subjects: [...c.subjects] } : {}),
      ...(c.groups ? { groups: [...c.groups] } : {}),
      ...(c.spiffeIds ? { spiffeIds: [...c.spiffeIds] } : {}),
    },
    ...(r.tools ? { tools: section(r.tools) } : {}),
    ...(r.resources ? { resources: section(r.resources) } : {}),
    ...(r.prompts ? { prompts: section(r.prompts) } : {}),
  };
}

/** 2: the rule denies the name, 1: it allows it, 0: neither (deny wins within a rule, as in the Authorizer). */
function verdict(r: CompiledRule, id: Identity, kind: Kind, name: string): 0 | 1 | 2 {
  if (r.denies.policyFor(id).allows(kind, name)) return 2;
  return r.allows.policyFor(id).allows(kind, name) ? 1 : 0;
}

const NOUN: Record<Kind, string> = { tools: "tool", resources: "resource", prompts: "prompt" };
function quoted(name: string): string {
  return JSON.stringify(name.length > 128 ? `${name.slice(0, 128)}...` : name);
}

export class AccessEngine {
  readonly #rules: CompiledRule[];
  readonly #constraints: CompiledConstraint[];
  readonly #scopeReqs: readonly ScopeRequirement[];
  readonly #required: readonly string[];
  readonly #toolFacts: (name: string) => ToolFacts | undefined;
  readonly #byClient = new Map<string, CompiledRule[]>();
  readonly #opScopes = new Map<string, readonly string[]>();
  readonly #constraintsFor = new Map<string, CompiledConstraint[]>();
  /** The request and client fields any condition reads: the activation builds only these. */
  readonly #uses: Uses;
  /** The activation's class, with a getter for each dotted name the conditions read (Uses.paths). */
  readonly #Activation: ActivationClass;
  readonly scopesSupported: readonly string[];
  readonly extended: boolean;
  readonly problems: readonly CompileProblem[];

  constructor(cfg: AccessConfig, toolFacts: (name: string) => ToolFacts | undefined = () => undefined) {
    const c = compileAccess(cfg);
    this.#rules = c.rules;
    this.#constraints = c.constraints;
    this.problems = c.problems;
    this.#uses = unionUses([...c.rules, ...c.constraints].flatMap((x) => x.conditions.map((cc) => cc.program)));
    this.#Activation = activationClass(this.#uses.paths);
    // Resource patterns in the canonical form resource URIs are matched in (names.ts), like the rules' (Authorizer).
    this.#scopeReqs = (cfg.scopes ?? []).map((r) => (r.resources ? { ...r, resources: r.resources.map(canonicalResourcePattern) } : r));
    this.#required = cfg.requiredScopes ?? [];
    this.#toolFacts = toolFacts;
    this.extended = usesExtendedAuthorization(cfg);
    this.scopesSupported = unionScopes(cfg.scopesSupported, cfg.requiredScopes, ...cfg.rules.map((r) => r.scopes), ...this.#scopeReqs.map((s) => s.scopes));
  }

  /** Scopes to ask for first (the 401 challenge): the ones every token needs. */
  get requiredScopes(): readonly string[] {
    return this.#required;
  }

  #candidates(id: Identity): CompiledRule[] {
    const k = id.groups ? `${id.key}\u0000${id.groups.join("\u0000")}` : id.key;
    let rs = this.#byClient.get(k);
    if (!rs) {
      rs = this.#rules.filter((r) => ruleNamesClient(r.spec, id));
      if (this.#byClient.size >= 10000) this.#byClient.clear();
      this.#byClient.set(k, rs);
    }
    return rs;
  }

  #active(r: CompiledRule, now: number): boolean {
    if (!r.schedule) return true;
    if (now >= r.until || now < r.from) {
      r.from = now;
      r.active = isActive(r.schedule, now);
      r.until = nextChange(r.schedule, now) ?? Number.POSITIVE_INFINITY;
      // Windows are looked up 8 days ahead: re-evaluate at least daily.
      r.until = Math.min(r.until, now + 86_400_000);
    }
    return r.active;
  }

  /**
   * For a JWT client whose token lacks some of `requiredScopes`: the scopes to challenge with (every
   * required one plus the relevant ones it has); undefined when nothing is missing or not a JWT client.
   */
  missingRequired(id: Identity): string[] | undefined {
    if (id.kind !== "jwt" || this.#required.length === 0) return undefined;
    const granted = new Set(id.scopes ?? []);
    if (missingScopes(this.#required, granted).length === 0) return undefined;
    return unionScopes(
      this.#required,
      [...granted].filter((s) => this.scopesSupported.includes(s)),
    );
  }

  /** Scopes a JWT client needs for this operation besides those of the rule that allows it. */
  opScopes(kind: Kind, name: string): readonly string[] {
    const k = `${kind}\u0000${name}`;
    let s = this.#opScopes.get(k);
    if (!s) {
      s = unionScopes(this.#required, ...this.#scopeReqs.filter((r) => anyGlob(r[kind], name)).map((r) => r.scopes));
      if (this.#opScopes.size < 10000) this.#opScopes.set(k, s);
    }
    return s;
  }

  #readOnlyOk(name: string): boolean {
    const f = this.#toolFacts(name);
    return !!f && f.pinnedWithAnnotations && f.annotations?.readOnlyHint === true && f.annotations.destructiveHint !== true;
  }

  /**
   * Whether the client may see this name in a list answer: some active rule allows it (read-only
   * restrictions included), none denies it. Scopes and conditions are per call: a client sees the tools it
   * could call after a step-up, and gets the 403 challenge when it calls one.
   */
  listAllows(id: Identity, kind: Kind, name: string, facts: Partial<RequestFacts>): boolean {
    const now = facts.now ?? Date.now();
    let allowed = false;
    for (const r of this.#candidates(id)) {
      const v = verdict(r, id, kind, name);
      if (v === 0 || !this.#active(r, now)) continue;
      // Unknown source (a replayed stream): deny rules apply, source-limited allow rules do not.
      if (r.sources && (facts.source === undefined ? v === 1 : !admits(r, facts.source))) continue;
      if (v === 2) return false;
      if (r.scopes.length > 0 && id.kind !== "jwt") continue;
      if (kind === "tools" && r.spec.readOnlyTools && !this.#readOnlyOk(name)) continue;
      allowed = true;
    }
    return allowed;
  }

  /** The decision for one call: allowed (and by which rule), or the refusal with its rule and reason. */
  decide(id: Identity, op: Operation, facts: RequestFacts): Decision {
    const { kind, name } = op;
    const noun = NOUN[kind];
    const allowing: CompiledRule[] = [];
    let why: string | undefined;
    for (const r of this.#candidates(id)) {
      const v = verdict(r, id, kind, name);
      if (v === 0) continue;
      if (!this.#active(r, facts.now)) {
        why ??= `rule "${r.spec.name}" is not active now`;
        continue;
      }
      if (r.sources && !admits(r, facts.source)) {
        why ??= `rule "${r.spec.name}" does not admit source ${facts.source}`;
        continue;
      }
      if (v === 2) return { ok: false, refusal: { kind: "denied", rule: r.spec.name, reason: `${noun} ${quoted(name)} is denied by rule "${r.spec.name}"` } };
      if (kind === "tools" && r.spec.readOnlyTools && !this.#readOnlyOk(name)) {
        why ??= `rule "${r.spec.name}" allows only pinned tools annotated readOnlyHint: true (and not destructiveHint)`;
        continue;
      }
      if (r.scopes.length > 0 && id.kind !== "jwt") {
        why ??= `rule "${r.spec.name}" requires OAuth scopes (JWT clients only)`;
        continue;
      }
      allowing.push(r);
    }
    if (allowing.length === 0) {
      return { ok: false, refusal: { kind: "denied", reason: `${noun} ${quoted(name)} is not allowed for this client${why ? ` (${why})` : ""}` } };
    }
    // Scopes: JWT clients only (API keys and SPIFFE IDs carry none; their rules name them one by one).
    const granted = new Set(id.scopes ?? []);
    const base = id.kind === "jwt" ? this.opScopes(kind, name) : [];
    let best: { rule: CompiledRule; need: string[]; missing: number } | undefined;
    let conditionRefusal: Refusal | undefined;
    let activation: Activation | undefined;
    for (const r of allowing) {
      const need = r.scopes.length > 0 ? unionScopes(base, r.scopes) : (base as string[]);
      const missing = id.kind === "jwt" ? missingScopes(need, granted).length : 0;
      if (missing > 0) {
        if (!best || missing < best.missing) best = { rule: r, need, missing };
        continue;
      }
      if (r.conditions.length > 0) {
        activation ??= this.#activation(id, op, facts);
        const failed = this.#firstFailure(r.conditions, activation);
        if (failed) {
          conditionRefusal ??= { kind: "denied", rule: r.spec.name, reason: `${noun} ${quoted(name)}: rule "${r.spec.name}" refused: ${failed}` };
          continue;
        }
      }
      return this.#constraintsOk(id, op, facts, activation, r.spec.name);
    }
    if (conditionRefusal) return { ok: false, refusal: conditionRefusal };
    const b = best!;
    const relevant = [...granted].filter((s) => this.scopesSupported.includes(s));
    return {
      ok: false,
      refusal: {
        kind: "insufficient_scope",
        rule: b.rule.spec.name,
        scopes: unionScopes(b.need, relevant),
        reason: `${noun} ${quoted(name)} needs scope(s) ${missingScopes(b.need, granted).join(" ")}`,
      },
    };
  }

  /** Constraints on the tool's arguments (all that match the tool must hold). */
  #constraintsOk(id: Identity, op: Operation, facts: RequestFacts, activation: Activation | undefined, rule: string): Decision {
    if (op.kind !== "tools" || this.#constraints.length === 0) return { ok: true, rule };
    let cs = this.#constraintsFor.get(op.name);
    if (!cs) {
      cs = this.#constraints.filter((c) => anyGlob(c.spec.tools, op.name));
      if (this.#constraintsFor.size < 10000) this.#constraintsFor.set(op.name, cs);
    }
    for (const c of cs) {
      const args = op.arguments ?? {};
      if (c.validate && !c.validate(args)) {
        return {
          ok: false,
          refusal: {
            kind: "invalid",
            rule: c.spec.name,
            reason: `arguments of tool ${quoted(op.name)} violate constraint "${c.spec.name}": ${describeAjvError(c.validate.errors)}`,
          },
        };
      }
      if (c.conditions.length > 0) {
        activation ??= this.#activation(id, op, facts);
        const failed = this.#firstFailure(c.conditions, activation);
        if (failed)
          return {
            ok: false,
            refusal: { kind: "denied", rule: c.spec.name, reason: `tool ${quoted(op.name)} refused by constraint "${c.spec.name}": ${failed}` },
          };
      }
    }
    return { ok: true, rule };
  }

  #firstFailure(conds: readonly CompiledCondition[], a: Activation): string | undefined {
    for (const c of conds) {
      const r = c.program(a);
      if (!r.ok) return r.error ? `${c.message} (${r.error})` : c.message;
    }
    return undefined;
  }

  #activation(id: Identity, op: Operation, facts: RequestFacts): Activation {
    return new this.#Activation(id, op, facts, this.#uses);
  }

  /** Which rules are active at `now`, and the next instant any of them changes (for the status). */
  schedule(now: number): { active: string[]; inactive: string[]; nextChange?: number } {
    return ruleSchedule(
      this.#rules.map((r) => r.spec),
      now,
    );
  }
}

// Each field as the evaluator holds it (celMap/celList, not a Map or array it would wrap again on every access).
type Fields<T> = Record<string, (x: T) => CelInput>;

const REQUEST_FIELDS: Fields<Operation> = {
  method: (op) => op.method,
  arguments: (op) => toCel(op.arguments ?? {}),
  tool: (op) => (op.kind === "tools" ? op.name : ""),
  uri: (op) => (op.kind === "resources" ? op.name : ""),
  prompt: (op) => (op.kind === "prompts" ? op.name : ""),
};

const CLIENT_FIELDS: Fields<{ id: Identity; facts: RequestFacts }> = {
  name: ({ id }) => id.key,
  kind: ({ id }) => id.kind,
  subject: ({ id }) => (id.kind === "jwt" ? id.name : ""),
  groups: ({ id }) => celList([...(id.groups ?? [])]),
  scopes: ({ id }) => celList([...(id.scopes ?? [])]),
  claims: ({ id }) => toCel(id.claims ?? {}),
  spiffeId: ({ id }) => (id.kind === "spiffe" ? id.name : ""),
  source: ({ facts }) => facts.source,
};

/** The map of a CEL variable with the fields the conditions read (all of them when one uses the whole map). */
function fieldMap<T>(all: Fields<T>, uses: ReadonlySet<string> | "all", x: T): unknown {
  const m = new Map<string, CelInput>();
  if (uses === "all") for (const k in all) m.set(k, all[k]!(x));
  else for (const k of uses) if (Object.hasOwn(all, k)) m.set(k, all[k]!(x));
  return celMap(m);
}

/**
 * The CEL variables, each built on first use and with only the fields some condition reads: most
 * conditions read only `request.arguments`, and a timestamp or the client map would cost more than the
 * evaluation itself. A field no condition names is absent; reading it could not happen (the walk in
 * conditions.ts marks any use of the whole map as "all").
 */
class LazyActivation implements Activation {
  readonly #id: Identity;
  readonly #op: Operation;
  readonly #facts: RequestFacts;
  readonly #uses: Uses;
  #request: unknown;
  #client: unknown;
  #now: Activation["now"] | undefined;
  readonly [path: string]: unknown;

  constructor(id: Identity, op: Operation, facts: RequestFacts, uses: Uses) {
    this.#id = id;
    this.#op = op;
    this.#facts = facts;
    this.#uses = uses;
  }

  get request(): unknown {
    this.#request ??= fieldMap(REQUEST_FIELDS, this.#uses.request, this.#op);
    return this.#request;
  }

  get client(): unknown {
    this.#client ??= fieldMap(CLIENT_FIELDS, this.#uses.client, { id: this.#id, facts: this.#facts });
    return this.#client;
  }

  get now(): Activation["now"] {
    this.#now ??= celTimestamp(this.#facts.now);
    return this.#now;
  }
}

type ActivationClass = new (id: Identity, op: Operation, facts: RequestFacts, uses: Uses) => LazyActivation;

/**
 * LazyActivation with a getter for each dotted name ("request.arguments.path"): the value selected
 * from the variable, or undefined (see Uses.paths in conditions.ts for why this is the same result).
 * One class per engine, made when the config is compiled, so a call only looks up a property.
 */
function activationClass(paths: ReadonlySet<string> | undefined): ActivationClass {
  if (!paths || paths.size === 0) return LazyActivation;
  class WithPaths extends LazyActivation {}
  for (const p of paths) {
    const [root, ...fields] = p.split(".") as ["request" | "client", ...string[]];
    Object.defineProperty(WithPaths.prototype, p, {
      get(this: LazyActivation) {
        return selectPath(this[root], fields);
      },
    });
  }
  return WithPaths;
}
