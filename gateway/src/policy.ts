// The per-message checks between authentication and the upstream: rate limits, authorization,
// tool integrity and argument validation. Pure decisions over the gateway's state; no I/O except the
// limiter (Redis in shared mode) and the catalog refresh for a tool not seen yet.
import type { Authorizer, Identity, Kind, Policy } from "./authz.ts";
import type { AccessEngine, RequestFacts } from "./authz/engine.ts";
import { type ToolCatalog, type ToolEntry, describeAjvError } from "./catalog.ts";
import type { GatewayConfig } from "../../contract/gateway-config.ts";
import { globMatch } from "./glob.ts";
import { ERR } from "./jsonrpc.ts";
import { BoundedMemo } from "./memo.ts";
import { canonicalResourceUri, nameProblem } from "./names.ts";
import type { Visibility } from "./modern.ts";
import type { Limiter, Take } from "./ratelimit.ts";

export interface Refusal {
  status: number;
  code: number;
  message: string;
  outcome: "denied" | "rate-limited" | "invalid" | "blocked";
  /** metrics label */
  scope: string;
  retryAfter?: number;
  /** issue 13: the rule that refused (audit), and for a token lacking scopes the scopes to challenge with (HTTP 403). */
  rule?: string;
  scopes?: string[];
}

export interface Checked {
  tool?: string;
  args?: unknown;
  timeoutMs: number;
}

function limited(t: Take, scope: string, what: string): Refusal {
  return {
    status: 429,
    code: ERR.rateLimited,
    message: `rate limit exceeded for ${what}; retry after ${t.retryAfter} s`,
    outcome: "rate-limited",
    scope,
    retryAfter: t.retryAfter,
  };
}

/** A client-chosen name as it appears in an error message: bounded, so a 100 kB name is not echoed back. */
export function quoted(name: string): string {
  return JSON.stringify(name.length > 128 ? `${name.slice(0, 128)}...` : name);
}

function deny(kind: Kind, name: string): Refusal {
  const noun = kind === "tools" ? "tool" : kind === "resources" ? "resource" : "prompt";
  return { status: 200, code: ERR.denied, message: `${noun} ${quoted(name)} is not allowed for this client`, outcome: "denied", scope: kind };
}

function invalid(message: string): Refusal {
  return { status: 200, code: ERR.invalidParams, message, outcome: "invalid", scope: "params" };
}

function badName(kind: "tool" | "prompt", name: string, problem: string): Refusal {
  return invalid(`${kind} name ${quoted(name)} ${problem}; names are matched exactly`);
}

/** The canonical URI rules are matched against (names.ts), or the refusal for an ambiguous one. */
function resourceUri(uri: string): string | Refusal {
  const c = canonicalResourceUri(uri);
  return c.ok ? c.uri : invalid(`resource URI ${quoted(uri)} ${c.problem}`);
}

export class PolicyEngine {
  readonly #limits: GatewayConfig["limits"];
  readonly #limiter: Limiter;
  readonly #authz: Authorizer;
  readonly #catalog: ToolCatalog;
  readonly #toolLimits = new BoundedMemo(10_000, (tool: string) => this.#limits.perTool.find((p) => globMatch(p.tool, tool)) ?? null);
  readonly #toolTimeouts = new BoundedMemo(10_000, (tool: string) => {
    const hit = this.#limits.toolTimeouts.find((x) => globMatch(x.tool, tool));
    return (hit ? hit.timeoutSeconds : this.#limits.requestTimeoutSeconds) * 1000;
  });

  readonly #access: AccessEngine | undefined;
  /** issue 13: names the rule behind a refusal on the plain path (refusals only, so its cost does not matter). */
  readonly #explain: AccessEngine | undefined;

  constructor(limits: GatewayConfig["limits"], limiter: Limiter, authz: Authorizer, catalog: ToolCatalog, access?: AccessEngine) {
    this.#limits = limits;
    this.#limiter = limiter;
    this.#authz = authz;
    this.#catalog = catalog;
    // issue 13: with scopes, schedules, sources, read-only rules, conditions or constraints configured the
    // AccessEngine decides; otherwise the memoized Authorizer does (same answers, no extra cost).
    this.#access = access?.extended ? access : undefined;
    this.#explain = access;
  }

  // ---- issue 13 hook: the authorization decision for one operation (AccessEngine when extended) ----
  // `name` is what rules match (a resource's canonical URI); `shown` is what the client sent (the refusal names it).
  #gate(
    policy: Policy,
    id: Identity,
    method: string,
    kind: Kind,
    name: string,
    args: unknown,
    facts: RequestFacts | undefined,
    shown = name,
  ): Refusal | undefined {
    const a = this.#access;
    if (!a) {
      if (policy.allows(kind, name)) return undefined;
      // Every refusal is audited with its rule: a deny glob names one; "no rule allows it" names none.
      const why = this.#explain?.decide(id, { method, kind, name, arguments: args }, facts ?? { source: "unknown", now: Date.now() });
      const refusal = deny(kind, shown);
      return why && !why.ok && why.refusal.rule ? { ...refusal, rule: why.refusal.rule } : refusal;
    }
    const d = a.decide(id, { method, kind, name, arguments: args }, facts ?? { source: "unknown", now: Date.now() });
    if (d.ok) return undefined;
    const r = d.refusal;
    if (r.kind === "insufficient_scope")
      return { status: 403, code: ERR.denied, message: r.reason, outcome: "denied", scope: "scope", rule: r.rule, scopes: r.scopes };
    if (r.kind === "invalid") return { status: 200, code: ERR.invalidParams, message: r.reason, outcome: "invalid", scope: "constraint", rule: r.rule };
    return { status: 200, code: ERR.denied, message: r.reason, outcome: "denied", scope: kind, rule: r.rule };
  }

  #listed(policy: Policy, id: Identity, kind: Kind, name: string, facts: Partial<RequestFacts> | undefined): boolean {
    return this.#access ? this.#access.listAllows(id, kind, name, facts ?? {}) : policy.allows(kind, name);
  }

  /** A tool or prompt from a list the server sent: visible when its name is unambiguous and allowed. */
  #listedName(policy: Policy, id: Identity, kind: "tools" | "prompts", name: string, facts: Partial<RequestFacts> | undefined): boolean {
    return nameProblem(name) === undefined && this.#listed(policy, id, kind, name, facts);
  }

  /** A resource URI from a list the server sent: visible when its canonical form is allowed. */
  #listedUri(policy: Policy, id: Identity, uri: string, facts: Partial<RequestFacts> | undefined): boolean {
    const c = canonicalResourceUri(uri);
    return c.ok && this.#listed(policy, id, "resources", c.uri, facts);
  }

  /**
   * The limiter's bucket keys, built once per client (and tool): a key built per request was a new string
   * for the limiter's Map to flatten and hash on every call.
   */
  readonly #clientBuckets = new BoundedMemo(10_000, (client: string) => `c:${client}`);
  readonly #toolBuckets = new BoundedMemo(10_000, (client: string) => new BoundedMemo(1_000, (tool: string) => `t:${client}\u0000${tool}`));

  timeoutMs(tool: string | undefined): number {
    if (tool === undefined) return this.#limits.requestTimeoutSeconds * 1000;
    return this.#toolTimeouts.get(tool);
  }

  /**
   * Checks one client request. Returns a refusal, or what the caller needs to forward it. Synchronous
   * when it can be (local limiter, tool already known): the common tools/call costs no promise.
   */
  check(id: Identity, method: string, params: Record<string, unknown> | undefined, facts?: RequestFacts): Refusal | Checked | Promise<Refusal | Checked> {
    const pc = this.#limits.perClient;
    const t = this.#limiter.take(this.#clientBuckets.get(id.key), pc.requestsPerMinute, pc.burst);
    return t instanceof Promise ? t.then((x) => this.#afterClientLimit(x, id, method, params, facts)) : this.#afterClientLimit(t, id, method, params, facts);
  }

  #afterClientLimit(
    t: Take,
    id: Identity,
    method: string,
    params: Record<string, unknown> | undefined,
    facts: RequestFacts | undefined,
  ): Refusal | Checked | Promise<Refusal | Checked> {
    if (!t.ok) return limited(t, "client", "this client");
    const policy = this.#authz.policyFor(id);
    switch (method) {
      case "tools/call": {
        const name = params?.name;
        if (typeof name !== "string" || name.length === 0) return invalid('tools/call needs "params.name" (a string)');
        const bad = nameProblem(name);
        if (bad) return badName("tool", name, bad);
        const refusedTool = this.#gate(policy, id, method, "tools", name, params?.arguments, facts);
        if (refusedTool) return refusedTool;
        const tl = this.#toolLimits.get(name);
        if (tl) {
          const tt = this.#limiter.take(this.#toolBuckets.get(id.key).get(name), tl.requestsPerMinute, tl.burst);
          if (tt instanceof Promise) return tt.then((x) => (x.ok ? this.#toolEntry(name, params) : limited(x, "tool", `tool "${name}"`)));
          if (!tt.ok) return limited(tt, "tool", `tool "${name}"`);
        }
        return this.#toolEntry(name, params);
      }
      case "resources/read":
      case "resources/subscribe":
      case "resources/unsubscribe": {
        const uri = params?.uri;
        if (typeof uri !== "string") return invalid(`${method} needs "params.uri" (a string)`);
        // issue 10 class 1: rules (and conditions) see the URI the server will resolve, never the raw one.
        const canonical = resourceUri(uri);
        if (typeof canonical !== "string") return canonical;
        const refusedUri = this.#gate(policy, id, method, "resources", canonical, undefined, facts, uri);
        if (refusedUri) return refusedUri;
        break;
      }
      case "subscriptions/listen": {
        // issue 11: a 2026 subscription to resource updates names its URIs; each one is authorized like a read.
        const n = params?.notifications as { resourceSubscriptions?: unknown } | undefined;
        const uris = n?.resourceSubscriptions;
        if (uris === undefined) break;
        if (!Array.isArray(uris) || uris.length > 1000 || uris.some((u) => typeof u !== "string"))
          return invalid('subscriptions/listen: "params.notifications.resourceSubscriptions" must be a list of URIs');
        for (const uri of uris as string[]) {
          const canonical = resourceUri(uri);
          if (typeof canonical !== "string") return canonical;
          const refused = this.#gate(policy, id, method, "resources", canonical, undefined, facts, uri);
          if (refused) return refused;
        }
        break;
      }
      case "prompts/get": {
        const name = params?.name;
        if (typeof name !== "string") return invalid('prompts/get needs "params.name" (a string)');
        const bad = nameProblem(name);
        if (bad) return badName("prompt", name, bad);
        const refusedPrompt = this.#gate(policy, id, method, "prompts", name, params?.arguments, facts);
        if (refusedPrompt) return refusedPrompt;
        break;
      }
      case "completion/complete": {
        const ref = params?.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
        if (ref?.type === "ref/prompt" && typeof ref.name === "string") {
          const bad = nameProblem(ref.name);
          if (bad) return badName("prompt", ref.name, bad);
          const refusedRef = this.#gate(policy, id, method, "prompts", ref.name, undefined, facts);
          if (refusedRef) return refusedRef;
        }
        if (ref?.type === "ref/resource" && typeof ref.uri === "string") {
          // A resource template (`file:///{path}`): the braces go through the parser like any path text.
          const canonical = resourceUri(ref.uri);
          if (typeof canonical !== "string") return canonical;
          const refusedRef = this.#gate(policy, id, method, "resources", canonical, undefined, facts, ref.uri);
          if (refusedRef) return refusedRef;
        }
        break;
      }
    }
    return { timeoutMs: this.timeoutMs(undefined) };
  }

  /** The known tool's integrity verdict and argument check; a tool not seen yet is looked up first. */
  #toolEntry(name: string, params: Record<string, unknown> | undefined): Refusal | Checked | Promise<Refusal | Checked> {
    const hit = this.#catalog.get(name);
    if (hit) return this.#checkTool(name, hit, params);
    return this.#catalog.ensure(name).then((e) => (e ? this.#checkTool(name, e, params) : invalid(`unknown tool ${quoted(name)}`)));
  }

  #checkTool(name: string, entry: ToolEntry, params: Record<string, unknown> | undefined): Refusal | Checked {
    const v = entry.assessment.verdict;
    if (!v.allowed) return { status: 200, code: ERR.denied, message: `tool "${name}" is blocked: ${v.reason}`, outcome: "blocked", scope: "integrity" };
    const args = params?.arguments ?? {};
    if (!entry.validate) return invalid(`tool "${name}" has an input schema the gateway cannot enforce`);
    if (!entry.validate(args)) return invalid(`invalid arguments for tool "${name}": ${describeAjvError(entry.validate.errors)}`);
    return { tool: name, args, timeoutMs: this.timeoutMs(name) };
  }

  /** issue 11: what server/discover may announce to this client: the kinds it may see anything of. */
  visibility(id: Identity): Visibility {
    const p = this.#authz.policyFor(id);
    return { tools: p.any("tools"), resources: p.any("resources"), prompts: p.any("prompts") };
  }

  /**
   * issue 11: whether a change notification on a subscription stream may reach this client: a resource
   * update only for a URI it may read; list changes of a kind it may see anything of.
   */
  notificationVisible(id: Identity, method: string | undefined, params: Record<string, unknown> | undefined, facts?: Partial<RequestFacts>): boolean {
    const policy = this.#authz.policyFor(id);
    switch (method) {
      case "notifications/resources/updated":
        return typeof params?.uri === "string" && this.#listedUri(policy, id, params.uri, facts);
      case "notifications/tools/list_changed":
        return policy.any("tools");
      case "notifications/prompts/list_changed":
        return policy.any("prompts");
      case "notifications/resources/list_changed":
        return policy.any("resources");
    }
    return true;
  }

  /** Filters a list result for this client (and, for tools, by integrity). Returns undefined when unchanged. */
  filterList(id: Identity, method: string, result: unknown, facts?: Partial<RequestFacts>): unknown {
    if (!result || typeof result !== "object") return result;
    const policy = this.#authz.policyFor(id);
    const r = result as Record<string, unknown>;
    switch (method) {
      case "tools/list": {
        if (!Array.isArray(r.tools)) return result;
        const entries = this.#catalog.learn(r.tools);
        const allowed = new Set(entries.filter((e) => e.assessment.verdict.allowed).map((e) => e.tool.name));
        return {
          ...r,
          tools: r.tools.filter((t) => allowed.has((t as { name: string }).name) && this.#listedName(policy, id, "tools", (t as { name: string }).name, facts)),
        };
      }
      case "resources/list":
        if (!Array.isArray(r.resources)) return result;
        return { ...r, resources: r.resources.filter((x) => typeof x?.uri === "string" && this.#listedUri(policy, id, x.uri, facts)) };
      case "resources/templates/list":
        if (!Array.isArray(r.resourceTemplates)) return result;
        return {
          ...r,
          resourceTemplates: r.resourceTemplates.filter((x) => typeof x?.uriTemplate === "string" && this.#listedUri(policy, id, x.uriTemplate, facts)),
        };
      case "prompts/list":
        if (!Array.isArray(r.prompts)) return result;
        return { ...r, prompts: r.prompts.filter((x) => typeof x?.name === "string" && this.#listedName(policy, id, "prompts", x.name, facts)) };
    }
    return result;
  }
}

export const LIST_METHODS = new Set(["tools/list", "resources/list", "resources/templates/list", "prompts/list"]);

/** For streams where the request is unknown (GET/resumed streams): the list method a result's shape implies. */
export function listMethodOf(result: unknown): string | undefined {
  if (!result || typeof result !== "object") return undefined;
  const r = result as Record<string, unknown>;
  if (Array.isArray(r.tools)) return "tools/list";
  if (Array.isArray(r.resources)) return "resources/list";
  if (Array.isArray(r.resourceTemplates)) return "resources/templates/list";
  if (Array.isArray(r.prompts)) return "prompts/list";
  return undefined;
}
