// Prometheus metrics (own registry, so tests can run several operators in one process) and the
// /metrics, /healthz and /readyz endpoints.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<"result">;
  readonly reconcileDuration: Histogram;
  readonly writes: Counter<"verb" | "kind">;
  readonly queueDepth: Gauge;
  readonly inFlight: Gauge;
  readonly leader: Gauge;
  readonly watchErrors: Counter<"kind">;
  readonly lists: Counter<"kind" | "reason">;
  readonly servers: Gauge<"condition">;
  private requestSource: (() => ReadonlyMap<string, number>) | undefined;
  /** Where the per-condition server counts come from (the controller's cache). */
  serverSource: (() => Record<string, number>) | undefined;
  /** Where the work queue's depth and in-flight count come from. */
  queueSource: (() => { depth: number; inFlight: number }) | undefined;

  /** Where the request counts come from (the Kubernetes client's stats). */
  countRequests(source: () => ReadonlyMap<string, number>): void {
    this.requestSource = source;
  }

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: "mcp_bastion_operator_" });
    const registers = [this.registry];
    const self = this;
    this.reconciles = new Counter({
      name: "mcp_bastion_reconcile_total",
      help: "Reconciles of McpServers by result (success, error).",
      labelNames: ["result"],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: "mcp_bastion_reconcile_duration_seconds",
      help: "Duration of one McpServer reconcile.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.writes = new Counter({
      name: "mcp_bastion_api_writes_total",
      help: "Writes sent to the API server by verb and kind.",
      labelNames: ["verb", "kind"],
      registers,
    });
    this.queueDepth = new Gauge({
      name: "mcp_bastion_workqueue_depth",
      help: "McpServers waiting for a reconcile.",
      registers,
      collect() {
        if (self.queueSource) this.set(self.queueSource().depth);
      },
    });
    this.inFlight = new Gauge({
      name: "mcp_bastion_workqueue_in_flight",
      help: "Reconciles running now.",
      registers,
      collect() {
        if (self.queueSource) this.set(self.queueSource().inFlight);
      },
    });
    this.leader = new Gauge({ name: "mcp_bastion_leader", help: "1 when this replica holds the leader Lease.", registers });
    this.watchErrors = new Counter({
      name: "mcp_bastion_watch_errors_total",
      help: "Watch/list failures (reconnected with backoff).",
      labelNames: ["kind"],
      registers,
    });
    new Gauge({
      name: "mcp_bastion_api_requests",
      help: "Requests sent to the API server since start, by verb (GET, LIST, WATCH, PATCH, POST, PUT, DELETE).",
      labelNames: ["verb"],
      registers,
      collect() {
        for (const [verb, n] of self.requestSource?.() ?? []) this.set({ verb }, n);
      },
    });
    this.lists = new Counter({
      name: "mcp_bastion_informer_lists_total",
      help: "Full lists by kind and reason: initial, gone (410: resourceVersion too old), errors (after repeated watch failures).",
      labelNames: ["kind", "reason"],
      registers,
    });
    this.servers = new Gauge({
      name: "mcp_bastion_servers",
      help: "McpServers whose condition (Reconciled, Ready, Degraded) is True.",
      labelNames: ["condition"],
      registers,
      collect() {
        const counts = self.serverSource?.();
        if (counts) for (const [condition, n] of Object.entries(counts)) this.set({ condition }, n);
      },
    });
  }
}

export interface HealthState {
  healthy(): boolean;
  ready(): boolean;
}

/** Serves /metrics, /healthz and /readyz on host:port (port 0: any free port). */
export async function serveEndpoints(metrics: OperatorMetrics, health: HealthState, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/readyz") {
      const ok = path === "/healthz" ? health.healthy() : health.ready();
      res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" }).end(ok ? "ok\n" : "not ready\n");
      return;
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
