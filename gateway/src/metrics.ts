// Prometheus metrics on the admin port. Hot-path phase timings are accumulated in plain numbers and
// exported at scrape time, so measuring where time goes costs a performance.now() per phase boundary
// (a double: process.hrtime.bigint() allocated a BigInt on each of the ~8 reads per request).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ApiKeyStore } from "./auth/apikeys.ts";

/** Finished requests queued before they are applied to prom-client (see Metrics.observe). */
const PENDING = 1024;

export const PHASES = ["auth", "parse", "policy", "validate", "audit", "upstream"] as const;
export type Phase = (typeof PHASES)[number];

/** Method label values are bounded: anything else is "other" (clients choose method names). */
const METHODS = new Set([
  "initialize",
  "ping",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
  "response",
  "GET",
  "DELETE",
  "POST",
  "sse/connect",
  "notifications/initialized",
  "notifications/cancelled",
  "notifications/progress",
  "notifications/roots/list_changed",
]);

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<"method" | "outcome">;
  readonly authFailures: Counter<"reason">;
  readonly rateLimited: Counter<"scope">;
  readonly denied: Counter<"kind">;
  readonly toolDrift: Counter<"tool" | "action">;
  readonly findings: Counter<"tool" | "rule">;
  readonly latency: Histogram<"method">;
  readonly inflight: Gauge;
  readonly sessions: Gauge;
  /** Sum of seconds and count per phase (see PHASES). */
  readonly phaseSeconds: Record<Phase, number> = { auth: 0, parse: 0, policy: 0, validate: 0, audit: 0, upstream: 0 };
  readonly phaseCount: Record<Phase, number> = { auth: 0, parse: 0, policy: 0, validate: 0, audit: 0, upstream: 0 };

  constructor(labels: Record<string, string>, getters: { inflight: () => number; sessions: () => number }) {
    const r = this.registry;
    r.setDefaultLabels(labels);
    // The event-loop-lag histogram samples on a libuv timer; at prom-client's default 10 ms that timer
    // wakes an idle gateway 100 times a second (about 0.5% of a core at rest on the development VM, for
    // every sidecar). 100 ms still gives the lag percentiles a scrape reads.
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 100 });
    const self = this;
    // Requests and their latencies are counted in plain arrays on the hot path and applied here (drain()).
    this.requests = new Counter({
      name: "mcp_gateway_requests_total",
      help: "MCP requests by method and outcome",
      labelNames: ["method", "outcome"],
      registers: [r],
      collect() {
        self.drain();
      },
    });
    this.authFailures = new Counter({
      name: "mcp_gateway_auth_failures_total",
      help: "Authentication failures by reason",
      labelNames: ["reason"],
      registers: [r],
    });
    this.rateLimited = new Counter({ name: "mcp_gateway_rate_limited_total", help: "Requests refused by a rate limit", labelNames: ["scope"], registers: [r] });
    this.denied = new Counter({
      name: "mcp_gateway_denied_total",
      help: "Requests refused by authorization or tool integrity",
      labelNames: ["kind"],
      registers: [r],
    });
    this.toolDrift = new Counter({
      name: "mcp_gateway_tool_drift_total",
      help: "Tool definitions that differ from their pin",
      labelNames: ["tool", "action"],
      registers: [r],
    });
    this.findings = new Counter({
      name: "mcp_gateway_description_findings_total",
      help: "Suspicious instructions found in tool descriptions",
      labelNames: ["tool", "rule"],
      registers: [r],
    });
    this.latency = new Histogram({
      name: "mcp_gateway_request_duration_seconds",
      help: "Latency of MCP requests through the gateway",
      labelNames: ["method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [r],
      collect() {
        self.drain();
      },
    });
    this.inflight = new Gauge({
      name: "mcp_gateway_inflight_requests",
      help: "Requests in flight",
      registers: [r],
      collect() {
        this.set(getters.inflight());
      },
    });
    this.sessions = new Gauge({
      name: "mcp_gateway_sessions",
      help: "MCP sessions bound to a client",
      registers: [r],
      collect() {
        this.set(getters.sessions());
      },
    });
    new Gauge({
      name: "mcp_gateway_phase_seconds_total",
      help: "Seconds spent in each gateway phase (auth, parse, policy, validate, audit, upstream)",
      labelNames: ["phase"],
      registers: [r],
      collect() {
        for (const p of PHASES) this.set({ phase: p }, self.phaseSeconds[p]);
      },
    });
    new Gauge({
      name: "mcp_gateway_phase_count_total",
      help: "Number of timed passes through each gateway phase",
      labelNames: ["phase"],
      registers: [r],
      collect() {
        for (const p of PHASES) this.set({ phase: p }, self.phaseCount[p]);
      },
    });
  }

  /** method label -> outcome -> index in #childList (no key string built per request). */
  readonly #children = new Map<string, Map<string, number>>();
  readonly #childList: { count: { inc(): void }; latency: { observe(v: number): void } }[] = [];
  /** Finished requests not yet applied to prom-client: the label child's index and the latency. */
  #pendingChild = new Uint16Array(PENDING);
  #pendingSeconds = new Float64Array(PENDING);
  #pending = 0;

  /**
   * Counts one finished request: two array writes. The counter and the histogram (prom-client hashes
   * labels on every call) are updated in a batch at scrape time, or when PENDING requests are queued.
   */
  observe(method: string, outcome: string, seconds: number): void {
    const m = METHODS.has(method) ? method : "other";
    let byOutcome = this.#children.get(m);
    if (byOutcome === undefined) {
      byOutcome = new Map();
      this.#children.set(m, byOutcome);
    }
    let c = byOutcome.get(outcome);
    if (c === undefined) {
      c = this.#childList.length;
      this.#childList.push({ count: this.requests.labels(m, outcome), latency: this.latency.labels(m) });
      byOutcome.set(outcome, c);
    }
    this.#pendingChild[this.#pending] = c;
    this.#pendingSeconds[this.#pending] = seconds;
    if (++this.#pending === PENDING) this.drain();
  }

  /** Applies the queued requests to the prom-client metrics. */
  drain(): void {
    const n = this.#pending;
    this.#pending = 0;
    for (let i = 0; i < n; i++) {
      const c = this.#childList[this.#pendingChild[i]!]!;
      c.count.inc();
      c.latency.observe(this.#pendingSeconds[i]!);
    }
  }

  /** Adds the time since `startMs` (performance.now()) to phase p; returns now, the next phase's start. */
  phase(p: Phase, startMs: number): number {
    const now = performance.now();
    this.phaseSeconds[p] += (now - startMs) / 1000;
    this.phaseCount[p]++;
    return now;
  }
}

/**
 * API key expiry, computed at scrape time from the keys loaded now (the keys live in a Secret the
 * operator never reads, so the gateway is where rotation is visible): keys expiring within 14 days
 * (the chart's PrometheusRule alerts on it), keys already expired, keys without an expiry per client
 * (what the rotation checklist item cannot see), and key file lines that could not be loaded.
 */
export function registerApiKeyMetrics(registry: Registry, store: ApiKeyStore, now: () => number = Date.now): void {
  let cached: { at: number; stats: ReturnType<ApiKeyStore["stats"]> } | undefined;
  // One computation per scrape, shared by the four gauges.
  const stats = () => {
    const t = now();
    if (!cached || t - cached.at > 1000) cached = { at: t, stats: store.stats(t) };
    return cached.stats;
  };
  new Gauge({
    name: "mcp_gateway_api_keys_expiring_soon",
    help: "API keys that expire within 14 days (not yet expired)",
    registers: [registry],
    collect() {
      this.set(stats().expiringSoon);
    },
  });
  new Gauge({
    name: "mcp_gateway_api_keys_expired",
    help: "API keys still in the Secret whose expiry has passed (refused with 401)",
    registers: [registry],
    collect() {
      this.set(stats().expired);
    },
  });
  new Gauge({
    name: "mcp_gateway_api_keys_without_expiry",
    help: "API keys without an expiry, per client",
    labelNames: ["client"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [client, n] of stats().withoutExpiry) this.set({ client }, n);
    },
  });
  new Gauge({
    name: "mcp_gateway_api_key_entries_invalid",
    help: "Lines of API key files that could not be loaded (malformed digest, bad expiry...), per client",
    labelNames: ["client"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [client, n] of stats().invalid) this.set({ client }, n);
    },
  });
}
