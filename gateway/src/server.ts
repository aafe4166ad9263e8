// The gateway's HTTP front: authenticates every request, checks each JSON-RPC message, and either
// reverse-proxies it to a streamable-HTTP upstream (proxy.ts: the upstream holds the MCP session, the
// gateway binds the session id to the client that created it) or hands it to a gateway-held session
// over a message channel (sessions.ts: stdio bridge, HTTP+SSE upstream, and clients on the older
// HTTP+SSE transport, whose two endpoints are legacy-sse.ts). The request path is a list of named stages (stages.ts); this file holds the
// gateway's state, its lifecycle, respond() and finish().
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { identityEnvProblems } from "../../contract/authz/identity-env.ts";
import { identityHeaderProblems } from "../../contract/authz/identity-headers.ts";
import { type GatewayConfig, SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import { dnsPeers, SessionAffinity } from "./affinity.ts";
import { AuditLog, type AuditSink, auditOptionsFromConfig } from "./audit.ts";
import { auditExportFromConfig, type OtlpAuditExporter } from "./auditotlp.ts";
import { Authenticator } from "./auth/index.ts";
import { AccessEngine, type RequestFacts } from "./authz/engine.ts";
import { IdentityForwarder } from "./authz/identity.ts";
import { type CidrSet, cidrSet, clientAddress } from "./authz/source.ts";
import { Authorizer, type Identity } from "./authz.ts";
import { identityPreamble } from "./bridge.ts";
import { ToolCatalog } from "./catalog.ts";
import { listToolsOver, openChannel } from "./channel.ts";
import { type Exchange, HANDLED, newExchange, type Step, type Stop } from "./exchange.ts";
import { Deadlines, InFlight } from "./inflight.ts";
import { errorBody, type JsonRpcMessage, modernErrorCode } from "./jsonrpc.ts";
import { refuseOnStream } from "./legacy-sse.ts";
import { errorKind, log } from "./log.ts";
import { Metrics, registerApiKeyMetrics } from "./metrics.ts";
import { filterDiscover, modernResult, type Visibility, visibleFilter } from "./modern.ts";
import { LIST_METHODS, listMethodOf, PolicyEngine } from "./policy.ts";
import { UpstreamProxy } from "./proxy.ts";
import { type Limiter, LocalLimiter, RedisLimiter, registerLimiterMetrics } from "./ratelimit.ts";
import { sanitizeRaw } from "./sanitize.ts";
import { SessionTable } from "./sessions.ts";
import { bodyTimedOut, type Front, hostName, run } from "./stages.ts";
import { StatelessBridge } from "./stateless-bridge.ts";
import { startTracer, type Tracer } from "./telemetry.ts";
import { CertificateReloader, loadCertificatePair, registerTlsMetrics, secureContextOptions } from "./tls.ts";
import { discoverEra, listToolsModern, type UpstreamEra } from "./upstream-era.ts";

export interface GatewayOptions {
  config: GatewayConfig;
  /** Where audit lines go (stdout by default). */
  auditSink?: AuditSink;
  jwksRefreshMs?: number;
  /** How often the TLS certificate files are re-read besides directory events. */
  tlsRescanMs?: number;
  /** How often the API key directory is rescanned besides fs events. */
  apiKeyRescanMs?: number;
  /** The gateway's clock for time-based rules (tests inject one; no sleeps). */
  now?: () => number;
}

const MAX_SESSIONS = 10000;
/** How often the deadlines of request bodies still arriving are checked (timeouts are whole seconds). */
const BODY_SWEEP_MS = 250;
const SESSION_IDLE_MS = 3_600_000;
/** Gateway-held sessions pin an upstream process (stdio) or stream: reclaimed sooner when idle. */
const HOSTED_IDLE_MS = 900_000;
const MAX_HOSTED_PER_CLIENT = 8;
/** issue 11: subscriptions/listen streams one client may hold open. */
const MAX_LISTENS_PER_CLIENT = 8;
/** Host names that no rebound DNS name can make a browser send. */
const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/** Errors of a response stream (the client went away) end the exchange through its close event. */
function ignore(): void {}

/** An admitted exchange, on its response: one "close" listener per gateway serves them all (no closure per request). */
const LIVE = Symbol("live exchange");
type Watched = ServerResponse & { [LIVE]?: Exchange };

function clientCloseListener(gw: Gateway): (this: Watched) => void {
  return function onClientClose(this: Watched): void {
    const x = this[LIVE];
    if (!x) return;
    this[LIVE] = undefined;
    // The client hung up before its answer (an older-transport request lives on: its answer goes to the stream).
    if (!x.done && !x.detached) gw.finish(x, "client-closed", 499);
  };
}

/** identityHeaders() when the server gets no identity: one shared empty object (callers copy from it). */
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class Gateway implements Front {
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly auth: Authenticator;
  readonly catalog: ToolCatalog;
  readonly audit: AuditLog;
  /** Audit lines also to an OTLP logs endpoint (audit.otlp), beside stdout. */
  readonly #auditExport: OtlpAuditExporter | undefined;
  readonly sessions: SessionTable;
  readonly proxy: UpstreamProxy | undefined;
  /** issue 16: session ids name their replica; other replicas' sessions are relayed (affinity.ts). */
  readonly affinity: SessionAffinity | undefined;
  readonly mcpPath: string;
  readonly publicOrigin: string;
  readonly metadataPath: string;
  readonly allowedHosts: ReadonlySet<string>;
  policy!: PolicyEngine;
  limiter!: Limiter;
  /** issue 11: the protocol versions clients may use, newest first (config protocol.versions, default all). */
  readonly protocolVersions: readonly string[];
  /** issue 11: 2026 clients in front of a 2025 upstream. */
  readonly bridge: StatelessBridge;
  /** issue 11: what the upstream speaks, once known (server/discover probe; stdio and HTTP+SSE upstreams are 2025). */
  #upstreamEra: UpstreamEra | undefined;
  #eraProbe: Promise<UpstreamEra> | undefined;
  /** Open subscriptions/listen streams per client. */
  readonly #listens = new Map<string, number>();
  #tracer: Tracer | undefined;
  readonly #authz: Authorizer;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: "lifo" });
  #server: http.Server | undefined;
  #admin: http.Server | undefined;
  #inflight = 0;
  readonly #clientInflight = new Map<string, number>();
  /** Every admitted exchange not finished yet: shutdown finishes them. */
  readonly #live = new InFlight<Exchange>();
  /** Exchanges whose body is being received, with their deadline. */
  readonly #receiving = new Deadlines<Exchange>(BODY_SWEEP_MS, (x) => bodyTimedOut(x, (this.config.limits.bodyTimeoutSeconds ?? 10) * 1000));
  readonly #perClientSlots: number;
  #sweep: NodeJS.Timeout | undefined;
  #closing = false;
  #refresh: NodeJS.Timeout | undefined;
  #changeTimer: NodeJS.Timeout | undefined;
  readonly #apiKeyRescanMs: number | undefined;
  readonly #tlsRescanMs: number | undefined;
  #tlsReloader: CertificateReloader | undefined;
  // issue 13: scopes/conditions/windows/sources (AccessEngine), trusted proxies, identity for the server.
  readonly access: AccessEngine;
  readonly #trustedProxies: CidrSet;
  readonly #identity: IdentityForwarder;
  readonly #now: () => number;

  readonly #onClientClose = clientCloseListener(this);

  constructor(opts: GatewayOptions) {
    const c = opts.config;
    this.config = c;
    this.#apiKeyRescanMs = opts.apiKeyRescanMs;
    this.#tlsRescanMs = opts.tlsRescanMs;
    const pub = new URL(c.publicUrl);
    this.publicOrigin = pub.origin;
    this.mcpPath = pub.pathname === "" ? "/" : pub.pathname;
    this.metadataPath = `/.well-known/oauth-protected-resource${this.mcpPath === "/" ? "" : this.mcpPath}`;
    this.allowedHosts = new Set([
      pub.hostname.toLowerCase().replace(/\.$/, ""),
      ...LOOPBACK_HOSTS,
      ...(c.hostAliases ?? []).map((h) => h.toLowerCase().replace(/\.$/, "")),
    ]);
    this.#perClientSlots = c.limits.maxConcurrentPerClient ?? Math.max(1, Math.floor(c.limits.maxConcurrentRequests / 4));
    this.auth = new Authenticator(c.auth, { jwksRefreshMs: opts.jwksRefreshMs });
    this.#authz = new Authorizer(c.authorization.rules);
    this.metrics = new Metrics(
      { mcp_server: `${c.server.namespace}/${c.server.name}` },
      { inflight: () => this.#inflight, sessions: () => this.sessions.size },
    );
    this.catalog = new ToolCatalog(c.tools, {
      drift: (tool, action) => this.metrics.toolDrift.inc({ tool, action }),
      finding: (tool, rule) => this.metrics.findings.inc({ tool, rule }),
    });
    // issue 14: a hash chain with signed checkpoints when a checkpoint key is configured; API keys nearing expiry are counted.
    this.#auditExport = auditExportFromConfig(c, this.metrics.registry);
    this.audit = new AuditLog(c.audit.redactKeys, this.#auditExport?.sink(opts.auditSink) ?? opts.auditSink, auditOptionsFromConfig(c.audit));
    if (this.auth.apiKeys) registerApiKeyMetrics(this.metrics.registry, this.auth.apiKeys);
    this.#now = opts.now ?? Date.now;
    const pins = new Map(c.tools.pinned.map((p) => [p.name, p.sha256.toLowerCase()]));
    this.access = new AccessEngine(c.authorization, (name) => {
      const e = this.catalog.get(name);
      if (!e) return undefined;
      // Annotations count only when the pin covers them (fingerprint includes annotations since issue 13).
      return {
        pinnedWithAnnotations: e.assessment.verdict.status === "pinned" && pins.get(name) === e.assessment.fingerprint,
        annotations: e.tool.annotations,
      };
    });
    if (this.access.problems.length > 0) throw new Error(`authorization: ${this.access.problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`);
    this.#trustedProxies = cidrSet(c.authorization.trustedProxies);
    const idProblems = [
      ...identityHeaderProblems(c.authorization.identity),
      ...identityEnvProblems(c.authorization.identity.env, c.authorization.identity.signedJwt !== undefined),
    ];
    if (idProblems.length > 0) throw new Error(`authorization.identity: ${idProblems.join("; ")}`);
    this.#identity = new IdentityForwarder(c.authorization.identity, this.#now);
    this.proxy = c.upstream.transport === "streamable-http" ? new UpstreamProxy(this, new URL(c.upstream.url), this.#agent) : undefined;
    const maxHosted = c.limits.maxHostedSessions ?? (c.upstream.transport === "stdio" ? 15 : 256);
    this.sessions = new SessionTable(
      {
        maxBound: MAX_SESSIONS,
        maxBoundPerClient: c.limits.maxSessionsPerClient ?? MAX_SESSIONS / 10,
        maxHosted,
        maxHostedPerClient: Math.min(MAX_HOSTED_PER_CLIENT, Math.max(1, Math.floor(maxHosted / 4))),
      },
      (id, source) => openChannel(c.upstream, this.#agent, this.#preamble(id, source)),
      (s) => this.proxy?.closeSession(s),
    );
    this.sessions.attach(this);
    this.protocolVersions = [...(c.protocol?.versions ?? SUPPORTED_PROTOCOL_VERSIONS)].sort().reverse();
    this.bridge = new StatelessBridge(this, Math.min(MAX_HOSTED_PER_CLIENT, Math.max(1, Math.floor(maxHosted / 4))));
    if (c.upstream.transport !== "streamable-http") this.#upstreamEra = "legacy";
    const rs = c.replicaSessions;
    if (rs) {
      const fixed = rs.peers;
      const host = rs.peersHost;
      if (!fixed && !host) throw new Error("replicaSessions: set peersHost (a headless Service) or peers");
      this.affinity = new SessionAffinity({
        self: rs.self ?? process.env.MCP_BASTION_POD_IP ?? "",
        port: c.listen.port,
        peers: fixed ? () => Promise.resolve(fixed) : dnsPeers(host!),
      });
    }
  }

  /** issue 11: the upstream's era, probed once (single flight); a probe that cannot connect is retried by the next caller. */
  upstreamEra(): UpstreamEra | Promise<UpstreamEra> {
    if (this.#upstreamEra) return this.#upstreamEra;
    const u = this.config.upstream;
    if (u.transport !== "streamable-http") return "legacy";
    this.#eraProbe ??= discoverEra(new URL(u.url), this.#agent).then(
      (r) => {
        this.#upstreamEra = r.era;
        log("info", "upstream protocol era", { era: r.era });
        return r.era;
      },
      (e) => {
        this.#eraProbe = undefined;
        throw e;
      },
    );
    return this.#eraProbe;
  }

  /** issue 11: a checked 2026 request: proxied statelessly to a 2026 upstream, bridged to a 2025 one. */
  forwardModern(x: Exchange): Step {
    if (x.msg?.method === "subscriptions/listen") {
      // Listen streams outlive their exchange (its slot is released once the stream is open): bounded per client.
      const key = x.identity!.key;
      const open = this.#listens.get(key) ?? 0;
      if (open >= MAX_LISTENS_PER_CLIENT)
        return {
          status: 429,
          code: -32029,
          message: `too many subscriptions/listen streams open for this client (at most ${MAX_LISTENS_PER_CLIENT})`,
          outcome: "rate-limited",
          headers: { "retry-after": "5" },
        };
      this.#listens.set(key, open + 1);
      x.res.once("close", () => {
        const n = (this.#listens.get(key) ?? 1) - 1;
        if (n <= 0) this.#listens.delete(key);
        else this.#listens.set(key, n);
      });
    }
    const e = this.upstreamEra();
    const go = (era: UpstreamEra): Step => {
      if (x.done) return HANDLED;
      if (era === "modern" && this.proxy) {
        this.proxy.post(x);
        return HANDLED;
      }
      return this.bridge.forward(x);
    };
    if (typeof e === "string") return go(e);
    return e.then(go, (err: unknown) => ({ status: 502, code: -32002, message: "upstream unavailable", outcome: "upstream-error", reason: errorKind(err) }));
  }

  get ready(): boolean {
    return !this.#closing && this.auth.ready && this.catalog.loaded;
  }

  /** Requests admitted and not finished (for tests and the inflight gauge). */
  get inflight(): number {
    return this.#inflight;
  }

  async start(): Promise<{ port: number; adminPort: number }> {
    const c = this.config;
    this.limiter =
      c.limits.mode === "redis"
        ? await RedisLimiter.connect(c.limits.redisUrl ?? "", `mcp-bastion:${c.server.namespace}/${c.server.name}:`)
        : new LocalLimiter();
    if (this.limiter instanceof RedisLimiter) registerLimiterMetrics(this.metrics.registry, this.limiter);
    this.policy = new PolicyEngine(c.limits, this.limiter, this.#authz, this.catalog, this.access);
    await this.#identity.start();
    if (c.telemetry.otlpEndpoint) this.#tracer = await startTracer(c.telemetry.otlpEndpoint, `${c.server.namespace}/${c.server.name}`);
    // issue 11: a 2026 upstream is listed statelessly (it may not accept initialize at all). The catalog
    // session is the gateway's own: its process gets no caller identity (an empty preamble).
    this.catalog.setFetcher(async () =>
      (await this.upstreamEra()) === "modern" && c.upstream.transport === "streamable-http"
        ? listToolsModern(new URL(c.upstream.url), this.#agent, 10_000)
        : listToolsOver(openChannel(c.upstream, this.#agent, this.#preamble(undefined, "")), 10_000),
    );
    await this.auth.start(this.#apiKeyRescanMs);
    // The catalog loads in the background: the gateway answers 503 on /readyz until it has the tool list.
    void this.#loadCatalog();

    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    if (c.listen.tls) {
      // issue 14: minVersion from the config (1.3 unless the McpServer opts out); a renewed certificate
      // is loaded from the mounted Secret without a restart (tls.ts).
      const files = c.listen.tls;
      const pair = loadCertificatePair(files);
      const server = https.createServer(secureContextOptions(pair, files.minVersion), handler);
      this.#server = server;
      this.#tlsReloader = new CertificateReloader(files, pair, (options) => server.setSecureContext(options), { rescanMs: this.#tlsRescanMs });
      this.#tlsReloader.start();
      registerTlsMetrics(this.metrics.registry, this.#tlsReloader);
    } else this.#server = http.createServer(handler);
    this.#server.keepAliveTimeout = 65_000;
    this.#server.headersTimeout = 20_000;
    this.#server.requestTimeout = 0; // per-request timeouts are ours (SSE streams are long-lived)
    this.#admin = http.createServer((req, res) => void this.#handleAdmin(req, res));
    await Promise.all([
      new Promise<void>((r) => this.#server!.listen(c.listen.port, c.listen.host, r)),
      new Promise<void>((r) => this.#admin!.listen(c.listen.adminPort, c.listen.host, r)),
    ]);
    this.#sweep = setInterval(() => this.sessions.sweep(Date.now(), SESSION_IDLE_MS, HOSTED_IDLE_MS), 60_000);
    this.#sweep.unref();
    // Servers that change tools without notifying are caught by a periodic re-read.
    this.#refresh = setInterval(() => void this.catalog.refresh().catch(() => undefined), 300_000);
    this.#refresh.unref();
    const port = (this.#server.address() as AddressInfo).port;
    const adminPort = (this.#admin.address() as AddressInfo).port;
    log("info", "gateway listening", {
      port,
      adminPort,
      upstream: c.upstream.transport,
      tls: c.listen.tls ? `${c.listen.tls.minVersion}+ serial ${this.#tlsReloader?.current.serialNumber}` : false,
      limits: c.limits.mode,
    });
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
    this.#receiving.close();
    if (this.#refresh) clearInterval(this.#refresh);
    if (this.#changeTimer) clearTimeout(this.#changeTimer);
    // Every request still in flight is answered and audited before the connections go.
    this.bridge.closeAll();
    this.sessions.closeAll();
    for (const x of this.#live.keys()) this.respond(x, { status: 503, code: -32009, message: "gateway shutting down", outcome: "shutdown" });
    this.auth.stop();
    this.#tlsReloader?.stop();
    this.#server?.closeAllConnections();
    await Promise.all([
      new Promise((r) => (this.#server ? this.#server.close(r) : r(undefined))),
      new Promise((r) => (this.#admin ? this.#admin.close(r) : r(undefined))),
    ]);
    this.#agent.destroy();
    await this.proxy?.close();
    this.affinity?.close();
    await this.limiter?.close();
    await this.#tracer?.shutdown();
    // Writes the final checkpoint, so the last lines are covered too.
    this.audit.close();
    // Then the OTLP export gets a few seconds to deliver what it still holds (the rest is counted as dropped).
    await this.#auditExport?.close();
  }

  /**
   * An upstream announced changed tools: re-read the list soon. Debounced (one refresh at most every
   * 2 s, after the burst) because servers announce changes on every new session, and for stdio each
   * refresh is a server process.
   */
  toolsChanged(): void {
    if (this.#changeTimer || this.#closing) return;
    this.#changeTimer = setTimeout(() => {
      this.#changeTimer = undefined;
      void this.catalog.refresh().catch(() => undefined);
    }, 2000);
    this.#changeTimer.unref();
  }

  // ---------------------------------------------------------------- admin port

  async #handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") return void res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    if (path === "/readyz") {
      const ok = this.ready;
      return void res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ready\n" : "not ready\n");
    }
    if (path === "/.well-known/jwks.json") {
      // issue 13: the public key of the signed identity the gateway passes to the server.
      return void res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" }).end(JSON.stringify(this.#identity.jwks()));
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

  #handle(req: IncomingMessage, res: ServerResponse): void {
    res.on("error", ignore);
    if (req.method === "GET" && req.url !== undefined && (req.url === this.metadataPath || req.url === "/.well-known/oauth-protected-resource")) {
      // Public, but answered only to the host names the gateway serves (like every route).
      const host = hostName(req.headers.host);
      if (host === undefined || !this.allowedHosts.has(host))
        return void res.writeHead(403, { "content-type": "application/json" }).end(errorBody(null, -32003, "host not allowed"));
      this.resourceMetadata(res);
      return;
    }
    run(this, newExchange(req, res, this.#sourceOf(req)));
  }

  /** The client's address: the connection's peer, or X-Forwarded-For only when the peer is a trusted proxy (issue 13). */
  #sourceOf(req: IncomingMessage): string {
    return clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"], this.#trustedProxies);
  }

  /** What time- and source-conditioned rules are evaluated against, for one exchange. */
  facts(x: Exchange): RequestFacts {
    return { source: x.source, now: this.#now() };
  }

  /**
   * A signed identity for the server is minted once per caller and reused for half its life: the
   * promise when one has to be minted before the request can go upstream, else undefined.
   */
  prepareIdentity(x: Exchange): Promise<unknown> | undefined {
    if (!x.identity || !this.#identity.enabled) return undefined;
    return this.#identity.prepare(this.#caller(x.identity, x.source)) ?? undefined;
  }

  /** Identity headers for the upstream (never the client's own credentials). */
  identityHeaders(x: Exchange): Record<string, string> {
    const id = x.identity;
    if (!id || !this.#identity.enabled) return NO_HEADERS;
    return this.#identity.headers(this.#caller(id, x.source));
  }

  /**
   * issue 13: the identity line a stdio bridge reads before it spawns the session's process (undefined
   * when the bridge sets no identity variables). The signed token in it was minted in forward().
   */
  #preamble(id: Identity | undefined, source: string): string | undefined {
    if (this.config.upstream.transport !== "stdio" || !this.#identity.forProcesses) return undefined;
    return identityPreamble(id ? this.#identity.processIdentity(this.#caller(id, source)) : {});
  }

  #caller(id: Identity, source: string) {
    return { key: id.key, kind: id.kind, name: id.name, groups: id.groups, scopes: id.scopes, spiffeId: id.kind === "spiffe" ? id.name : undefined, source };
  }

  resourceMetadata(res: ServerResponse): void {
    const c = this.config;
    const doc = {
      resource: c.publicUrl,
      authorization_servers: c.auth.jwt ? [c.auth.jwt.issuer] : [],
      bearer_methods_supported: ["header"],
      ...(c.auth.jwt && this.access.scopesSupported.length > 0 ? { scopes_supported: this.access.scopesSupported } : {}),
      resource_name: `${c.server.namespace}/${c.server.name}`,
    };
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" }).end(JSON.stringify(doc));
  }

  /**
   * Takes a concurrency slot. No client may hold more than its share (limits.maxConcurrentPerClient,
   * a quarter by default), so slow or hostile clients cannot starve the others. From here on the
   * exchange is live: whatever ends it goes through finish(), and a client that hangs up ends it.
   */
  admit(x: Exchange): Stop | undefined {
    const key = x.identity!.key;
    const mine = this.#clientInflight.get(key) ?? 0;
    if (this.#inflight >= this.config.limits.maxConcurrentRequests || mine >= this.#perClientSlots) {
      x.req.resume();
      this.metrics.rateLimited.inc({ scope: "concurrency" });
      return { status: 503, code: -32009, message: "too many concurrent requests; retry shortly", outcome: "rate-limited", headers: { "retry-after": "1" } };
    }
    this.#inflight++;
    this.#clientInflight.set(key, mine + 1);
    x.admitted = true;
    this.#live.set(x);
    (x.res as Watched)[LIVE] = x;
    x.res.on("close", this.#onClientClose);
    return undefined;
  }

  receiving(x: Exchange, ms: number): void {
    this.#receiving.arm(x, performance.now() + ms);
  }

  received(x: Exchange): void {
    this.#receiving.disarm(x);
  }

  /** Answers a refusal and finishes the exchange. */
  respond(x: Exchange, s: Stop): void {
    if (x.done) return;
    const res = x.res;
    x.result ??= { result: "error", error: { code: s.code, message: s.message } };
    // The older transport: policy refusals are JSON-RPC errors on the session's stream.
    if (refuseOnStream(this, x, s)) return;
    if (!res.headersSent) {
      const headers = s.closeConnection
        ? { "content-type": "application/json", connection: "close", ...s.headers }
        : { "content-type": "application/json", ...s.headers };
      res.writeHead(s.status, headers).end(errorBody(x.msg?.id, x.era === "modern" ? modernErrorCode(s.code, x.msg?.method) : s.code, s.message, s.data));
    } else if (!res.writableEnded) res.destroy();
    this.finish(x, s.outcome, s.status, s.reason);
  }

  /** Ends an exchange's bookkeeping: upstream cleanup, concurrency slot, audit line, metrics, span. Runs once per exchange. */
  finish(x: Exchange, outcome: string, status: number, reason?: string): void {
    if (x.done) return;
    x.done = true;
    const c = x.cleanup;
    if (c) {
      x.cleanup = undefined;
      c(x, outcome);
    }
    this.#receiving.disarm(x);
    if (x.admitted) {
      x.admitted = false;
      this.#live.delete(x);
      this.#inflight--;
      const k = x.identity!.key;
      const n = (this.#clientInflight.get(k) ?? 1) - 1;
      if (n <= 0) this.#clientInflight.delete(k);
      else this.#clientInflight.set(k, n);
    }
    const t = performance.now();
    const latencyMs = t - x.t0;
    // One object of one shape (absent fields are undefined, which JSON.stringify leaves out): no
    // spread temporaries per request. The time is formatted and the arguments redacted when the line
    // is written (the batched flush); x.args is the parsed request, which nothing changes after this.
    const r = x.result;
    this.audit.record({
      time: x.startMs,
      client: x.identity?.key ?? "anonymous",
      source: x.source,
      transport: x.transport,
      method: x.method,
      tool: x.tool,
      arguments: x.tool !== undefined ? x.args : undefined,
      outcome,
      status,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      session: x.sessionId ? x.sessionId.slice(0, 8) : undefined,
      protocol: x.protocolVersion || undefined,
      reason: reason || undefined,
      rule: x.rule || undefined,
      result: r?.result,
      error: r?.error,
    });
    this.metrics.observe(x.method, outcome, latencyMs / 1000);
    x.span?.end({ outcome, status });
    this.metrics.phase("audit", t);
  }

  startSpan(x: Exchange): void {
    if (this.#tracer && x.identity) x.span = this.#tracer.start(x.method, x.identity.key, x.tool);
  }

  /**
   * One serialized message on its way to the client: a list result is filtered for the client (by
   * the method of the request it answers when known, else by its shape), an error loses its internals.
   */
  filter(identity: Identity, method: string | undefined, raw: string, source?: string, modern = false): string {
    let m: JsonRpcMessage;
    try {
      m = JSON.parse(raw) as JsonRpcMessage;
    } catch {
      return raw;
    }
    if (!m || typeof m !== "object") return raw;
    if (m.result === undefined) {
      if (m.error === undefined) return raw;
      const e = m.error as { code?: unknown };
      // issue 11: a 2025 server's codes a 2026 client must not get (resource not found is -32602 there).
      if (modern && typeof e.code === "number" && modernErrorCode(e.code, method) !== e.code)
        return sanitizeRaw(JSON.stringify({ ...m, error: { ...e, code: modernErrorCode(e.code, method) } }));
      return sanitizeRaw(raw);
    }
    if (modern) {
      // issue 11: the 2026 shape; lists and discover filtered for the client, cacheable results private.
      let r: unknown = m.result;
      if (method === "server/discover") r = filterDiscover(r, this.policy.visibility(identity), this.protocolVersions);
      else if (method !== undefined && LIST_METHODS.has(method)) r = this.policy.filterList(identity, method, r, { source, now: this.#now() });
      return JSON.stringify({ ...m, result: modernResult(method, r) });
    }
    const which = method !== undefined && LIST_METHODS.has(method) ? method : listMethodOf(m.result);
    if (!which) return raw;
    return JSON.stringify({ ...m, result: this.policy.filterList(identity, which, m.result, { source, now: this.#now() }) });
  }

  visibility(identity: Identity): Visibility {
    return this.policy.visibility(identity);
  }

  /** issue 11: a message of a subscriptions/listen stream for this client: change notifications it may not see are dropped. */
  notificationFor(identity: Identity, source: string, raw: string): string | undefined {
    let m: JsonRpcMessage;
    try {
      m = JSON.parse(raw) as JsonRpcMessage;
    } catch {
      return undefined; // not a message: not passed on
    }
    if (!m || typeof m !== "object") return undefined;
    if (m.method === undefined) return m.error !== undefined ? sanitizeRaw(raw) : raw; // the listen request's own end
    if (m.method === "notifications/tools/list_changed") this.toolsChanged();
    if (m.method === "notifications/subscriptions/acknowledged" && m.params) {
      // The upstream agreed to what the client asked; the gateway agrees only to what it will deliver.
      const params = { ...m.params, notifications: visibleFilter(m.params.notifications, this.policy.visibility(identity)) };
      return JSON.stringify({ ...m, params });
    }
    return this.policy.notificationVisible(identity, m.method, m.params, { source, now: this.#now() }) ? raw : undefined;
  }
}
