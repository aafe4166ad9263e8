// Every MCP session the gateway knows, in one table with one owner rule (resolve). Two kinds:
//   bound   the upstream holds the session (streamable-HTTP upstream); the gateway only remembers
//           which client created it, and closes it upstream (DELETE) when it drops the binding.
//   hosted  the gateway holds the session over a message channel (stdio bridge, HTTP+SSE upstream,
//           clients on the older transport); the channel is closed when the session is dropped.
// Capacity is shared fairly: each client has a cap of its own, and when the table is full a new
// session takes the place of the least recently used session of the client holding the most, never
// of a client holding fewer than the newcomer. Nobody can flush everybody else's sessions.
import { randomUUID } from "node:crypto";
import type { Identity } from "./authz.ts";
import type { Channel } from "./channel.ts";
import { auditResultOf } from "./audit.ts";
import type { Core, Exchange } from "./exchange.ts";
import { ERR, type JsonRpcMessage, errorBody, modernErrorCode } from "./jsonrpc.ts";

export interface SessionLimits {
  /** Sessions bound to clients (upstream-held), all clients together. */
  maxBound: number;
  maxBoundPerClient: number;
  /** Gateway-held sessions (each may pin a server process), all clients together. */
  maxHosted: number;
  maxHostedPerClient: number;
}

export interface BoundSession {
  readonly kind: "bound";
  readonly id: string;
  readonly owner: string;
  lastSeen: number;
  /** JSON of the client's request ids in flight: a second request with the same id is refused. */
  readonly inflight: Set<string>;
  /** While the GET stream is being opened upstream, later POSTs wait here (the server's first messages go to that stream). */
  gate: Exchange[] | undefined;
}

export type Session = BoundSession | HostedSession;

/** A session the gateway holds itself. Request ids are rewritten upstream, so answers cannot be swapped. */
export class HostedSession {
  readonly kind = "hosted";
  readonly id = randomUUID();
  readonly owner: string;
  readonly identity: Identity;
  readonly channel: Channel;
  /** Clients on the older HTTP+SSE transport: answers go on `stream`. */
  readonly legacy: boolean;
  /** Streamable HTTP GET stream, or the older transport's SSE stream. */
  stream: import("node:http").ServerResponse | undefined;
  lastSeen = Date.now();
  /** Requests waiting for their answer, by the id the gateway gave them upstream. */
  readonly pending = new Map<number, Exchange>();
  /** The client's request ids in flight (JSON) -> upstream id (0 until sent). */
  readonly byClientId = new Map<string, number>();
  #nextId = 0;
  #ended = false;
  readonly #core: Core;
  // ---- issue 11: sessions the gateway holds for 2026 clients (stateless-bridge.ts) ----
  /** Requests of the gateway's own (the bridge's initialize), by upstream id. */
  readonly #internal = new Map<number, (m: JsonRpcMessage) => void>();
  /** A server-to-client request; true when taken care of (else it goes to the stream, as for a 2025 client). */
  onServerRequest: ((m: JsonRpcMessage) => boolean) | undefined;
  /** A server notification (the bridge feeds subscriptions/listen streams with them). */
  onNotification: ((m: JsonRpcMessage) => void) | undefined;
  /** An answer to a request no exchange waits for any more (an MRTR call parked while the client answers). */
  onOrphanAnswer: ((m: JsonRpcMessage) => void) | undefined;
  /** Holders that keep the session from being swept as idle (listen streams, parked calls). */
  pinned = 0;
  /** The session ended (the bridge forgets it). */
  onEnd: (() => void) | undefined;

  constructor(core: Core, identity: Identity, channel: Channel, legacy: boolean) {
    this.#core = core;
    this.owner = identity.key;
    this.identity = identity;
    this.channel = channel;
    this.legacy = legacy;
  }

  /** Sends a client request upstream under an id of the gateway's; the answer comes back through fromUpstream. */
  request(x: Exchange, timeoutMs: number): void {
    if (this.#ended) {
      // Dropped while the request was being checked: answered now, not at its timeout.
      this.#answer(x, errorBody(x.msg?.id, upstreamCode(x), "upstream session ended"), "upstream-error");
      return;
    }
    const upstreamId = ++this.#nextId;
    x.upstreamId = upstreamId;
    x.cleanup = cleanupHosted;
    this.pending.set(upstreamId, x);
    if (x.idKey !== undefined) this.byClientId.set(x.idKey, upstreamId);
    x.timer = setTimeout(onHostedTimeout, timeoutMs, x, timeoutMs);
    // issue 13: the caller's identity reaches HTTP upstreams here too (SSE upstream, older-transport clients).
    this.channel.send(JSON.stringify({ ...x.msg, id: upstreamId }), this.#core.identityHeaders(x));
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** issue 11: a request of the gateway's own on this session (the bridge's initialize). */
  call(method: string, params: Record<string, unknown>, timeoutMs: number): Promise<JsonRpcMessage> {
    if (this.#ended) return Promise.reject(new Error("upstream session ended"));
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#internal.delete(id);
        reject(new Error(`${method} timed out`));
      }, timeoutMs);
      this.#internal.set(id, (m) => {
        clearTimeout(t);
        this.#internal.delete(id);
        resolve(m);
      });
      this.channel.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  /** issue 11: the exchange stops waiting for its upstream request, which goes on (MRTR: the client answers an input request). */
  detach(x: Exchange): void {
    if (x.upstreamId !== undefined) this.pending.delete(x.upstreamId);
    if (x.timer) clearTimeout(x.timer);
    x.timer = undefined;
  }

  /** issue 11: an exchange (an MRTR retry) takes over waiting for an upstream request already sent. */
  attach(x: Exchange, upstreamId: number, timeoutMs: number): void {
    x.hosted = this;
    x.upstreamId = upstreamId;
    x.cleanup = cleanupHosted;
    this.pending.set(upstreamId, x);
    x.timer = setTimeout(onHostedTimeout, timeoutMs, x, timeoutMs);
  }

  /** issue 11: answers an exchange of this session (the bridge's own answers: discover, input requests). */
  answer(x: Exchange, body: string): void {
    this.#answer(x, body, "ok");
  }

  /** A notification or the client's answer to a server request. A cancellation names the request by its upstream id. */
  notify(msg: JsonRpcMessage): void {
    if (msg.method === "notifications/cancelled") {
      const up = this.byClientId.get(JSON.stringify(msg.params?.requestId));
      if (!up) return; // nothing of this client's in flight under that id
      msg = { ...msg, params: { ...msg.params, requestId: up } };
    }
    this.channel.send(JSON.stringify(msg));
  }

  fromUpstream(raw: string): void {
    let m: JsonRpcMessage;
    try {
      m = JSON.parse(raw) as JsonRpcMessage;
    } catch {
      return; // a stdio server's stray output line: not a message
    }
    if (!m || typeof m !== "object") return;
    if (m.method === undefined && typeof m.id === "number") {
      const x = this.pending.get(m.id);
      if (x?.msg) {
        // Filtering is decided by the method of the request this answers, which the gateway's own id names.
        const out = this.#core.filter(this.identity, x.msg.method, JSON.stringify({ ...m, id: x.msg.id }), x.source, x.era === "modern");
        this.#answer(x, out, "ok");
        return;
      }
      const own = this.#internal.get(m.id);
      if (own) {
        own(m);
        return;
      }
      if (this.onOrphanAnswer) {
        this.onOrphanAnswer(m);
        return;
      }
    }
    if (m.method === "notifications/tools/list_changed") this.#core.toolsChanged();
    if (m.method !== undefined && m.id !== undefined && this.onServerRequest?.(m)) return;
    if (m.method !== undefined && m.id === undefined) this.onNotification?.(m);
    // Notifications and server-to-client requests go to the session's stream, when the client opened one.
    this.write(this.#core.filter(this.identity, undefined, raw));
  }

  write(data: string): void {
    const s = this.stream;
    if (s && !s.writableEnded) s.write(`event: message\ndata: ${data}\n\n`);
  }

  /** Answers one pending request (HTTP body, or an event on the older transport's stream) and finishes it. */
  #answer(x: Exchange, body: string, outcome: string, reason?: string): void {
    if (x.done) return;
    // issue 14: the audit line's result (an answer, a timeout, the session's end): status and sanitized error only.
    x.result = auditResultOf(body, false, x.msg?.id);
    let status = 202;
    if (x.detached) this.write(body);
    else {
      status = outcome === "upstream-error" ? 502 : 200;
      if (!x.res.headersSent) {
        const h: Record<string, string> = { "content-type": "application/json" };
        if (x.msg?.method === "initialize") h["mcp-session-id"] = this.id;
        x.res.writeHead(status, h).end(body);
      } else if (x.sse && !x.res.writableEnded) x.res.end(`event: message\ndata: ${body}\n\n`); // answered on the SSE stream its progress opened
    }
    this.#core.finish(x, outcome, status, reason);
  }

  timeout(x: Exchange, ms: number): void {
    x.timer = undefined;
    this.#answer(x, errorBody(x.msg?.id, ERR.timeout, `request timed out after ${Math.round(ms / 1000)} s`), "timeout");
  }

  /** The session ended (dropped, upstream closed, gateway shutting down): every request still waiting is answered and finished. */
  end(outcome: string, message: string): void {
    this.#ended = true;
    this.onEnd?.();
    for (const f of [...this.#internal.values()]) f({ jsonrpc: "2.0", error: { code: ERR.upstream, message } });
    for (const x of [...this.pending.values()]) this.#answer(x, errorBody(x.msg?.id, upstreamCode(x), message), outcome);
    this.pending.clear();
    this.byClientId.clear();
  }
}

/** The "upstream error" code for this exchange's era (2026 clients must not get -32002). */
function upstreamCode(x: Exchange): number {
  return x.era === "modern" ? modernErrorCode(ERR.upstream, x.msg?.method) : ERR.upstream;
}

function onHostedTimeout(x: Exchange, ms: number): void {
  x.hosted?.timeout(x, ms);
}

/** Runs from finish(): the request leaves its session; if it ended without its answer, the upstream is told to stop. */
function cleanupHosted(x: Exchange, outcome: string): void {
  const h = x.hosted!;
  if (x.timer) clearTimeout(x.timer);
  x.timer = undefined;
  if (x.idKey !== undefined) h.byClientId.delete(x.idKey);
  if (x.upstreamId !== undefined && h.pending.delete(x.upstreamId) && outcome !== "ok" && outcome !== "upstream-error") {
    h.channel.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: x.upstreamId, reason: "request ended" } }));
  }
}

/** Releases a request id reserved in a bound session. */
function cleanupBound(x: Exchange): void {
  if (x.idKey !== undefined) x.bound?.inflight.delete(x.idKey);
}

interface Holdings {
  bound: Set<BoundSession>;
  hosted: Set<HostedSession>;
}

function lru<T extends { lastSeen: number }>(set: Iterable<T>): T | undefined {
  let best: T | undefined;
  for (const s of set) if (!best || s.lastSeen < best.lastSeen) best = s;
  return best;
}

export class SessionTable {
  readonly #bound = new Map<string, BoundSession>();
  readonly #hosted = new Map<string, HostedSession>();
  readonly #owners = new Map<string, Holdings>();
  readonly #limits: SessionLimits;
  /** Opens the upstream channel of a gateway-held session for this caller (a stdio process gets its identity). */
  readonly #open: (identity: Identity, source: string) => Channel;
  readonly #closeBound: (s: BoundSession) => void;
  #core!: Core;

  constructor(limits: SessionLimits, open: (identity: Identity, source: string) => Channel, closeBound: (s: BoundSession) => void) {
    this.#limits = limits;
    this.#open = open;
    this.#closeBound = closeBound;
  }

  attach(core: Core): void {
    this.#core = core;
  }

  get size(): number {
    return this.#bound.size + this.#hosted.size;
  }

  get hostedCount(): number {
    return this.#hosted.size;
  }

  /**
   * The session-owner rule, in one place: a session is found only by the client that created it and
   * only on the transport it was created on (older-transport sessions through /messages, the others
   * through Mcp-Session-Id). Unknown and foreign sessions look the same, so ids cannot be probed.
   */
  resolve(sessionId: string, identity: Identity, transport: "streamable-http" | "sse"): Session | undefined {
    const h = this.#hosted.get(sessionId);
    if (h) {
      if (h.owner !== identity.key || h.legacy !== (transport === "sse")) return undefined;
      h.lastSeen = Date.now();
      return h;
    }
    const b = this.#bound.get(sessionId);
    if (!b || transport !== "streamable-http" || b.owner !== identity.key) return undefined;
    b.lastSeen = Date.now();
    return b;
  }

  /** Reserves a request id in its session; false when the same id is already in flight there. */
  reserve(x: Exchange, idKey: string): boolean {
    if (x.hosted) {
      if (x.hosted.byClientId.has(idKey)) return false;
      x.hosted.byClientId.set(idKey, 0);
      x.idKey = idKey;
      x.cleanup = cleanupHosted;
      return true;
    }
    const b = x.bound!;
    if (b.inflight.has(idKey)) return false;
    b.inflight.add(idKey);
    x.idKey = idKey;
    x.cleanup = cleanupBound;
    return true;
  }

  #holdings(owner: string): Holdings {
    let h = this.#owners.get(owner);
    if (!h) {
      h = { bound: new Set(), hosted: new Set() };
      this.#owners.set(owner, h);
    }
    return h;
  }

  #release(owner: string): void {
    const h = this.#owners.get(owner);
    if (h && h.bound.size === 0 && h.hosted.size === 0) this.#owners.delete(owner);
  }

  /** The least recently used session of the client holding the most, if it holds more than `than`. */
  #victim<K extends "bound" | "hosted">(kind: K, than: number): Holdings[K] extends Set<infer T> ? T | undefined : never {
    let most: Holdings | undefined;
    for (const h of this.#owners.values()) if (!most || h[kind].size > most[kind].size) most = h;
    if (!most || most[kind].size <= than) return undefined as never;
    return lru(most[kind] as Set<{ lastSeen: number }>) as never;
  }

  /** Remembers that `sid` (issued by the upstream) belongs to `identity`. */
  bind(sid: string, identity: Identity): void {
    if (this.#bound.has(sid)) return;
    const key = identity.key;
    const mine = () => this.#owners.get(key)?.bound;
    if ((mine()?.size ?? 0) >= this.#limits.maxBoundPerClient) this.drop(lru(mine()!)!.id);
    if (this.#bound.size >= this.#limits.maxBound) {
      const v = this.#victim("bound", mine()?.size ?? 0);
      if (v) this.drop(v.id);
      // else: every client holds no more than this one; this one's own oldest makes room
      else if (mine()?.size) this.drop(lru(mine()!)!.id);
    }
    const s: BoundSession = { kind: "bound", id: sid, owner: key, lastSeen: Date.now(), inflight: new Set(), gate: undefined };
    this.#bound.set(sid, s);
    // Looked up after the drops: dropping a client's last session forgets its holdings.
    this.#holdings(key).bound.add(s);
  }

  /** Opens a gateway-held session for `identity`, or refuses when it cannot get its fair share. */
  host(identity: Identity, legacy: boolean, source: string): HostedSession | undefined {
    const key = identity.key;
    const mine = () => this.#owners.get(key)?.hosted;
    if ((mine()?.size ?? 0) >= this.#limits.maxHostedPerClient) this.drop(lru(mine()!)!.id);
    if (this.#hosted.size >= this.#limits.maxHosted) {
      const v = this.#victim("hosted", (mine()?.size ?? 0) + 1);
      if (!v) return undefined;
      this.drop(v.id);
    }
    const h = new HostedSession(this.#core, identity, this.#open(identity, source), legacy);
    h.channel.onmessage = (raw) => h.fromUpstream(raw);
    h.channel.onclose = () => this.drop(h.id, "upstream-error", "upstream session ended");
    this.#hosted.set(h.id, h);
    // Looked up after the drops: dropping a client's last session forgets its holdings.
    this.#holdings(key).hosted.add(h);
    return h;
  }

  /** Drops a session and closes it upstream (DELETE for a bound session, the channel for a hosted one). */
  drop(sid: string, outcome = "upstream-error", message = "session closed"): void {
    const h = this.#hosted.get(sid);
    if (h) {
      this.#hosted.delete(sid);
      this.#owners.get(h.owner)?.hosted.delete(h);
      this.#release(h.owner);
      h.channel.onclose = () => undefined;
      h.channel.close();
      h.end(outcome, message);
      h.stream?.end();
      return;
    }
    const b = this.forget(sid);
    if (b) this.#closeBound(b);
  }

  /** Forgets a bound session without telling the upstream (the client deleted it, or the upstream no longer has it). */
  forget(sid: string): BoundSession | undefined {
    const b = this.#bound.get(sid);
    if (!b) return undefined;
    this.#bound.delete(sid);
    this.#owners.get(b.owner)?.bound.delete(b);
    this.#release(b.owner);
    return b;
  }

  /** Drops idle sessions (and closes them upstream). A hosted session with a stream or a request in flight is not idle. */
  sweep(now: number, boundIdleMs: number, hostedIdleMs: number): void {
    for (const [k, s] of this.#bound) if (s.lastSeen < now - boundIdleMs && s.inflight.size === 0) this.drop(k);
    for (const [k, h] of this.#hosted) if (h.lastSeen < now - hostedIdleMs && !h.stream && h.pending.size === 0 && h.pinned === 0) this.drop(k);
  }

  /** Gateway shutdown: every hosted session ends (its waiting requests are answered and finished). */
  closeAll(): void {
    for (const k of [...this.#hosted.keys()]) this.drop(k, "shutdown", "gateway shutting down");
  }
}
