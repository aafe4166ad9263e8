// A thin Kubernetes HTTP client over node:https. Credentials come from @kubernetes/client-node's
// KubeConfig (kubeconfig file, KUBECONFIG, or in-cluster service account; see credentials.ts), but requests are plain
// JSON: rendered objects reach the API server byte for byte as the renderer produced them (the
// generated client's serializer has dropped fields in the past), and server-side apply is a PATCH
// with Content-Type application/apply-patch+yaml (JSON is valid YAML).
import { Agent, type AgentOptions, request } from "node:https";
import { request as httpRequest, Agent as HttpAgent } from "node:http";
import type { IncomingMessage } from "node:http";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { bearer, type Credentials, loadCredentials } from "./credentials.ts";

export interface Status {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** An error answer of the API server, with its HTTP code and Status reason. */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

export interface RequestStats {
  /** Requests sent, by verb (GET, LIST, WATCH, PATCH, POST, PUT, DELETE). */
  byVerb: Map<string, number>;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Abort the request (watches). */
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Verb counted in stats (default: the HTTP method; LIST for list requests). */
  statsVerb?: string;
  /** Extra headers (e.g. Accept for Table output). */
  headers?: Record<string, string>;
}

export interface ResourceRef {
  apiVersion: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** A kind's identity across groups: "apps/v1/Deployment". */
export const kindId = (apiVersion: string, kind: string) => `${apiVersion}/${kind}`;

/** URL path of a resource: core group under /api, others under /apis. */
export function resourcePath(ref: ResourceRef): string {
  const base = ref.apiVersion.includes("/") ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  let p = base;
  if (ref.namespace) p += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  p += `/${ref.plural}`;
  if (ref.name) p += `/${encodeURIComponent(ref.name)}`;
  if (ref.subresource) p += `/${ref.subresource}`;
  return p;
}

function queryString(q: RequestOptions["query"]): string {
  if (!q) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

export interface KubeClientOptions {
  /** A kubeconfig file; default: KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfigPath?: string;
  userAgent?: string;
  /** Parallel connections to the API server (watches hold one each). */
  maxSockets?: number;
}

const ROTATE_EVERY_MS = 5 * 60_000;

/**
 * Whether a request may be sent again after a stale kept-alive socket: only when a second copy cannot do
 * more than the first (a PUT carries its resourceVersion, an apply or merge patch sets the same fields
 * again; a JSON patch may append twice, a POST create twice).
 */
function resendable(method: string, contentType: string | undefined): boolean {
  if (method === "PATCH") return contentType === "application/apply-patch+yaml" || contentType === "application/merge-patch+json";
  return method === "GET" || method === "HEAD" || method === "PUT" || method === "DELETE";
}
const MAX_RESENDS = 3;
/** How a socket closed by the peer before our request was read fails: reset, or closed without an answer. */
const STALE_SOCKET_CODES = new Set(["ECONNRESET", "EPIPE"]);

/** A request that failed on a reused socket before any answer came; `cause` is the socket's error. */
class StaleSocketError extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}

export class KubeClient {
  readonly server: string;
  readonly stats: RequestStats = { byVerb: new Map() };
  private readonly userAgent: string;
  private readonly agent: Agent | HttpAgent;
  private readonly secure: boolean;
  private readonly kubeconfigPath: string | undefined;
  private headers: Record<string, string>;
  private readonly rotates: boolean;
  private readonly tokenFile: string | undefined;
  private headersAt = Date.now();
  private refreshing = false;

  private constructor(creds: Credentials, opts: KubeClientOptions) {
    this.server = creds.server.replace(/\/+$/, "");
    this.secure = this.server.startsWith("https:");
    this.userAgent = opts.userAgent ?? "mcp-bastion-operator";
    this.kubeconfigPath = opts.kubeconfigPath;
    this.headers = creds.headers;
    this.rotates = creds.rotates;
    this.tokenFile = creds.tokenFile;
    const maxSockets = opts.maxSockets ?? 64;
    const agentOptions: AgentOptions = {
      keepAlive: true,
      maxSockets,
      ...(creds.ca ? { ca: creds.ca } : {}),
      ...(creds.cert ? { cert: creds.cert } : {}),
      ...(creds.key ? { key: creds.key } : {}),
      ...(creds.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
    };
    this.agent = this.secure ? new Agent(agentOptions) : new HttpAgent({ keepAlive: true, maxSockets });
  }

  static async create(opts: KubeClientOptions = {}): Promise<KubeClient> {
    return new KubeClient(await loadCredentials(opts.kubeconfigPath), opts);
  }

  /** Tokens can rotate (projected service account tokens, exec plugins): re-read them now and then, in the background. */
  private maybeRefresh(): void {
    if (this.tokenFile) {
      // In a pod: re-read the projected token file every minute (cheap; the kubelet rotates it).
      if (Date.now() - this.headersAt < 60_000) return;
      try {
        this.headers = bearer(this.tokenFile);
      } catch {
        // keep the old token; the next request tries again in a minute
      }
      this.headersAt = Date.now();
      return;
    }
    if (!this.rotates || this.refreshing || Date.now() - this.headersAt < ROTATE_EVERY_MS) return;
    this.refreshing = true;
    loadCredentials(this.kubeconfigPath)
      .then((c) => {
        this.headers = c.headers;
        this.headersAt = Date.now();
      })
      .catch(() => {
        this.headersAt = Date.now() - ROTATE_EVERY_MS + 30_000; // retry in 30 s, keep the old token meanwhile
      })
      .finally(() => {
        this.refreshing = false;
      });
  }

  private async open(method: string, path: string, opts: RequestOptions, verbForStats: string): Promise<IncomingMessage> {
    this.maybeRefresh();
    this.stats.byVerb.set(verbForStats, (this.stats.byVerb.get(verbForStats) ?? 0) + 1);
    const url = new URL(this.server + path + queryString(opts.query));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = {
      ...this.headers,
      Accept: "application/json",
      "User-Agent": this.userAgent,
      ...opts.headers,
    };
    if (body) {
      headers["Content-Type"] = opts.contentType ?? "application/json";
      headers["Content-Length"] = String(body.length);
    }
    // A request sent on a kept-alive socket the API server had already closed (it restarted, or this
    // process was paused and has not yet read the close) fails before any answer: send it again on another
    // socket, as Go's net/http does for client-go. Each failure takes its dead socket out of the pool, and
    // the event loop reads the other closes meanwhile, so a few resends are plenty.
    for (let resends = 0; ; resends++) {
      try {
        return await this.send(url, method, headers, body, opts);
      } catch (err) {
        if (!(err instanceof StaleSocketError)) throw err;
        if (resends === MAX_RESENDS || !resendable(method, opts.contentType)) throw err.cause;
        this.stats.byVerb.set(verbForStats, (this.stats.byVerb.get(verbForStats) ?? 0) + 1);
      }
    }
  }

  /** One HTTP request; rejects with StaleSocketError when a reused socket fails before any answer. */
  private send(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, opts: RequestOptions): Promise<IncomingMessage> {
    const send = this.secure ? request : httpRequest;
    return new Promise((resolve, reject) => {
      let answered: ReturnType<typeof setTimeout> | undefined;
      const req = send(url, { method, headers, agent: this.agent as Agent, ...(opts.signal ? { signal: opts.signal } : {}) }, (res) => {
        clearTimeout(answered);
        resolve(res);
      });
      if (opts.timeoutMs) {
        const timeout = () => req.destroy(new Error(`timeout after ${opts.timeoutMs} ms`));
        // Until the answer starts, a deadline from now: the socket's idle timeout only starts once it is
        // connected, and a new TLS connection to a hung API server connects and then never shakes hands.
        answered = setTimeout(timeout, opts.timeoutMs);
        // Then between bytes of the answer.
        req.setTimeout(opts.timeoutMs, timeout);
      }
      // Once answered, the promise is settled and a later error belongs to the body's reader.
      req.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(answered);
        reject(req.reusedSocket && STALE_SOCKET_CODES.has(err.code ?? "") && !opts.signal?.aborted ? new StaleSocketError(err) : err);
      });
      req.end(body);
    });
  }

  /** A request whose answer is one JSON document. Non-2xx answers throw ApiError. */
  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.open(method, path, { timeoutMs: 60_000, ...opts }, opts.statsVerb ?? method);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) {
      let status: Status = {};
      try {
        status = JSON.parse(text) as Status;
      } catch {
        // not JSON
      }
      throw new ApiError(code, status.reason ?? "", status.message ?? `${method} ${path}: HTTP ${code}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = KubeObject>(ref: ResourceRef, opts: Pick<RequestOptions, "timeoutMs"> = {}): Promise<T> {
    return this.request<T>("GET", resourcePath(ref), opts);
  }

  list<T = KubeObject>(
    ref: ResourceRef,
    query: RequestOptions["query"] = {},
  ): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }> {
    return this.request("GET", resourcePath(ref), { query, timeoutMs: 120_000, statsVerb: "LIST" });
  }

  /**
   * Server-side apply: the object as rendered, under one field manager, forcing ownership of the
   * fields it sets, with strict field validation (an unknown field is an error, not silently dropped).
   */
  apply<T = KubeObject>(ref: ResourceRef, obj: unknown, fieldManager: string): Promise<T> {
    return this.request<T>("PATCH", resourcePath(ref), {
      query: { fieldManager, force: "true", fieldValidation: "Strict" },
      body: obj,
      contentType: "application/apply-patch+yaml",
    });
  }

  delete(ref: ResourceRef, query: RequestOptions["query"] = {}): Promise<unknown> {
    return this.request("DELETE", resourcePath(ref), { query });
  }

  create<T = KubeObject>(ref: ResourceRef, obj: unknown, opts: Pick<RequestOptions, "timeoutMs"> = {}): Promise<T> {
    return this.request<T>("POST", resourcePath(ref), { ...opts, body: obj });
  }

  replace<T = KubeObject>(ref: ResourceRef, obj: unknown, opts: Pick<RequestOptions, "timeoutMs"> = {}): Promise<T> {
    return this.request<T>("PUT", resourcePath(ref), { ...opts, body: obj });
  }

  /**
   * A watch: yields each event line as parsed JSON until the server closes the stream (normal end
   * after timeoutSeconds), the signal aborts, or the connection fails (throws).
   */
  async *watch(path: string, query: RequestOptions["query"], signal: AbortSignal): AsyncGenerator<{ type: string; object: KubeObject & Status }> {
    const res = await this.open("GET", path, { query: { ...query, watch: "true" }, signal }, "WATCH");
    const code = res.statusCode ?? 0;
    if (code !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      let status: Status = {};
      try {
        status = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Status;
      } catch {
        // not JSON
      }
      throw new ApiError(code, status.reason ?? "", status.message ?? `watch ${path}: HTTP ${code}`);
    }
    let buf = "";
    res.setEncoding("utf8");
    for await (const chunk of res) {
      buf += chunk as string;
      // Lines are cut from one position forward and the rest kept once per chunk: cutting the rest after
      // every line copied a busy watch's buffer once per event (a list-sized burst of events per chunk).
      let start = 0;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(start, nl);
        start = nl + 1;
        if (line.trim()) yield JSON.parse(line) as { type: string; object: KubeObject & Status };
        nl = buf.indexOf("\n", start);
      }
      buf = buf.slice(start);
    }
  }

  /** Total requests sent (all verbs). */
  totalRequests(): number {
    let n = 0;
    for (const v of this.stats.byVerb.values()) n += v;
    return n;
  }

  close(): void {
    this.agent.destroy();
  }
}
