// The gateway's HTTP front: authenticates every request, checks each JSON-RPC message, and either
// reverse-proxies it to a streamable-HTTP upstream (fast path: the upstream holds the MCP session, the
// gateway binds the session id to the client that created it) or hands it to a gateway-held session over
// a message channel (stdio bridge, HTTP+SSE upstream, and clients on the older HTTP+SSE transport).
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { AuditLog, type AuditResult, type AuditSink, auditOptionsFromConfig, auditResultOf, resultTap } from "./audit.ts";
import { Authenticator } from "./auth/index.ts";
import { Authorizer, type Identity } from "./authz.ts";
import { ToolCatalog } from "./catalog.ts";
import { type Channel, listToolsOver, openChannel } from "./channel.ts";
import type { GatewayConfig } from "./config.ts";
import { ERR, type JsonRpcId, type JsonRpcMessage, errorBody, shapeProblem } from "./jsonrpc.ts";
import { errorKind, log } from "./log.ts";
import { Metrics, registerApiKeyMetrics } from "./metrics.ts";
import { type Checked, LIST_METHODS, PolicyEngine, type Refusal, listMethodOf } from "./policy.ts";
import { type Limiter, LocalLimiter, RedisLimiter } from "./ratelimit.ts";
import { sanitizeBody, sanitizeRaw } from "./sanitize.ts";
import { SseRewriter } from "./sse.ts";
import { type Tracer, startTracer } from "./telemetry.ts";

export interface GatewayOptions {
  config: GatewayConfig;
  /** Where audit lines go (stdout by default). */
  auditSink?: AuditSink;
  jwksRefreshMs?: number;
  /** How often the API key directory is rescanned besides fs events. */
  apiKeyRescanMs?: number;
}

interface Ctx {
  t0: bigint;
  startMs: number;
  source: string;
  transport: "streamable-http" | "sse";
  identity?: Identity;
  method: string;
  tool?: string;
  args?: unknown;
  session?: string;
  done: boolean;
  holdsSlot: boolean;
  span?: { end(attrs: Record<string, string | number>): void };
  /** How the request was answered, for the audit line (status and sanitized error, not the content). */
  result?: AuditResult;
}

/** A session the gateway holds itself (message-channel upstreams, or clients on the older SSE transport). */
interface Hosted {
  id: string;
  owner: string;
  identity: Identity;
  channel: Channel;
  /** Requests waiting for their response: key = JSON of the id. */
  pending: Map<string, { method: string; deliver: (raw: string, msg: JsonRpcMessage) => void }>;
  /** Streamable HTTP GET stream, or the older transport's SSE stream. */
  stream?: ServerResponse;
  legacy: boolean;
  lastSeen: number;
}

interface Bound {
  owner: string;
  lastSeen: number;
}

const HOP_HEADERS = ["content-type", "mcp-session-id", "mcp-protocol-version", "cache-control"];
const MAX_SESSIONS = 10000;
const SESSION_IDLE_MS = 3_600_000;
/** Gateway-held sessions pin an upstream process (stdio) or stream: reclaimed sooner when idle. */
const HOSTED_IDLE_MS = 900_000;
const MAX_HOSTED_PER_CLIENT = 8;

/**
 * Like src.pipe(res), but chunks that arrive within one event-loop turn - typically the whole answer
 * to a fast tools/call, then the end - go out as one fixed-length response (headers and body in a
 * single write, no chunked framing) instead of one syscall per piece. Streams (progress, long answers)
 * still flow: held data is written on the next turn at the latest, chunked, with backpressure.
 */
function coalesce(src: NodeJS.ReadableStream, res: ServerResponse, status: number, headers: OutgoingHttpHeaders): void {
  let held: Buffer[] = [];
  let scheduled = false;
  const sse = String(headers["content-type"] ?? "").includes("text/event-stream");
  const take = () => {
    const data = held.length === 1 ? held[0]! : Buffer.concat(held);
    held = [];
    return sanitizeBody(data, sse);
  };
  const flush = () => {
    scheduled = false;
    if (res.writableEnded) return;
    if (!res.headersSent) res.writeHead(status, headers);
    if (held.length === 0) return;
    if (!res.write(take())) {
      src.pause();
      res.once("drain", () => src.resume());
    }
  };
  src.on("data", (c: Buffer | string) => {
    held.push(typeof c === "string" ? Buffer.from(c) : c);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  src.on("end", () => {
    if (res.writableEnded) return;
    if (res.headersSent) return void (held.length ? res.end(take()) : res.end());
    const data = held.length ? take() : Buffer.alloc(0);
    res.writeHead(status, { ...headers, "content-length": data.length }).end(data);
  });
}

function sourceOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
}

export class Gateway {
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly auth: Authenticator;
  readonly catalog: ToolCatalog;
  readonly audit: AuditLog;
  #policy!: PolicyEngine;
  #limiter!: Limiter;
  #tracer: Tracer | undefined;
  readonly #authz: Authorizer;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: "lifo" });
  readonly #bound = new Map<string, Bound>();
  readonly #hosted = new Map<string, Hosted>();
  readonly #mcpPath: string;
  readonly #upstreamUrl: URL | undefined;
  readonly #publicOrigin: string;
  readonly #metadataPath: string;
  #server: http.Server | undefined;
  #admin: http.Server | undefined;
  #inflight = 0;
  readonly #clientInflight = new Map<string, number>();
  #sweep: NodeJS.Timeout | undefined;
  #closing = false;
  #statelessUpstream = false;
  #refresh: NodeJS.Timeout | undefined;
  #changeTimer: NodeJS.Timeout | undefined;
  readonly #apiKeyRescanMs: number | undefined;

  constructor(opts: GatewayOptions) {
    const c = opts.config;
    this.config = c;
    this.#apiKeyRescanMs = opts.apiKeyRescanMs;
    const pub = new URL(c.publicUrl);
    this.#publicOrigin = pub.origin;
    this.#mcpPath = pub.pathname === "" ? "/" : pub.pathname;
    this.#metadataPath = `/.well-known/oauth-protected-resource${this.#mcpPath === "/" ? "" : this.#mcpPath}`;
    this.#upstreamUrl = c.upstream.transport === "streamable-http" ? new URL(c.upstream.url) : undefined;
    this.auth = new Authenticator(c.auth, { jwksRefreshMs: opts.jwksRefreshMs });
    this.#authz = new Authorizer(c.authorization.rules);
    this.metrics = new Metrics(
      { mcp_server: `${c.server.namespace}/${c.server.name}` },
      { inflight: () => this.#inflight, sessions: () => this.#bound.size + this.#hosted.size },
    );
    this.catalog = new ToolCatalog(c.tools, {
      drift: (tool, action) => this.metrics.toolDrift.inc({ tool, action }),
      finding: (tool, rule) => this.metrics.findings.inc({ tool, rule }),
    });
    this.audit = new AuditLog(c.audit.redactKeys, opts.auditSink, auditOptionsFromConfig(c.audit));
    if (this.auth.apiKeys) registerApiKeyMetrics(this.metrics.registry, this.auth.apiKeys);
  }

  get ready(): boolean {
    return !this.#closing && this.auth.ready && this.catalog.loaded;
  }

  async start(): Promise<{ port: number; adminPort: number }> {
    const c = this.config;
    this.#limiter =
      c.limits.mode === "redis"
        ? await RedisLimiter.connect(c.limits.redisUrl ?? "", `mcp-bastion:${c.server.namespace}/${c.server.name}:`)
        : new LocalLimiter();
    this.#policy = new PolicyEngine(c.limits, this.#limiter, this.#authz, this.catalog);
    if (c.telemetry.otlpEndpoint) this.#tracer = await startTracer(c.telemetry.otlpEndpoint, `${c.server.namespace}/${c.server.name}`);
    this.catalog.setFetcher(() => listToolsOver(openChannel(c.upstream, this.#agent), 10_000));
    await this.auth.start(this.#apiKeyRescanMs);
    // The catalog loads in the background: the gateway answers 503 on /readyz until it has the tool list.
    void this.#loadCatalog();

    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    if (c.listen.tls) {
      this.#server = https.createServer(
        { cert: readFileSync(c.listen.tls.certFile), key: readFileSync(c.listen.tls.keyFile), minVersion: "TLSv1.2", maxVersion: "TLSv1.3" },
        handler,
      );
    } else this.#server = http.createServer(handler);
    this.#server.keepAliveTimeout = 65_000;
    this.#server.headersTimeout = 20_000;
    this.#server.requestTimeout = 0; // per-request timeouts are ours (SSE streams are long-lived)
    this.#admin = http.createServer((req, res) => void this.#handleAdmin(req, res));
    await Promise.all([
      new Promise<void>((r) => this.#server!.listen(c.listen.port, c.listen.host, r)),
      new Promise<void>((r) => this.#admin!.listen(c.listen.adminPort, c.listen.host, r)),
    ]);
    this.#sweep = setInterval(() => this.#sweepSessions(), 60_000);
    this.#sweep.unref();
    // Servers that change tools without notifying are caught by a periodic re-read.
    this.#refresh = setInterval(() => void this.catalog.refresh().catch(() => undefined), 300_000);
    this.#refresh.unref();
    const port = (this.#server.address() as AddressInfo).port;
    const adminPort = (this.#admin.address() as AddressInfo).port;
    log("info", "gateway listening", { port, adminPort, upstream: c.upstream.transport, tls: !!c.listen.tls, limits: c.limits.mode });
    return { port, adminPort };
  }

  async #loadCatalog(): Promise<void> {
    for (let attempt = 0; !this.#closing && !this.catalog.loaded; attempt++) {
      try {
        await this.catalog.refresh();
        log("info", "tool catalog loaded", { tools: this.catalog.size });
      } catch (e) {
        if (attempt % 10 === 0) log("warn", "upstream tools/list failed; retrying", { error: errorKind(e) });
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000)));
      }
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#sweep) clearInterval(this.#sweep);
    if (this.#refresh) clearInterval(this.#refresh);
    if (this.#changeTimer) clearTimeout(this.#changeTimer);
    for (const h of this.#hosted.values()) {
      h.channel.close();
      h.stream?.end();
    }
    this.#hosted.clear();
    this.auth.stop();
    this.#server?.closeAllConnections();
    await Promise.all([
      new Promise((r) => (this.#server ? this.#server.close(r) : r(undefined))),
      new Promise((r) => (this.#admin ? this.#admin.close(r) : r(undefined))),
    ]);
    this.#agent.destroy();
    await this.#limiter?.close();
    await this.#tracer?.shutdown();
    this.audit.close();
  }

  /**
   * An upstream announced changed tools: re-read the list soon. Debounced (one refresh at most every
   * 2 s, after the burst) because servers announce changes on every new session, and for stdio each
   * refresh is a server process.
   */
  #toolsChanged() {
    if (this.#changeTimer || this.#closing) return;
    this.#changeTimer = setTimeout(() => {
      this.#changeTimer = undefined;
      void this.catalog.refresh().catch(() => undefined);
    }, 2000);
    this.#changeTimer.unref();
  }

  #sweepSessions() {
    const now = Date.now();
    for (const [k, s] of this.#bound) if (s.lastSeen < now - SESSION_IDLE_MS) this.#bound.delete(k);
    for (const [k, h] of this.#hosted) if (h.lastSeen < now - HOSTED_IDLE_MS && !h.stream && h.pending.size === 0) this.#dropHosted(k);
  }

  // ---------------------------------------------------------------- admin port

  async #handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") return void res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    if (path === "/readyz") {
      const ok = this.ready;
      return void res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ready\n" : "not ready\n");
    }
    if (path === "/metrics") {
      try {
        const body = await this.metrics.registry.metrics();
        return void res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(body);
      } catch {
        return void res.writeHead(500).end();
      }
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }

  // ---------------------------------------------------------------- MCP port

  #handle(req: IncomingMessage, res: ServerResponse) {
    res.on("error", () => undefined);
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (req.method === "GET" && (path === this.#metadataPath || path === "/.well-known/oauth-protected-resource")) {
      return this.#resourceMetadata(res);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== this.#publicOrigin) {
      // DNS-rebinding protection (MCP transports spec): browsers on other origins are refused.
      return void res.writeHead(403, { "content-type": "application/json" }).end(errorBody(null, ERR.denied, "origin not allowed"));
    }
    const ctx: Ctx = {
      t0: process.hrtime.bigint(),
      startMs: Date.now(),
      source: sourceOf(req),
      transport: "streamable-http",
      method: req.method ?? "?",
      done: false,
      holdsSlot: false,
    };
    let route: "mcp" | "sse" | "messages" | undefined;
    if (path === this.#mcpPath) route = "mcp";
    else if (path === "/sse") route = "sse";
    else if (path === "/messages" || path === "/message") route = "messages";
    if (!route) {
      return void res.writeHead(404, { "content-type": "application/json" }).end(errorBody(null, ERR.invalidRequest, "not found"));
    }
    if (route !== "mcp") ctx.transport = "sse";
    const a = this.auth.authenticate(req.headers);
    if (a instanceof Promise) a.then((r) => this.#authed(req, res, ctx, route, r), () => this.#fail(res, ctx, 500, ERR.internal, "internal error", "error"));
    else this.#authed(req, res, ctx, route, a);
  }

  #authed(req: IncomingMessage, res: ServerResponse, ctx: Ctx, route: "mcp" | "sse" | "messages", a: ReturnType<Authenticator["authenticate"]> extends infer T ? Awaited<T> : never) {
    let t = this.metrics.phase("auth", ctx.t0);
    if (!a.ok) {
      this.metrics.authFailures.inc({ reason: a.reason });
      req.resume();
      const challenge = `Bearer resource_metadata="${this.#publicOrigin}${this.#metadataPath}"${a.invalidToken ? `, error="invalid_token", error_description="${a.message}"` : ""}`;
      return this.#fail(res, ctx, 401, ERR.unauthorized, a.message, "unauthenticated", { "www-authenticate": challenge }, a.reason);
    }
    ctx.identity = a.identity;
    if (ctx.transport === "sse" && route === "sse") {
      if (req.method !== "GET") return this.#fail(res, ctx, 405, ERR.invalidRequest, "method not allowed", "invalid", { allow: "GET" });
      return void this.#openLegacy(req, res, ctx);
    }
    const m = req.method;
    if (m === "GET" || m === "DELETE") {
      if (route !== "mcp") return this.#fail(res, ctx, 405, ERR.invalidRequest, "method not allowed", "invalid", { allow: "POST" });
      return this.#getOrDelete(req, res, ctx);
    }
    if (m !== "POST") return this.#fail(res, ctx, 405, ERR.invalidRequest, "method not allowed", "invalid", { allow: "GET, POST, DELETE" });
    const max = this.config.limits.maxRequestBytes;
    const len = Number(req.headers["content-length"] ?? -1);
    if (len > max) {
      res.setHeader("connection", "close");
      req.resume();
      return this.#fail(res, ctx, 413, ERR.tooLarge, `request body larger than ${max} bytes`, "invalid");
    }
    const maxAll = this.config.limits.maxConcurrentRequests;
    const mine = this.#clientInflight.get(ctx.identity.key) ?? 0;
    // No client may hold more than half the slots, so one slow or hostile client cannot starve the others.
    if (this.#inflight >= maxAll || mine >= Math.max(1, Math.ceil(maxAll / 2))) {
      req.resume();
      this.metrics.rateLimited.inc({ scope: "concurrency" });
      return this.#fail(res, ctx, 503, ERR.overloaded, "too many concurrent requests; retry shortly", "rate-limited", { "retry-after": "1" });
    }
    this.#inflight++;
    this.#clientInflight.set(ctx.identity.key, mine + 1);
    ctx.holdsSlot = true;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (c: Buffer) => {
      if (tooBig) return;
      size += c.length;
      if (size > max) {
        tooBig = true;
        this.#fail(res, ctx, 413, ERR.tooLarge, `request body larger than ${max} bytes`, "invalid");
        // Closing the socket while the client is still sending makes the kernel answer its bytes
        // with a reset, and the client never reads the 413 (EPIPE/ECONNRESET). Discard the rest of
        // the body instead (`tooBig` drops it, nothing is buffered), but only for a few seconds: a
        // client that keeps streaming is cut off.
        setTimeout(() => {
          if (!req.complete) req.destroy();
        }, 5_000).unref();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (tooBig) return;
      t = process.hrtime.bigint();
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      let msg: unknown;
      try {
        msg = JSON.parse(body.toString("utf8"));
      } catch {
        this.metrics.phase("parse", t);
        return this.#fail(res, ctx, 400, ERR.parse, "parse error: the body is not valid JSON", "invalid");
      }
      const problem = shapeProblem(msg);
      t = this.metrics.phase("parse", t);
      if (problem) return this.#fail(res, ctx, 400, ERR.invalidRequest, `invalid request: ${problem}`, "invalid");
      const jm = msg as JsonRpcMessage;
      ctx.method = jm.method ?? "response";
      if (route === "messages") return void this.#legacyPost(req, res, ctx, jm, body);
      this.#post(req, res, ctx, jm, body, t);
    });
    req.on("error", () => this.#release(ctx));
  }

  #resourceMetadata(res: ServerResponse) {
    const c = this.config;
    const doc = {
      resource: c.publicUrl,
      authorization_servers: c.auth.jwt ? [c.auth.jwt.issuer] : [],
      bearer_methods_supported: ["header"],
      resource_name: `${c.server.namespace}/${c.server.name}`,
    };
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" }).end(JSON.stringify(doc));
  }

  #release(ctx: Ctx) {
    if (ctx.holdsSlot) {
      ctx.holdsSlot = false;
      this.#inflight--;
      const k = ctx.identity!.key;
      const n = (this.#clientInflight.get(k) ?? 1) - 1;
      if (n <= 0) this.#clientInflight.delete(k);
      else this.#clientInflight.set(k, n);
    }
  }

  /** Ends a request's bookkeeping: audit line, metrics, span, concurrency slot. Runs once per request. */
  #finish(ctx: Ctx, outcome: string, status: number, reason?: string) {
    if (ctx.done) return;
    ctx.done = true;
    this.#release(ctx);
    const t = process.hrtime.bigint();
    const latencyMs = Number(t - ctx.t0) / 1e6;
    this.audit.record({
      time: new Date(ctx.startMs).toISOString(),
      client: ctx.identity?.key ?? "anonymous",
      source: ctx.source,
      transport: ctx.transport,
      method: ctx.method,
      ...(ctx.tool !== undefined ? { tool: ctx.tool, arguments: this.audit.redact(ctx.args) } : {}),
      outcome,
      status,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      ...(ctx.session ? { session: ctx.session.slice(0, 8) } : {}),
      ...(reason ? { reason } : {}),
      ...(ctx.result ? { result: ctx.result.result, ...(ctx.result.error ? { error: ctx.result.error } : {}) } : {}),
    });
    this.metrics.observe(ctx.method, outcome, latencyMs / 1000);
    ctx.span?.end({ outcome, status });
    this.metrics.phase("audit", t);
  }

  #fail(res: ServerResponse, ctx: Ctx, status: number, code: number, message: string, outcome: string, headers: OutgoingHttpHeaders = {}, reason?: string, id?: JsonRpcId) {
    if (!res.headersSent) res.writeHead(status, { "content-type": "application/json", ...headers }).end(errorBody(id ?? null, code, message));
    ctx.result ??= { result: "error", error: { code, message } };
    this.#finish(ctx, outcome, status, reason);
  }

  #refuse(res: ServerResponse, ctx: Ctx, r: Refusal, id: JsonRpcId | undefined) {
    if (r.outcome === "rate-limited") this.metrics.rateLimited.inc({ scope: r.scope });
    else this.metrics.denied.inc({ kind: r.scope });
    const h: OutgoingHttpHeaders = r.retryAfter !== undefined ? { "retry-after": String(r.retryAfter) } : {};
    this.#fail(res, ctx, r.status, r.code, r.message, r.outcome, h, undefined, id);
  }

  #startSpan(ctx: Ctx) {
    if (this.#tracer && ctx.identity) ctx.span = this.#tracer.start(ctx.method, ctx.identity.key, ctx.tool);
  }

  // ---------------------------------------------------------------- streamable HTTP

  #post(req: IncomingMessage, res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, body: Buffer, t: bigint) {
    const sid = req.headers["mcp-session-id"];
    const id = ctx.identity!;
    if (typeof sid === "string") {
      ctx.session = sid;
      const hosted = this.#hosted.get(sid);
      const bound = hosted && !hosted.legacy ? hosted : this.#bound.get(sid);
      // Unknown and foreign sessions get the same answer, so session ids cannot be probed.
      if (!bound || bound.owner !== id.key) return this.#fail(res, ctx, 404, ERR.invalidRequest, "session not found", "invalid", {}, undefined, msg.id);
      bound.lastSeen = Date.now();
    } else if (msg.method !== "initialize" && !(this.#upstreamUrl && this.#statelessUpstream)) {
      return this.#fail(res, ctx, 400, ERR.invalidRequest, "missing Mcp-Session-Id header (initialize first)", "invalid", {}, undefined, msg.id);
    }
    const isRequest = msg.method !== undefined && msg.id !== undefined;
    if (!isRequest) {
      // Notifications and the client's responses to server requests: nothing to authorize.
      return this.#dispatch(req, res, ctx, msg, body, { timeoutMs: this.#policy.timeoutMs(undefined) });
    }
    if (msg.method === "tools/call" && typeof msg.params?.name === "string") {
      ctx.tool = msg.params.name;
      ctx.args = msg.params.arguments;
    }
    const onChecked = (r: Refusal | Checked) => {
      t = this.metrics.phase(msg.method === "tools/call" ? "validate" : "policy", t);
      if ("status" in r) return this.#refuse(res, ctx, r, msg.id);
      ctx.tool = r.tool;
      ctx.args = r.args;
      this.#startSpan(ctx);
      this.#dispatch(req, res, ctx, msg, body, r);
    };
    let checked: ReturnType<PolicyEngine["check"]>;
    try {
      checked = this.#policy.check(id, msg.method!, msg.params);
    } catch {
      return this.#fail(res, ctx, 500, ERR.internal, "internal error", "error", {}, undefined, msg.id);
    }
    if (checked instanceof Promise) checked.then(onChecked, () => this.#fail(res, ctx, 500, ERR.internal, "internal error", "error", {}, undefined, msg.id));
    else onChecked(checked);
  }

  #dispatch(req: IncomingMessage, res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, body: Buffer, checked: Checked) {
    if (this.#upstreamUrl) return this.#proxyPost(req, res, ctx, msg, body, checked);
    return this.#hostedPost(res, ctx, msg, checked);
  }

  #upstreamHeaders(req: IncomingMessage, extra: OutgoingHttpHeaders): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ...extra };
    const copy = ["accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"];
    for (const k of copy) {
      const v = req.headers[k];
      if (v !== undefined) h[k] = v;
    }
    // Never forwarded: Authorization, cookies, x-api-key, XFCC. The upstream trusts the gateway, not the client's credentials.
    return h;
  }

  #copyHeaders(up: IncomingMessage, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ...extra };
    for (const k of HOP_HEADERS) {
      const v = up.headers[k];
      if (v !== undefined) h[k] = v;
    }
    return h;
  }

  #proxyPost(req: IncomingMessage, res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, body: Buffer, checked: Checked) {
    const tUp = process.hrtime.bigint();
    const up = this.#upstreamPost(req, { "content-type": "application/json", "content-length": body.length });
    const isList = msg.method !== undefined && LIST_METHODS.has(msg.method) && msg.id !== undefined;
    let timedOut = false;
    let piped: NodeJS.ReadableStream | undefined;
    let sse = false;
    const timer = msg.id !== undefined && msg.method !== undefined
      ? setTimeout(() => {
          timedOut = true;
          piped?.removeAllListeners("data").removeAllListeners("end");
          this.#timeout(res, ctx, msg, checked.timeoutMs, sse);
          up.destroy();
          if (typeof req.headers["mcp-session-id"] === "string") this.#cancelUpstream(req, msg.id!);
        }, checked.timeoutMs)
      : undefined;
    res.on("close", () => {
      clearTimeout(timer);
      if (!res.writableFinished) up.destroy();
    });
    up.on("error", (e) => {
      clearTimeout(timer);
      if (timedOut) return;
      log("warn", "upstream request failed", { error: errorKind(e) });
      this.#fail(res, ctx, 502, ERR.upstream, "upstream unavailable", "upstream-error", {}, errorKind(e), msg.id);
    });
    up.on("response", (ur) => {
      const status = ur.statusCode ?? 502;
      if (status >= 400) {
        clearTimeout(timer);
        ur.resume();
        const sid = req.headers["mcp-session-id"];
        if (status === 404 && typeof sid === "string") this.#bound.delete(sid);
        const message = status === 404 ? "session not found" : status === 400 ? "bad request" : "upstream error";
        return this.#fail(res, ctx, status === 404 || status === 400 ? status : 502, status === 404 || status === 400 ? ERR.invalidRequest : ERR.upstream, message, "upstream-error", {}, `upstream ${status}`, msg.id);
      }
      if (msg.method === "initialize") {
        const sid = ur.headers["mcp-session-id"];
        // A stateless upstream issues no session id: requests then carry none (each is authorized on its own).
        if (typeof sid === "string") this.#bind(sid, ctx.identity!);
        else this.#statelessUpstream = true;
      }
      const ct = String(ur.headers["content-type"] ?? "");
      const tap = resultTap();
      ur.on("data", tap.push);
      const finish = () => {
        clearTimeout(timer);
        this.metrics.phase("upstream", tUp);
        if (timedOut) return;
        if (msg.id !== undefined) ctx.result = tap.result(ct.includes("text/event-stream"), msg.id);
        this.#finish(ctx, "ok", status);
      };
      if (isList && ct.includes("application/json")) {
        const chunks: Buffer[] = [];
        ur.on("data", (c: Buffer) => chunks.push(c));
        ur.on("end", () => {
          if (timedOut) return;
          const out = this.#filterRaw(ctx.identity!, msg.method!, Buffer.concat(chunks).toString("utf8"), msg.id);
          res.writeHead(status, this.#copyHeaders(ur, { "content-length": Buffer.byteLength(out) })).end(out);
          finish();
        });
        return;
      }
      sse = ct.includes("text/event-stream");
      const src = isList && sse
        ? ur.pipe(new SseRewriter((d) => this.#filterRaw(ctx.identity!, msg.method!, d, msg.id)))
        : ur;
      coalesce(src, res, status, this.#copyHeaders(ur));
      piped = src;
      src.on("end", finish);
      ur.on("aborted", finish);
    });
    up.end(body);
  }

  #bind(sid: string, identity: Identity) {
    if (this.#bound.size >= MAX_SESSIONS) {
      // Evict the least recently used binding (Map iteration order = insertion order; lastSeen refreshes on use).
      let oldest: string | undefined;
      let when = Number.POSITIVE_INFINITY;
      for (const [k, s] of this.#bound) if (s.lastSeen < when) [oldest, when] = [k, s.lastSeen];
      if (oldest) this.#bound.delete(oldest);
    }
    this.#bound.set(sid, { owner: identity.key, lastSeen: Date.now() });
  }

  /** Rewrites the JSON-RPC response inside `raw` when it answers the list request `id`. */
  #filterRaw(identity: Identity, method: string | undefined, raw: string, id: JsonRpcId | undefined): string {
    let m: JsonRpcMessage;
    try {
      m = JSON.parse(raw) as JsonRpcMessage;
    } catch {
      return raw;
    }
    if (!m || typeof m !== "object") return raw;
    if (m.result === undefined) return m.error !== undefined ? sanitizeRaw(raw) : raw;
    const lm = id !== undefined && m.id === id ? method : undefined;
    const which = lm ?? listMethodOf(m.result);
    if (!which || !LIST_METHODS.has(which)) return raw;
    return JSON.stringify({ ...m, result: this.#policy.filterList(identity, which, m.result) });
  }

  #timeout(res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, ms: number, sse = false) {
    const body = errorBody(msg.id, ERR.timeout, `request timed out after ${Math.round(ms / 1000)} s`);
    if (!res.headersSent) res.writeHead(200, { "content-type": "application/json" }).end(body);
    else if (sse) res.end(`event: message\ndata: ${body}\n\n`);
    else res.destroy();
    ctx.result = { result: "error", error: { code: ERR.timeout, message: `request timed out after ${Math.round(ms / 1000)} s` } };
    this.#finish(ctx, "timeout", 200);
  }

  /** A POST to the upstream MCP endpoint over the keep-alive agent, with the client's forwarded headers. */
  #upstreamPost(req: IncomingMessage, extra: OutgoingHttpHeaders) {
    const u = this.#upstreamUrl!;
    return http.request({ agent: this.#agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method: "POST", headers: this.#upstreamHeaders(req, extra) });
  }

  /** Tells the upstream to stop working on a request the client will no longer get an answer for. */
  #cancelUpstream(req: IncomingMessage, id: JsonRpcId) {
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "timeout" } }));
    const r = this.#upstreamPost(req, { "content-type": "application/json", "content-length": body.length, accept: "application/json, text/event-stream" });
    r.on("response", (x) => x.resume());
    r.on("error", () => undefined);
    r.end(body);
  }

  #getOrDelete(req: IncomingMessage, res: ServerResponse, ctx: Ctx) {
    const sid = req.headers["mcp-session-id"];
    const id = ctx.identity!;
    if (typeof sid !== "string") return this.#fail(res, ctx, 400, ERR.invalidRequest, "missing Mcp-Session-Id header", "invalid");
    ctx.session = sid;
    const hosted = this.#hosted.get(sid);
    const owner = hosted?.owner ?? this.#bound.get(sid)?.owner;
    if (owner !== id.key) return this.#fail(res, ctx, 404, ERR.invalidRequest, "session not found", "invalid");
    if (hosted) {
      if (req.method === "DELETE") {
        this.#dropHosted(sid);
        res.writeHead(200).end();
        return this.#finish(ctx, "ok", 200);
      }
      if (hosted.stream) return this.#fail(res, ctx, 409, ERR.invalidRequest, "a stream is already open for this session", "invalid");
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "mcp-session-id": sid });
      res.flushHeaders();
      hosted.stream = res;
      res.on("close", () => {
        if (hosted.stream === res) hosted.stream = undefined;
      });
      return this.#finish(ctx, "ok", 200);
    }
    const u = this.#upstreamUrl!;
    const up = http.request({
      agent: req.method === "GET" ? false : this.#agent,
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: req.method,
      headers: this.#upstreamHeaders(req, {}),
    });
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
    up.on("error", (e) => this.#fail(res, ctx, 502, ERR.upstream, "upstream unavailable", "upstream-error", {}, errorKind(e)));
    up.on("response", (ur) => {
      const status = ur.statusCode ?? 502;
      if (status >= 400) {
        ur.resume();
        if (status === 404) this.#bound.delete(sid);
        return this.#fail(res, ctx, status === 404 || status === 405 ? status : 502, ERR.upstream, status === 404 ? "session not found" : status === 405 ? "method not allowed" : "upstream error", "upstream-error", {}, `upstream ${status}`);
      }
      if (req.method === "DELETE") this.#bound.delete(sid);
      res.writeHead(status, this.#copyHeaders(ur));
      const ct = String(ur.headers["content-type"] ?? "");
      if (ct.includes("text/event-stream")) {
        // Resumed streams can replay list answers: filter every list-shaped result. A tools/list_changed
        // notification makes the gateway re-read the tool list, so a rug pull is caught without waiting.
        ur.pipe(
          new SseRewriter((d) => {
            if (d.includes("notifications/tools/list_changed")) this.#toolsChanged();
            return this.#filterRaw(id, undefined, d, undefined);
          }),
        ).pipe(res);
        res.flushHeaders();
        this.#finish(ctx, "ok", status);
      } else {
        ur.pipe(res);
        ur.on("end", () => this.#finish(ctx, "ok", status));
      }
    });
    up.end();
  }

  // ---------------------------------------------------------------- gateway-held sessions

  #newHosted(identity: Identity, legacy: boolean): Hosted {
    const h: Hosted = {
      id: randomUUID(),
      owner: identity.key,
      identity,
      channel: openChannel(this.config.upstream, this.#agent),
      pending: new Map(),
      legacy,
      lastSeen: Date.now(),
    };
    h.channel.onmessage = (raw) => this.#fromUpstream(h, raw);
    h.channel.onclose = () => this.#dropHosted(h.id);
    // Each gateway-held session may pin a server process: a client keeps at most MAX_HOSTED_PER_CLIENT,
    // its least recently used one is closed to make room (a leaking client hurts only itself).
    let mine = 0;
    let lru: Hosted | undefined;
    for (const x of this.#hosted.values()) {
      if (x.owner !== h.owner) continue;
      mine++;
      if (!lru || x.lastSeen < lru.lastSeen) lru = x;
    }
    if (mine >= MAX_HOSTED_PER_CLIENT && lru) this.#dropHosted(lru.id);
    if (this.#hosted.size >= MAX_SESSIONS) {
      const first = this.#hosted.keys().next().value;
      if (first) this.#dropHosted(first);
    }
    this.#hosted.set(h.id, h);
    return h;
  }

  #dropHosted(sid: string) {
    const h = this.#hosted.get(sid);
    if (!h) return;
    this.#hosted.delete(sid);
    h.channel.close();
    for (const p of h.pending.values()) p.deliver("", { jsonrpc: "2.0" });
    h.pending.clear();
    h.stream?.end();
  }

  #fromUpstream(h: Hosted, raw: string) {
    let m: JsonRpcMessage;
    try {
      m = JSON.parse(raw) as JsonRpcMessage;
    } catch {
      return; // a stdio server's stray output line: not a message
    }
    if (m && m.method === undefined && m.id !== undefined) {
      const key = JSON.stringify(m.id);
      const p = h.pending.get(key);
      if (p) {
        h.pending.delete(key);
        return p.deliver(raw, m);
      }
    }
    if (m?.method === "notifications/tools/list_changed") this.#toolsChanged();
    // Notifications and server-to-client requests go to the session's stream, when the client opened one.
    if (h.stream && !h.stream.writableEnded) h.stream.write(`event: message\ndata: ${this.#filterRaw(h.identity, undefined, raw, undefined)}\n\n`);
  }

  /** Streamable HTTP client, gateway-held session: send, then answer the POST with the matching response as JSON. */
  #hostedPost(res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, checked: Checked) {
    let h: Hosted | undefined;
    if (msg.method === "initialize" && ctx.session === undefined) {
      h = this.#newHosted(ctx.identity!, false);
      ctx.session = h.id;
    } else h = this.#hosted.get(ctx.session ?? "");
    if (!h) return this.#fail(res, ctx, 404, ERR.invalidRequest, "session not found", "invalid", {}, undefined, msg.id);
    const tUp = process.hrtime.bigint();
    const extra: OutgoingHttpHeaders = msg.method === "initialize" ? { "mcp-session-id": h.id } : {};
    if (msg.method === undefined || msg.id === undefined) {
      h.channel.send(JSON.stringify(msg));
      res.writeHead(202, extra).end();
      return this.#finish(ctx, "ok", 202);
    }
    this.#await(h, msg, checked, (raw) => {
      this.metrics.phase("upstream", tUp);
      if (raw === "") return this.#fail(res, ctx, 502, ERR.upstream, "upstream session ended", "upstream-error", {}, undefined, msg.id);
      const out = LIST_METHODS.has(msg.method!) ? this.#filterRaw(h.identity, msg.method, raw, msg.id) : sanitizeRaw(raw);
      res.writeHead(200, { "content-type": "application/json", ...extra }).end(out);
      ctx.result = auditResultOf(out, false, msg.id);
      this.#finish(ctx, "ok", 200);
    }, () => this.#timeout(res, ctx, msg, checked.timeoutMs));
    res.on("close", () => {
      if (!res.writableFinished) h.pending.delete(JSON.stringify(msg.id));
    });
  }

  /** Sends a request over a session's channel and calls `deliver` with its response (or "" if the session ended). */
  #await(h: Hosted, msg: JsonRpcMessage, checked: Checked, deliver: (raw: string) => void, onTimeout: () => void): void {
    const key = JSON.stringify(msg.id);
    const timer = setTimeout(() => {
      if (!h.pending.has(key)) return;
      h.pending.delete(key);
      h.channel.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: msg.id, reason: "timeout" } }));
      onTimeout();
    }, checked.timeoutMs);
    h.pending.set(key, {
      method: msg.method!,
      deliver: (raw) => {
        clearTimeout(timer);
        deliver(raw);
      },
    });
    h.channel.send(JSON.stringify(msg));
  }

  // ---------------------------------------------------------------- older HTTP+SSE transport (clients)

  async #openLegacy(req: IncomingMessage, res: ServerResponse, ctx: Ctx) {
    // Opening a stream starts an upstream session (maybe a process): it draws from the client's bucket.
    const pc = this.config.limits.perClient;
    const t = await this.#limiter.take(`c:${ctx.identity!.key}`, pc.requestsPerMinute, pc.burst);
    if (!t.ok) {
      this.metrics.rateLimited.inc({ scope: "client" });
      return this.#fail(res, ctx, 429, ERR.rateLimited, `rate limit exceeded for this client; retry after ${t.retryAfter} s`, "rate-limited", { "retry-after": String(t.retryAfter) });
    }
    const h = this.#newHosted(ctx.identity!, true);
    ctx.session = h.id;
    ctx.method = "sse/connect";
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(`event: endpoint\ndata: /messages?sessionId=${h.id}\n\n`);
    h.stream = res;
    const ping = setInterval(() => res.write(": ping\n\n"), 25_000);
    ping.unref();
    req.on("close", () => {
      clearInterval(ping);
      this.#dropHosted(h.id);
    });
    this.#finish(ctx, "ok", 200);
  }

  #legacySend(h: Hosted, body: string) {
    if (h.stream && !h.stream.writableEnded) h.stream.write(`event: message\ndata: ${body}\n\n`);
  }

  async #legacyPost(req: IncomingMessage, res: ServerResponse, ctx: Ctx, msg: JsonRpcMessage, _body: Buffer): Promise<void> {
    const sid = new URL(req.url ?? "/", "http://x").searchParams.get("sessionId") ?? "";
    ctx.session = sid;
    const h = this.#hosted.get(sid);
    if (!h?.legacy || h.owner !== ctx.identity!.key) return this.#fail(res, ctx, 404, ERR.invalidRequest, "session not found", "invalid");
    h.lastSeen = Date.now();
    if (msg.method === undefined || msg.id === undefined) {
      h.channel.send(JSON.stringify(msg));
      res.writeHead(202).end("Accepted");
      return this.#finish(ctx, "ok", 202);
    }
    let t = process.hrtime.bigint();
    if (msg.method === "tools/call" && typeof msg.params?.name === "string") {
      ctx.tool = msg.params.name;
      ctx.args = msg.params.arguments;
    }
    let r: Refusal | Checked;
    try {
      r = await this.#policy.check(ctx.identity!, msg.method, msg.params);
    } catch {
      return this.#fail(res, ctx, 500, ERR.internal, "internal error", "error");
    }
    t = this.metrics.phase(msg.method === "tools/call" ? "validate" : "policy", t);
    if ("status" in r) {
      // Rate limits stay HTTP-level (Retry-After); policy refusals are JSON-RPC errors on the stream.
      if (r.status === 429) return this.#refuse(res, ctx, r, msg.id);
      this.metrics.denied.inc({ kind: r.scope });
      res.writeHead(202).end("Accepted");
      this.#legacySend(h, errorBody(msg.id, r.code, r.message));
      ctx.result = { result: "error", error: { code: r.code, message: r.message } };
      return this.#finish(ctx, r.outcome, 202);
    }
    ctx.tool = r.tool;
    ctx.args = r.args;
    this.#startSpan(ctx);
    res.writeHead(202).end("Accepted");
    this.#await(h, msg, r, (raw) => {
      this.metrics.phase("upstream", t);
      if (raw === "") return this.#finish(ctx, "upstream-error", 202);
      const out = LIST_METHODS.has(msg.method!) ? this.#filterRaw(h.identity, msg.method, raw, msg.id) : sanitizeRaw(raw);
      this.#legacySend(h, out);
      ctx.result = auditResultOf(out, false, msg.id);
      this.#finish(ctx, "ok", 202);
    }, () => {
      const message = `request timed out after ${Math.round(r.timeoutMs / 1000)} s`;
      this.#legacySend(h, errorBody(msg.id, ERR.timeout, message));
      ctx.result = { result: "error", error: { code: ERR.timeout, message } };
      this.#finish(ctx, "timeout", 202);
    });
  }
}
