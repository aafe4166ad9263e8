// Authorization: default deny. A client may use a tool/resource/prompt when at least one rule that
// names the client allows it and no rule that names the client denies it (deny wins).
import type { GatewayConfig } from "../../contract/gateway-config.ts";
import { anyGlob } from "./glob.ts";
import { canonicalResourcePattern } from "./names.ts";

export interface Identity {
  /** Stable key for limits, sessions and logs: "apikey:NAME", "jwt:SUB", "spiffe:URI". */
  key: string;
  kind: "apikey" | "jwt" | "spiffe";
  name: string;
  groups?: readonly string[];
  /** OAuth scopes of a JWT client (`scope`/`scp` claims); absent for API keys and SPIFFE IDs. */
  scopes?: readonly string[];
  /** The verified token's claims, for CEL conditions (client.claims). */
  claims?: Readonly<Record<string, unknown>>;
}

export type Kind = "tools" | "resources" | "prompts";
type Rule = GatewayConfig["authorization"]["rules"][number];

/** Whether a rule names this client (by API key name, SPIFFE ID, JWT subject or group); the one place this is decided. */
export interface RuleClients {
  apiKeys?: readonly string[];
  spiffeIds?: readonly string[];
  subjects?: readonly string[];
  groups?: readonly string[];
}
export function ruleNamesClient(rule: { clients: RuleClients }, id: Identity): boolean {
  const c = rule.clients;
  switch (id.kind) {
    case "apikey":
      return anyGlob(c.apiKeys, id.name);
    case "spiffe":
      return anyGlob(c.spiffeIds, id.name);
    case "jwt":
      if (anyGlob(c.subjects, id.name)) return true;
      if (c.groups && id.groups) for (const g of id.groups) if (anyGlob(c.groups, g)) return true;
      return false;
  }
}

/**
 * The decision function for one identity, with its answers memoized (rules never change at runtime).
 * Resource names must be canonical URIs (names.ts canonicalResourceUri): resource rules are kept in
 * that same canonical form, so both sides of the match are the string the server resolves.
 */
export interface Policy {
  allows(kind: Kind, name: string): boolean;
  /** issue 11: whether any rule naming the client allows anything of this kind (what server/discover may announce). */
  any(kind: Kind): boolean;
}

function canonicalRule(rule: Rule): Rule {
  const r = rule.resources;
  if (!r) return rule;
  return { ...rule, resources: { allow: r.allow.map(canonicalResourcePattern), deny: r.deny.map(canonicalResourcePattern) } };
}

export class Authorizer {
  readonly #rules: readonly Rule[];
  readonly #policies = new Map<string, Policy>();

  constructor(rules: readonly Rule[]) {
    this.#rules = rules.map(canonicalRule);
  }

  policyFor(id: Identity): Policy {
    const cacheKey = id.groups ? `${id.key}\u0000${id.groups.join("\u0000")}` : id.key;
    let p = this.#policies.get(cacheKey);
    if (p) return p;
    const rules = this.#rules.filter((r) => ruleNamesClient(r, id));
    const memo = new Map<string, boolean>();
    p = {
      any: (kind) => rules.some((r) => (r[kind]?.allow.length ?? 0) > 0),
      allows(kind, name) {
        const k = `${kind}\u0000${name}`;
        let v = memo.get(k);
        if (v === undefined) {
          let allowed = false;
          let denied = false;
          for (const r of rules) {
            const section = r[kind];
            if (!section) continue;
            if (anyGlob(section.deny, name)) denied = true;
            if (anyGlob(section.allow, name)) allowed = true;
          }
          v = allowed && !denied;
          if (memo.size < 10000) memo.set(k, v);
        }
        return v;
      },
    };
    // Bounded: JWT subjects are unbounded in number.
    if (this.#policies.size >= 10000) this.#policies.clear();
    this.#policies.set(cacheKey, p);
    return p;
  }
}
