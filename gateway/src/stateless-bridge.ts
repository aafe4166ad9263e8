// issue 11: 2026-07-28 (stateless) clients in front of a 2025 upstream (initialize and sessions: most
// servers today, every stdio server behind the bridge, HTTP+SSE servers). The gateway holds upstream
// sessions on the clients' behalf:
//
// - Sessions are keyed by the client's identity: no upstream session (no stdio process) is ever
//   shared between two clients. They are gateway-held sessions of the session table, so the table's
//   bounds hold (per client and in all), and its sweep closes them when idle.
// - A call that may be answered with an input request (tools/call, prompts/get, resources/read) gets
//   a session with no other such call in flight while there is one (up to the client's session cap;
//   beyond it calls share sessions), so a server request that arrives (elicitation, sampling, roots)
//   belongs to it without doubt. It is turned into an MRTR interim result (resultType
//   "input_required") when the client declared the capability on that request; the upstream call
//   stays parked under an opaque requestState the gateway minted. The retry is checked by every
//   stage like a first request, and resumes the parked call only if it is the same call (same client,
//   method, tool or resource, same arguments): inputResponses cannot smuggle a different one. Any
//   other server request (no capability, several calls in flight on the session, too many parked) is
//   answered with an error at once, so no call hangs.
// - server/discover is answered from the session's initialize result; subscriptions/listen is fed
//   with the session's list-change notifications, filtered for the client.
import { createHash, randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { auditResultOf } from "./audit.ts";
import type { Identity } from "./authz.ts";
import { CATALOG_CLIENT_CAPABILITIES } from "./channel.ts";
import { type Core, type Exchange, HANDLED, type Step, type Stop, stop } from "./exchange.ts";
import { META, declaredCapabilities, isModernVersion } from "./era.ts";
import { ERR, type JsonRpcMessage } from "./jsonrpc.ts";
import { MRTR_METHODS, discoverFromInitialize, visibleFilter } from "./modern.ts";
import type { HostedSession } from "./sessions.ts";
import { GATEWAY_CLIENT_INFO } from "./upstream-era.ts";

/** How long a parked call waits for the client's retry. */
const PARK_MS = 300_000;
/** Parked calls one client may have at a time (each holds an upstream request open). */
const MAX_PARKED_PER_CLIENT = 16;
const INIT_TIMEOUT_MS = 30_000;
/** A comment on quiet listen streams, so proxies in between keep them open. */
const KEEPALIVE_MS = 25_000;

/** The capability a server request needs from the client, for those MRTR can carry. */
const INPUT_CAPABILITY: Readonly<Record<string, string>> = { "elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots" };

/** What the bridge needs from the gateway beyond Core. */
export interface BridgeCore extends Core {
  readonly protocolVersions: readonly string[];
}

interface Bridged {
  h: HostedSession;
  /** The upstream's initialize result, once the session is initialized. */
  ready: Promise<JsonRpcMessage>;
  /** MRTR-capable calls in flight on this session, with the client capabilities each declared. */
  inflight: Map<Exchange, Record<string, unknown> | undefined>;
  /** Calls of this session parked while the client answers an input request. */
  parked: Set<Parked>;
  /** Calls in flight that asked for progress, by their progress token (JSON). */
  progress: Map<string, Exchange>;
}

interface Parked {
  readonly kind: "parked";
  readonly token: string;
  readonly owner: string;
  readonly b: Bridged;
  /** The upstream id of the original call, still pending upstream. */
  readonly upstreamId: number;
  /** What a retry must repeat: method, name/uri, arguments digest. */
  readonly call: string;
  /** The server's request, by the key of the inputRequests map. */
  readonly key: string;
  readonly serverRequestId: string | number;
  readonly inputRequest: { method: string; params: unknown };
  timer: NodeJS.Timeout;
  /** The call's final answer, if it came while the client was answering. */
  answer: JsonRpcMessage | undefined;
}

interface Listener {
  res: ServerResponse;
  subscriptionId: string | number;
  identity: Identity;
  source: string;
  wants: Record<string, boolean>;
  /** Resource URIs subscribed on the listener's session (resources/subscribe upstream). */
  uris: Set<string>;
  ping: NodeJS.Timeout;
}

interface Pool {
  sessions: Bridged[];
  listeners: Set<Listener>;
  parked: number;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Canonical JSON (sorted keys): the arguments digest does not depend on key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObj(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

/** What identifies a call for MRTR: method, tool/prompt name or resource URI, and a digest of the arguments. */
export function callIdentity(m: JsonRpcMessage): string {
  const p = m.params ?? {};
  const target = m.method === "resources/read" ? p.uri : p.name;
  const digest = createHash("sha256")
    .update(canonical(p.arguments ?? null))
    .digest("base64url");
  return `${m.method}\u0000${typeof target === "string" ? target : ""}\u0000${digest}`;
}

/** A 2026 request as a 2025 session takes it: the per-request protocol `_meta` and the MRTR fields go. */
export function toLegacyRequest(m: JsonRpcMessage): JsonRpcMessage {
  if (!m.params) return m;
  const { inputResponses: _ir, requestState: _rs, _meta, ...rest } = m.params;
  const meta: Record<string, unknown> = {};
  if (isObj(_meta)) for (const [k, v] of Object.entries(_meta)) if (!k.startsWith("io.modelcontextprotocol/")) meta[k] = v;
  return { ...m, params: Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest };
}

export class StatelessBridge {
  readonly #core: BridgeCore;
  readonly #pools = new Map<string, Pool>();
  readonly #parked = new Map<string, Parked>();
  readonly #maxPerClient: number;

  constructor(core: BridgeCore, maxPerClient: number) {
    this.#core = core;
    this.#maxPerClient = Math.max(1, maxPerClient);
  }

  /** Sends a checked 2026 request to the client's upstream session (HANDLED), or refuses it. */
  forward(x: Exchange): Step {
    const m = x.msg!;
    if (m.method === undefined || m.id === undefined) {
      // 2026 defines no client notifications over HTTP (closing a stream cancels): accepted, not relayed.
      x.res.writeHead(202).end();
      this.#core.finish(x, "ok", 202);
      return HANDLED;
    }
    if (m.method === "server/discover") return this.#discover(x);
    if (m.method === "subscriptions/listen") return this.#listen(x);
    if (MRTR_METHODS.has(m.method) && m.params?.requestState !== undefined) return this.#resume(x);
    const mrtr = MRTR_METHODS.has(m.method);
    const b = this.#session(x.identity!, mrtr, x.source);
    if (!b) return stop.noCapacity();
    if (mrtr) this.#occupy(b, x);
    return b.ready.then(
      (init) => {
        if (x.done) {
          b.inflight.delete(x); // the client went away while the session was being opened
          return HANDLED;
        }
        if (init.error !== undefined || b.h.ended) return this.#unavailable(b, x);
        this.#send(b, x);
        return HANDLED;
      },
      () => this.#unavailable(b, x),
    );
  }

  /** An MRTR-capable call is in flight on `b` until its exchange ends (or it is parked). */
  #occupy(b: Bridged, x: Exchange): void {
    b.inflight.set(x, declaredCapabilities(x.msg));
  }

  #unavailable(b: Bridged, x: Exchange): Stop {
    b.inflight.delete(x);
    return { status: 502, code: ERR.upstream, message: "upstream unavailable", outcome: "upstream-error", reason: "bridged session could not be initialized" };
  }

  #send(b: Bridged, x: Exchange): void {
    x.hosted = b.h;
    x.msg = toLegacyRequest(x.msg!);
    b.h.request(x, x.checked!.timeoutMs);
    this.#release(b, x);
  }

  /** When the exchange ends, it no longer occupies its session. A progress token it asked with now names it. */
  #release(b: Bridged, x: Exchange): void {
    const meta = x.msg?.params?._meta;
    const token =
      isObj(meta) && (typeof meta.progressToken === "string" || typeof meta.progressToken === "number") ? JSON.stringify(meta.progressToken) : undefined;
    if (token !== undefined) b.progress.set(token, x);
    const inner = x.cleanup;
    x.cleanup = (ex, outcome) => {
      inner?.(ex, outcome);
      b.inflight.delete(ex);
      if (token !== undefined && b.progress.get(token) === ex) b.progress.delete(token);
    };
  }

  /**
   * Progress of a bridged call goes where 2026 puts it: on the response stream of the request it is
   * about. The first one turns the answer into an SSE stream; the result ends it.
   */
  #progress(b: Bridged, m: JsonRpcMessage): void {
    const x = b.progress.get(JSON.stringify(m.params?.progressToken));
    if (!x || x.done || x.res.writableEnded) return;
    if (!x.res.headersSent) {
      x.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" });
      x.sse = true;
    }
    x.res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: m.method, params: m.params })}\n\n`);
  }

  // ---------------------------------------------------------------- sessions

  #pool(key: string): Pool {
    let p = this.#pools.get(key);
    if (!p) {
      p = { sessions: [], listeners: new Set(), parked: 0 };
      this.#pools.set(key, p);
    }
    return p;
  }

  /** Forgets a pool with nothing in it (identities come and go: JWT subjects are unbounded). */
  #prune(key: string): void {
    const p = this.#pools.get(key);
    if (p && p.sessions.length === 0 && p.listeners.size === 0) this.#pools.delete(key);
  }

  /**
   * A session of this client's, opened when needed; undefined: none can be. For an MRTR-capable call
   * (`free`), one without such a call in flight, else a new one while under the client's cap, else the
   * least busy (shared: a server request on it is then refused, as it cannot be told which call it is for).
   * `source` is the address a new session's process is told (stdio identity); a reused one keeps its own.
   */
  #session(identity: Identity, free: boolean, source: string): Bridged | undefined {
    const pool = this.#pool(identity.key);
    const idle = (b: Bridged) => b.inflight.size === 0 && b.parked.size === 0;
    const found = free ? pool.sessions.find(idle) : pool.sessions[0];
    if (found || pool.sessions.length >= this.#maxPerClient) {
      const b = found ?? pool.sessions.reduce((a, c) => (c.inflight.size < a.inflight.size ? c : a));
      b.h.lastSeen = Date.now();
      return b;
    }
    const h = this.#core.sessions.host(identity, false, source);
    if (!h) return undefined;
    const b: Bridged = { h, ready: Promise.resolve({ jsonrpc: "2.0" }), inflight: new Map(), parked: new Set(), progress: new Map() };
    b.ready = this.#initialize(h);
    b.ready.catch(() => undefined);
    h.onServerRequest = (m) => this.#serverRequest(b, m);
    h.onNotification = (m) => (m.method === "notifications/progress" ? this.#progress(b, m) : this.#notify(identity.key, m));
    h.onOrphanAnswer = (m) => this.#orphanAnswer(b, m);
    h.onEnd = () => {
      // Dropped (idle, evicted, upstream gone, shutdown): its parked calls cannot be resumed.
      for (const p of [...b.parked]) this.#drop(p);
      pool.sessions = pool.sessions.filter((s) => s !== b);
      this.#prune(identity.key);
    };
    pool.sessions.push(b);
    return b;
  }

  async #initialize(h: HostedSession): Promise<JsonRpcMessage> {
    const legacy = this.#core.protocolVersions.find((v) => !isModernVersion(v)) ?? "2025-11-25";
    let r: JsonRpcMessage;
    try {
      r = await h.call("initialize", { protocolVersion: legacy, capabilities: CATALOG_CLIENT_CAPABILITIES, clientInfo: GATEWAY_CLIENT_INFO }, INIT_TIMEOUT_MS);
    } catch (e) {
      this.#core.sessions.drop(h.id, "upstream-error", "upstream session could not be initialized");
      throw e;
    }
    // A session the upstream refused is dropped, so the client's next request opens a new one.
    if (r.error !== undefined) this.#core.sessions.drop(h.id, "upstream-error", "upstream session could not be initialized");
    else h.notify({ jsonrpc: "2.0", method: "notifications/initialized" });
    return r;
  }

  // ---------------------------------------------------------------- server/discover

  #discover(x: Exchange): Step {
    const b = this.#session(x.identity!, false, x.source);
    if (!b) return stop.noCapacity();
    return b.ready.then(
      (init) => {
        if (x.done) return HANDLED;
        if (init.error !== undefined) return this.#unavailable(b, x);
        const result = discoverFromInitialize(init.result, this.#core.protocolVersions);
        const raw = JSON.stringify({ jsonrpc: "2.0", id: x.msg!.id, result });
        this.#reply(x, this.#core.filter(x.identity!, "server/discover", raw, x.source, true));
        return HANDLED;
      },
      () => this.#unavailable(b, x),
    );
  }

  #reply(x: Exchange, body: string): void {
    if (x.done) return;
    x.result = auditResultOf(body, false, x.msg?.id);
    if (!x.res.headersSent) x.res.writeHead(200, { "content-type": "application/json" }).end(body);
    this.#core.finish(x, "ok", 200);
  }

  // ---------------------------------------------------------------- MRTR

  /** A server request on a bridged session: an MRTR input request for the call it belongs to, or an error at once. */
  #serverRequest(b: Bridged, m: JsonRpcMessage): boolean {
    const h = b.h;
    const refuse = (message: string) => h.channel.send(JSON.stringify({ jsonrpc: "2.0", id: m.id, error: { code: ERR.methodNotFound, message } }));
    if (m.method === "ping") {
      h.channel.send(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: {} }));
      return true;
    }
    const cap = INPUT_CAPABILITY[m.method!];
    const live = [...b.inflight].filter(([e]) => !e.done && e.upstreamId !== undefined);
    if (!cap || live.length !== 1) {
      refuse(
        `${String(m.method).slice(0, 64)} cannot be relayed to the client: ${live.length === 0 ? "no call of its is waiting for input" : "several of its calls are in flight on this session"}`,
      );
      return true;
    }
    const [x, caps] = live[0]!;
    if (!isObj(caps?.[cap])) {
      refuse(`the client did not declare the ${cap} capability on this request`);
      return true;
    }
    const pool = this.#pool(x.identity!.key);
    if (pool.parked >= MAX_PARKED_PER_CLIENT) {
      refuse("the client has too many calls waiting for its input");
      return true;
    }
    const token = randomBytes(24).toString("base64url");
    const key = `${cap}-1`;
    const p: Parked = {
      kind: "parked",
      token,
      owner: x.identity!.key,
      b,
      upstreamId: x.upstreamId!,
      call: callIdentity(x.msg!),
      key,
      serverRequestId: m.id as string | number,
      inputRequest: { method: m.method!, params: m.params ?? {} },
      timer: setTimeout(() => this.#expire(token), PARK_MS),
      answer: undefined,
    };
    p.timer.unref();
    this.#parked.set(token, p);
    b.inflight.delete(x);
    b.parked.add(p);
    pool.parked++;
    h.pinned++;
    h.detach(x);
    this.#reply(x, this.#inputRequired(x.msg!.id, p));
    return true;
  }

  #inputRequired(id: JsonRpcMessage["id"], p: Parked): string {
    return JSON.stringify({ jsonrpc: "2.0", id, result: { resultType: "input_required", inputRequests: { [p.key]: p.inputRequest }, requestState: p.token } });
  }

  /** The retry of a parked call: resumed only when it is the same call by the same client. */
  #resume(x: Exchange): Step {
    const m = x.msg!;
    const token = m.params?.requestState;
    const p = typeof token === "string" ? this.#parked.get(token) : undefined;
    // Authorization already ran on this request's own name and arguments; the parked call must be that same call.
    if (!p || p.owner !== x.identity!.key || p.call !== callIdentity(m))
      return {
        status: 400,
        code: ERR.invalidParams,
        message: "invalid params: requestState does not belong to this call (same client, same tool and arguments)",
        outcome: "invalid",
      };
    if (p.b.h.ended) {
      this.#drop(p);
      return {
        status: 200,
        code: ERR.upstream,
        message: "the server session that asked for input has ended; call again without requestState",
        outcome: "upstream-error",
      };
    }
    const responses = m.params?.inputResponses;
    const answer = isObj(responses) ? responses[p.key] : undefined;
    if (answer === undefined) {
      // The input is still missing: asked again (the spec's advice), the call stays parked.
      this.#reply(x, this.#inputRequired(m.id, p));
      return HANDLED;
    }
    if (!isObj(answer))
      return { status: 400, code: ERR.invalidParams, message: `invalid params: inputResponses["${p.key}"] must be an object`, outcome: "invalid" };
    this.#drop(p);
    const b = p.b;
    this.#occupy(b, x);
    b.h.channel.send(JSON.stringify({ jsonrpc: "2.0", id: p.serverRequestId, result: answer }));
    b.h.attach(x, p.upstreamId, x.checked!.timeoutMs);
    this.#release(b, x);
    if (p.answer) b.h.fromUpstream(JSON.stringify(p.answer));
    return HANDLED;
  }

  #drop(p: Parked): void {
    if (!this.#parked.delete(p.token)) return;
    clearTimeout(p.timer);
    p.b.h.pinned--;
    p.b.parked.delete(p);
    const pool = this.#pools.get(p.owner);
    if (pool) pool.parked--;
  }

  /** Nobody retried in time: the server's request gets an error and the call is cancelled upstream. */
  #expire(token: string): void {
    const p = this.#parked.get(token);
    if (!p) return;
    this.#drop(p);
    const ch = p.b.h.channel;
    ch.send(JSON.stringify({ jsonrpc: "2.0", id: p.serverRequestId, error: { code: ERR.timeout, message: "the client did not answer" } }));
    ch.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: p.upstreamId, reason: "the client did not answer" } }));
  }

  /** The final answer of a parked call came before the retry: kept for it. */
  #orphanAnswer(b: Bridged, m: JsonRpcMessage): void {
    for (const p of b.parked) if (p.upstreamId === m.id) p.answer = m;
  }

  // ---------------------------------------------------------------- subscriptions/listen

  /**
   * subscriptions/listen for a 2025 upstream: list changes come from the client's sessions'
   * notifications; resource subscriptions (URIs the policy stage authorized) become resources/subscribe
   * on the listener's session, when the server offers subscriptions, and resources/unsubscribe when
   * the stream closes. The acknowledgment names what is honored: list changes of kinds the client may
   * see, and the URIs the server accepted.
   */
  #listen(x: Exchange): Step {
    const m = x.msg!;
    const identity = x.identity!;
    const b = this.#session(identity, false, x.source);
    if (!b) return stop.noCapacity();
    const asked = isObj(m.params?.notifications) ? m.params.notifications : {};
    const lists: Record<string, boolean> = {};
    for (const k of ["toolsListChanged", "promptsListChanged", "resourcesListChanged"]) if (asked[k] === true) lists[k] = true;
    const wants = visibleFilter(lists, this.#core.visibility(identity)) as Record<string, boolean>;
    const uris = Array.isArray(asked.resourceSubscriptions) ? [...new Set(asked.resourceSubscriptions.filter((u): u is string => typeof u === "string"))] : [];
    return b.ready.then(
      async (init) => {
        if (x.done) return HANDLED;
        if (init.error !== undefined) return this.#unavailable(b, x);
        const caps = (init.result as { capabilities?: { resources?: { subscribe?: unknown } } } | undefined)?.capabilities;
        const subscribed = new Set<string>();
        if (caps?.resources?.subscribe === true)
          for (const uri of uris) {
            const r = await b.h.call("resources/subscribe", { uri }, INIT_TIMEOUT_MS).catch(() => undefined);
            if (r && r.error === undefined) subscribed.add(uri);
          }
        if (x.done) {
          this.#unsubscribe(b, subscribed);
          return HANDLED;
        }
        this.#stream(x, b, wants, subscribed);
        return HANDLED;
      },
      () => this.#unavailable(b, x),
    );
  }

  #stream(x: Exchange, b: Bridged, wants: Record<string, boolean>, uris: Set<string>): void {
    const m = x.msg!;
    const identity = x.identity!;
    const res = x.res;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" });
    const honored = { ...wants, ...(uris.size > 0 ? { resourceSubscriptions: [...uris] } : {}) };
    const ack = {
      jsonrpc: "2.0",
      method: "notifications/subscriptions/acknowledged",
      params: { _meta: { [META.subscriptionId]: m.id }, notifications: honored },
    };
    res.write(`event: message\ndata: ${JSON.stringify(ack)}\n\n`);
    const l: Listener = {
      res,
      subscriptionId: m.id as string | number,
      identity,
      source: x.source,
      wants,
      uris,
      ping: setInterval(() => res.write(":\n\n"), KEEPALIVE_MS),
    };
    l.ping.unref();
    const pool = this.#pool(identity.key);
    pool.listeners.add(l);
    b.h.pinned++;
    res.on("close", () => {
      clearInterval(l.ping);
      pool.listeners.delete(l);
      b.h.pinned--;
      // Unsubscribed upstream unless another stream of this client still listens to the URI.
      const still = new Set([...pool.listeners].flatMap((o) => [...o.uris]));
      this.#unsubscribe(b, new Set([...uris].filter((u) => !still.has(u))));
      this.#prune(identity.key);
    });
    this.#core.finish(x, "ok", 200);
  }

  #unsubscribe(b: Bridged, uris: Set<string>): void {
    if (b.h.ended) return;
    for (const uri of uris) b.h.call("resources/unsubscribe", { uri }, INIT_TIMEOUT_MS).catch(() => undefined);
  }

  #notify(owner: string, m: JsonRpcMessage): void {
    const pool = this.#pools.get(owner);
    if (!pool || pool.listeners.size === 0) return;
    const want =
      m.method === "notifications/tools/list_changed"
        ? "toolsListChanged"
        : m.method === "notifications/prompts/list_changed"
          ? "promptsListChanged"
          : m.method === "notifications/resources/list_changed"
            ? "resourcesListChanged"
            : m.method === "notifications/resources/updated"
              ? "resourceSubscriptions"
              : undefined;
    if (!want) return;
    const uri = m.params?.uri;
    for (const l of pool.listeners) {
      if (l.res.writableEnded) continue;
      if (want === "resourceSubscriptions" ? !(typeof uri === "string" && l.uris.has(uri)) : !l.wants[want]) continue;
      const tagged = {
        jsonrpc: "2.0",
        method: m.method,
        params: { ...(m.params ?? {}), _meta: { ...(isObj(m.params?._meta) ? m.params._meta : {}), [META.subscriptionId]: l.subscriptionId } },
      };
      const out = this.#core.notificationFor(l.identity, l.source, JSON.stringify(tagged));
      if (out !== undefined) l.res.write(`event: message\ndata: ${out}\n\n`);
    }
  }

  /** The owners of the upstream sessions held for this client (for tests and debugging: always just the client). */
  sessionOwners(key: string): string[] {
    return (this.#pools.get(key)?.sessions ?? []).map((b) => b.h.owner);
  }

  /** Gateway shutdown: listen streams end (the spec's graceful closure: a result for the listen request). */
  closeAll(): void {
    for (const pool of this.#pools.values())
      for (const l of pool.listeners) {
        clearInterval(l.ping);
        if (!l.res.writableEnded)
          l.res.end(
            `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: l.subscriptionId, result: { resultType: "complete", _meta: { [META.subscriptionId]: l.subscriptionId } } })}\n\n`,
          );
      }
    for (const p of [...this.#parked.values()]) this.#drop(p);
  }
}
