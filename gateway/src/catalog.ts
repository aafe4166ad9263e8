// What the gateway knows about the upstream's tools: learned from every tools/list answer that passes
// through it and from its own tools/list calls (at start, and when a client calls a tool it has not
// seen). Each tool carries its integrity assessment and a compiled JSON Schema validator for its
// inputSchema; validators are compiled once per fingerprint, never per call.
import { createRequire } from "node:module";
import type { ErrorObject, ValidateFunction } from "ajv";
import type { GatewayConfig } from "../../contract/gateway-config.ts";
import { type ToolAssessment, type ToolLike, assessTool } from "./integrity.ts";
import { errorKind, log } from "./log.ts";

// ajv is CommonJS; createRequire keeps its classes' types without default-import interop quirks.
const require = createRequire(import.meta.url);
const { Ajv } = require("ajv") as typeof import("ajv");
const { Ajv2020 } = require("ajv/dist/2020.js") as typeof import("ajv/dist/2020.js");
const addFormats = require("ajv-formats") as typeof import("ajv-formats").default;

export interface ToolEntry {
  tool: ToolLike;
  assessment: ToolAssessment;
  /** undefined when the schema could not be compiled: calls are refused (fail closed). */
  validate: ValidateFunction | undefined;
}

export interface CatalogEvents {
  drift(tool: string, mode: "Block" | "Warn"): void;
  finding(tool: string, rule: string): void;
}

function makeAjv<T extends InstanceType<typeof Ajv> | InstanceType<typeof Ajv2020>>(A: new (o: object) => T): T {
  const ajv = new A({ strict: false, allErrors: false, validateFormats: true, coerceTypes: false, useDefaults: false });
  addFormats(ajv);
  return ajv;
}

export function describeAjvError(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return "arguments do not match the tool's input schema";
  const where = e.instancePath ? `argument ${e.instancePath.slice(1).replace(/\//g, ".")}` : "arguments";
  return `${where} ${e.message ?? "invalid"}`.slice(0, 200);
}

export class ToolCatalog {
  readonly #policy: GatewayConfig["tools"];
  readonly #pins: Map<string, string>;
  readonly #events: CatalogEvents;
  readonly #tools = new Map<string, ToolEntry>();
  readonly #byFingerprint = new Map<string, ToolEntry>();
  readonly #ajv7 = makeAjv(Ajv);
  readonly #ajv2020 = makeAjv(Ajv2020);
  #fetcher: (() => Promise<readonly unknown[]>) | undefined;
  #fetching: Promise<void> | undefined;
  #lastFetch = 0;
  loaded = false;

  constructor(policy: GatewayConfig["tools"], events: CatalogEvents) {
    this.#policy = policy;
    this.#pins = new Map(policy.pinned.map((p) => [p.name, p.sha256]));
    this.#events = events;
  }

  setFetcher(f: () => Promise<readonly unknown[]>): void {
    this.#fetcher = f;
  }

  get(name: string): ToolEntry | undefined {
    return this.#tools.get(name);
  }

  get size(): number {
    return this.#tools.size;
  }

  /** Records the tools of one tools/list page; returns their entries in order. */
  learn(tools: readonly unknown[]): ToolEntry[] {
    const out: ToolEntry[] = [];
    for (const t of tools) {
      if (!t || typeof t !== "object" || typeof (t as ToolLike).name !== "string") continue;
      out.push(this.#learnOne(t as ToolLike));
    }
    this.loaded = true;
    return out;
  }

  #learnOne(tool: ToolLike): ToolEntry {
    const probe = assessTool(tool, this.#policy, this.#pins);
    const known = this.#byFingerprint.get(probe.fingerprint);
    if (known) {
      this.#tools.set(tool.name, known);
      return known;
    }
    // First time this exact definition is seen: report it once, compile its validator once.
    const { verdict, findings } = probe;
    for (const f of findings) {
      this.#events.finding(tool.name, f.rule);
      log("warn", "tool description finding", { tool: tool.name, rule: f.rule, excerpt: f.excerpt });
    }
    if (verdict.status === "drift" || verdict.status === "drift-warn") {
      const mode = verdict.status === "drift" ? "Block" : "Warn";
      this.#events.drift(tool.name, mode);
      log("warn", "tool differs from its pin", { tool: tool.name, fingerprint: probe.fingerprint, action: mode });
    } else if (!verdict.allowed) log("warn", "tool hidden", { tool: tool.name, reason: verdict.reason });
    const entry: ToolEntry = { tool, assessment: probe, validate: this.#compile(tool) };
    if (this.#byFingerprint.size > 5000) this.#byFingerprint.clear();
    this.#byFingerprint.set(probe.fingerprint, entry);
    this.#tools.set(tool.name, entry);
    return entry;
  }

  #compile(tool: ToolLike): ValidateFunction | undefined {
    const schema = tool.inputSchema ?? { type: "object" };
    if (typeof schema !== "object" || schema === null) return undefined;
    const { $schema, $id: _id, ...rest } = schema as Record<string, unknown>;
    const ajv = typeof $schema === "string" && $schema.includes("2020-12") ? this.#ajv2020 : this.#ajv7;
    try {
      return ajv.compile(rest);
    } catch (e) {
      log("warn", "tool input schema cannot be compiled; calls to it are refused", { tool: tool.name, error: errorKind(e) });
      return undefined;
    }
  }

  /** Makes sure `name` is known, fetching the upstream's list (single flight, at most every 2 s). */
  async ensure(name: string): Promise<ToolEntry | undefined> {
    const hit = this.#tools.get(name);
    if (hit || !this.#fetcher) return hit;
    if (!this.#fetching && Date.now() - this.#lastFetch > 2000) await this.refresh().catch(() => undefined);
    else if (this.#fetching) await this.#fetching.catch(() => undefined);
    return this.#tools.get(name);
  }

  refresh(): Promise<void> {
    const f = this.#fetcher;
    if (!f) return Promise.resolve();
    this.#fetching ??= (async () => {
      this.#lastFetch = Date.now();
      try {
        this.learn(await f());
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }
}
