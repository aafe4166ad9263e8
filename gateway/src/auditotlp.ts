// Audit lines to an OpenTelemetry logs endpoint (OTLP/HTTP, JSON encoding): each audit line, byte for
// byte (hash-chain fields and checkpoints included), becomes one log record's string body, so the lines a
// collector stores verify with `mcp-bastion audit verify` like the gateway's stdout.
//
// Why not the OpenTelemetry JS SDK (sdk-logs + exporter-logs-otlp-http): its BatchLogRecordProcessor
// hands a batch to the exporter once, and the exporter retries it at most 5 times within its export
// timeout (about 10 s); after that the batch is discarded. A collector that restarts for longer than that
// would lose audit lines, which is what this exporter must not do. Its drops are also not countable from
// outside (a diag message). The wire format is a few lines of JSON, so the queue and the retry policy are
// ours: a batch leaves the queue only when the collector has accepted it.
//
// Guarantees, said plainly: lines wait in a bounded in-memory buffer (`bufferLines`) and are retried
// with exponential backoff for as long as the collector is unreachable or answers 429/502/503/504; while
// the buffer is full, new lines are dropped (the oldest, already queued lines are kept, so what arrives
// is a contiguous stretch of the chain) and counted. A batch the collector refuses as malformed (another
// 4xx) cannot succeed by retrying: it is dropped and counted too. Delivery is at least once: a batch
// whose answer was lost in a restart is sent again (the collector may store it twice; `seq` tells).
import { Counter, Gauge, type Registry } from "prom-client";
import type { AuditSink } from "./audit.ts";
import { errorKind, log } from "./log.ts";

export interface OtlpAuditOptions {
  /** Base URL of the OTLP/HTTP receiver (`/v1/logs` is appended unless the URL already ends with it). */
  endpoint: string;
  /** Most lines held while the collector is unreachable; more are dropped and counted. */
  bufferLines: number;
  /** Resource attributes of every record (service.name, the McpServer). */
  resource: Record<string, string>;
  /** Most lines in one request (default 512). */
  batchLines?: number;
  /** Backoff after a failed export: doubles from `minBackoffMs` (default 100) up to `maxBackoffMs` (default 5000). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** One request's deadline (default 10 s). */
  requestTimeoutMs?: number;
}

export type DropReason = "buffer-full" | "rejected" | "shutdown";

export interface OtlpAuditStats {
  exported: number;
  dropped: Record<DropReason, number>;
  /** Export attempts that failed and will be retried. */
  retries: number;
  buffered: number;
}

/** Where the records go: the full URL of the logs signal. */
export function logsUrl(endpoint: string): string {
  return endpoint.endsWith("/v1/logs") ? endpoint : `${endpoint.replace(/\/+$/, "")}/v1/logs`;
}

function attributes(attrs: Record<string, string>): string {
  return JSON.stringify(Object.entries(attrs).map(([key, v]) => ({ key, value: { stringValue: v } })));
}

/**
 * Pure: one OTLP/HTTP JSON ExportLogsServiceRequest for `lines` (observed at `observedNs[i]`, nanoseconds
 * since the epoch as a decimal string, as the OTLP JSON mapping writes 64-bit integers).
 */
export function encodeLogsRequest(resourceJson: string, lines: readonly string[], observedNs: readonly string[]): string {
  const records = lines.map(
    (line, i) =>
      `{"timeUnixNano":"${observedNs[i]}","observedTimeUnixNano":"${observedNs[i]}","severityNumber":9,"severityText":"INFO","body":{"stringValue":${JSON.stringify(line)}}}`,
  );
  return `{"resourceLogs":[{"resource":{"attributes":${resourceJson}},"scopeLogs":[{"scope":{"name":"mcp-bastion.audit"},"logRecords":[${records.join(",")}]}]}]}`;
}

/** Pure: whether an HTTP status means "try the same batch again later" (the OTLP/HTTP specification's list). */
export function retryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504;
}

/** Pure: the wait before retry number `attempt` (0-based): doubling, capped, with up to 20% jitter below the cap. */
export function backoffMs(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const base = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + 0.2 * random()));
}

/**
 * An AuditSink that forwards every line to an OTLP logs endpoint. `write` costs a split and array pushes
 * (the audit log calls it once per 20 ms batch); sending happens on its own, one request at a time.
 */
export class OtlpAuditExporter {
  readonly url: string;
  readonly #capacity: number;
  readonly #batch: number;
  readonly #min: number;
  readonly #max: number;
  readonly #timeout: number;
  readonly #resource: string;
  // The queue: lines and the time each was handed over; `#head` is the first unsent one (compacted as it grows).
  #lines: string[] = [];
  #times: string[] = [];
  #head = 0;
  #sending = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #abort = new AbortController();
  #lastDropLog = 0;
  #failing = false;
  readonly stats: OtlpAuditStats = { exported: 0, dropped: { "buffer-full": 0, rejected: 0, shutdown: 0 }, retries: 0, buffered: 0 };

  constructor(opts: OtlpAuditOptions) {
    this.url = logsUrl(opts.endpoint);
    this.#capacity = opts.bufferLines;
    this.#batch = opts.batchLines ?? 512;
    this.#min = opts.minBackoffMs ?? 100;
    this.#max = opts.maxBackoffMs ?? 5000;
    this.#timeout = opts.requestTimeoutMs ?? 10_000;
    this.#resource = attributes(opts.resource);
  }

  get #size(): number {
    return this.#lines.length - this.#head;
  }

  write(chunk: string): void {
    if (this.#closed) return;
    const now = `${BigInt(Date.now()) * 1_000_000n}`;
    let start = 0;
    let dropped = 0;
    while (start < chunk.length) {
      let end = chunk.indexOf("\n", start);
      if (end === -1) end = chunk.length;
      if (end > start) {
        if (this.#size >= this.#capacity) dropped++;
        else {
          this.#lines.push(chunk.slice(start, end));
          this.#times.push(now);
        }
      }
      start = end + 1;
    }
    this.stats.buffered = this.#size;
    if (dropped > 0) this.#dropped("buffer-full", dropped);
    if (!this.#sending && !this.#retryTimer) void this.#pump();
  }

  #dropped(reason: DropReason, n: number): void {
    this.stats.dropped[reason] += n;
    const t = Date.now();
    // Said on stderr at most every 10 s (the counter has the exact number): a full buffer drops on every write.
    if (reason !== "buffer-full" || t - this.#lastDropLog >= 10_000) {
      if (reason === "buffer-full") this.#lastDropLog = t;
      log("warn", "audit lines not exported over OTLP", {
        reason,
        dropped: n,
        droppedTotal: this.stats.dropped[reason],
        bufferLines: this.#capacity,
        endpoint: this.url,
      });
    }
  }

  /** Sends batches until the queue is empty or an export fails (then a retry is scheduled). */
  async #pump(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      while (this.#size > 0) {
        const n = Math.min(this.#batch, this.#size);
        const lines = this.#lines.slice(this.#head, this.#head + n);
        const body = encodeLogsRequest(this.#resource, lines, this.#times.slice(this.#head, this.#head + n));
        const outcome = await this.#send(body);
        if (outcome.kind === "retry") {
          this.stats.retries++;
          if (!this.#failing) {
            this.#failing = true;
            log("warn", "audit OTLP export failing; lines are kept and retried", {
              endpoint: this.url,
              error: outcome.why,
              buffered: this.#size,
              bufferLines: this.#capacity,
            });
          }
          if (this.#closed) return;
          // The collector's Retry-After is honoured (up to a minute); otherwise our own backoff.
          const wait = outcome.afterMs !== undefined ? Math.min(outcome.afterMs, 60_000) : backoffMs(this.#attempt++, this.#min, this.#max);
          this.#retryTimer = setTimeout(() => {
            this.#retryTimer = undefined;
            void this.#pump();
          }, wait);
          this.#retryTimer.unref();
          return;
        }
        if (this.#failing) {
          this.#failing = false;
          log("info", "audit OTLP export recovered", { endpoint: this.url, buffered: this.#size });
        }
        this.#attempt = 0;
        this.#head += n;
        if (outcome.kind === "rejected") this.#dropped("rejected", n);
        else {
          this.stats.exported += n - outcome.rejected;
          if (outcome.rejected > 0) this.#dropped("rejected", outcome.rejected);
        }
        // Compact once the sent part dominates, so the arrays do not grow without bound.
        if (this.#head > 4096 && this.#head * 2 > this.#lines.length) {
          this.#lines = this.#lines.slice(this.#head);
          this.#times = this.#times.slice(this.#head);
          this.#head = 0;
        }
        this.stats.buffered = this.#size;
      }
    } finally {
      this.#sending = false;
    }
  }

  async #send(body: string): Promise<{ kind: "ok"; rejected: number } | { kind: "rejected" } | { kind: "retry"; why: string; afterMs?: number }> {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeout)]);
    let res: Response;
    try {
      res = await fetch(this.url, { method: "POST", headers: { "content-type": "application/json" }, body, signal });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      return { kind: "retry", why: cause ?? errorKind(e) };
    }
    const text = await res.text().catch(() => "");
    if (res.ok) {
      // A 200 may still refuse some records (partialSuccess.rejectedLogRecords): those cannot be sent again.
      let rejected = 0;
      try {
        const n = Number((JSON.parse(text) as { partialSuccess?: { rejectedLogRecords?: unknown } })?.partialSuccess?.rejectedLogRecords ?? 0);
        if (Number.isFinite(n) && n > 0) rejected = n;
      } catch {
        // An empty or non-JSON success body accepts everything.
      }
      return { kind: "ok", rejected };
    }
    if (retryableStatus(res.status)) {
      const ra = Number(res.headers.get("retry-after"));
      return { kind: "retry", why: `HTTP ${res.status}`, ...(Number.isFinite(ra) && ra > 0 ? { afterMs: ra * 1000 } : {}) };
    }
    log("warn", "audit OTLP endpoint refused a batch; it cannot succeed by retrying", { endpoint: this.url, status: res.status });
    return { kind: "rejected" };
  }

  /** The audit log's sink: `base` (stdout unless given) and this exporter. */
  sink(base: AuditSink = process.stdout): AuditSink {
    return teeSink(base, this);
  }

  /**
   * Sends what is buffered, for at most `deadlineMs` (a stopping pod has a grace period); whatever is
   * still buffered then is counted as dropped ("shutdown"). Later writes are ignored.
   */
  async close(deadlineMs = 5000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const end = Date.now() + deadlineMs;
    while (this.#size > 0 && Date.now() < end) {
      if (this.#retryTimer) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = undefined;
      }
      if (!this.#sending) void this.#pump();
      await new Promise((r) => setTimeout(r, 200));
    }
    this.#abort.abort();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const left = this.#size;
    this.#head = this.#lines.length;
    this.stats.buffered = 0;
    if (left > 0) this.#dropped("shutdown", left);
  }
}

/** Every write goes to each sink (stdout and the OTLP exporter): stdout stays the record of last resort. */
export function teeSink(...sinks: AuditSink[]): AuditSink {
  return { write: (chunk: string) => sinks.map((s) => s.write(chunk)) };
}

/**
 * The exporter's figures on the gateway's /metrics, read at scrape time: lines exported, lines dropped
 * by reason (the chart's PrometheusRule can alert on any drop), retried exports, lines waiting now.
 */
export function registerAuditExportMetrics(registry: Registry, exporter: OtlpAuditExporter): void {
  const s = exporter.stats;
  new Counter({
    name: "mcp_gateway_audit_otlp_exported_total",
    help: "Audit lines accepted by the OTLP logs endpoint",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(s.exported);
    },
  });
  new Counter({
    name: "mcp_gateway_audit_otlp_dropped_total",
    help: "Audit lines not exported over OTLP, by reason: buffer-full (endpoint unreachable longer than the buffer holds), rejected (refused as malformed), shutdown (still buffered when the gateway stopped)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(s.dropped)) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: "mcp_gateway_audit_otlp_retries_total",
    help: "OTLP audit exports that failed and were retried (endpoint unreachable, 429, 502, 503, 504)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(s.retries);
    },
  });
  new Gauge({
    name: "mcp_gateway_audit_otlp_buffered_lines",
    help: "Audit lines waiting to be exported over OTLP",
    registers: [registry],
    collect() {
      this.set(s.buffered);
    },
  });
}

/** The exporter a gateway config asks for (audit.otlp), its metrics registered; undefined without one. */
export function auditExportFromConfig(
  c: { audit: { otlp?: { endpoint: string; bufferLines: number } }; server: { namespace: string; name: string } },
  registry: Registry,
): OtlpAuditExporter | undefined {
  if (!c.audit.otlp) return undefined;
  const exporter = new OtlpAuditExporter({
    endpoint: c.audit.otlp.endpoint,
    bufferLines: c.audit.otlp.bufferLines,
    resource: { "service.name": "mcp-bastion-gateway", "mcp.server": `${c.server.namespace}/${c.server.name}` },
  });
  registerAuditExportMetrics(registry, exporter);
  log("info", "audit lines also exported over OTLP", { endpoint: exporter.url, bufferLines: c.audit.otlp.bufferLines });
  return exporter;
}
