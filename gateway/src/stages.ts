// The request path on the MCP port, as named stages run in order by one runner:
//
//   route -> origin and host -> authenticate -> replica -> admit -> parse -> era -> session -> policy -> forward -> (finish)
//
// The era stage (issue 11) decides once whether a request is of the stateless 2026-07-28 revision
// ("modern") or of a 2025 session, and checks what that era requires of it (version allowlist,
// Mcp-Method/Mcp-Name/Mcp-Param-* headers against the body). The stages after it are the same for
// both eras; only forward sends a modern request to its own end (stateless proxy or bridge).
//
// Each stage is a small function over the exchange (the per-request context). It returns undefined to
// pass the request on, a Stop to refuse it (the runner hands it to respond(), which answers and
// finishes), a Promise of either when it has to wait (a JWKS fetch, the request body, a Redis
// limiter), or HANDLED when it has taken the exchange over (forward). Synchronous stages cost no
// promise: the common request is authenticated, admitted and checked in one turn of the event loop
// once its body is in. Whatever ends an admitted exchange - answer, refusal, client abort, upstream
// close, timeout, shutdown - ends it through finish(), which releases its slot and writes its audit
// line exactly once.
import type { OutgoingHttpHeaders } from "node:http";
import type { AuthResult } from "./auth/index.ts";
import { type KeyMemo, newKeyMemo } from "./auth/apikeys.ts";
import type { ToolCatalog, ToolEntry } from "./catalog.ts";
import { type ParamHeader, classify, classifyBodyless, paramHeaderProblem, paramHeaders } from "./era.ts";
import { insufficientScopeChallenge, unauthorizedChallenge } from "./authz/scopes.ts";
import type { Core, Exchange, Step, Stop } from "./exchange.ts";
import { HANDLED, stop } from "./exchange.ts";
import { legacyPost, openLegacyStream } from "./legacy-sse.ts";
import { ERR, type JsonRpcMessage, shapeProblem } from "./jsonrpc.ts";
import type { Checked, Refusal } from "./policy.ts";
import type { UpstreamProxy } from "./proxy.ts";
import type { SessionAffinity } from "./affinity.ts";
import type { HostedSession } from "./sessions.ts";

/** The stage resumes the runner itself when it is done waiting (the request body). */
const PENDING: typeof HANDLED = HANDLED;

/** What the stages need beyond Core: the front door's settings and the admission counters. */
export interface Front extends Core {
  readonly mcpPath: string;
  readonly publicOrigin: string;
  readonly metadataPath: string;
  /** Host header values (host names, lower case) the gateway answers to. */
  readonly allowedHosts: ReadonlySet<string>;
  readonly proxy: UpstreamProxy | undefined;
  readonly catalog: ToolCatalog;
  /** issue 11: the protocol versions clients may use, newest first. */
  readonly protocolVersions: readonly string[];
  /** issue 11: sends a checked 2026-07-28 request on (stateless proxy to a 2026 upstream, or the bridge to a 2025 one). */
  forwardModern(x: Exchange): Step;
  /** issue 16: replicas keep sessions (affinity.ts); undefined with one replica. */
  readonly affinity: SessionAffinity | undefined;
  /** Takes a concurrency slot for the exchange, or returns the refusal. */
  admit(x: Exchange): Stop | undefined;
  /** The exchange's body is being received; bodyTimedOut() is called if it is not in within `ms`. */
  receiving(x: Exchange, ms: number): void;
  received(x: Exchange): void;
}

type Stage = (gw: Front, x: Exchange) => Step;

// ---------------------------------------------------------------- route

function route(gw: Front, x: Exchange): Step {
  const url = x.req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const m = x.req.method;
  if (path === gw.mcpPath) {
    if (m !== "POST" && m !== "GET" && m !== "DELETE") return stop.methodNotAllowed("GET, POST, DELETE");
    return undefined;
  }
  if (path === "/sse") {
    x.route = "sse";
    x.transport = "sse";
    return m === "GET" ? undefined : stop.methodNotAllowed("GET");
  }
  if (path === "/messages" || path === "/message") {
    x.route = "messages";
    x.transport = "sse";
    return m === "POST" ? undefined : stop.methodNotAllowed("POST");
  }
  return { status: 404, code: ERR.invalidRequest, message: "not found", outcome: "invalid" };
}

// ---------------------------------------------------------------- origin and host

/** The host name of a Host header value ("name", "name:port", "[v6]:port"), lower case, without a trailing dot. */
export function hostName(host: string | undefined): string | undefined {
  if (!host) return undefined;
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end < 0) return undefined;
    h = h.slice(0, end + 1);
  } else {
    const c = h.indexOf(":");
    if (c >= 0) h = h.slice(0, c);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.length > 0 ? h : undefined;
}

/**
 * DNS-rebinding protection (MCP transports spec): a browser page on another origin is refused by its
 * Origin, and a page on a rebound name (its DNS now pointing here) by its Host, on every route.
 */
function originAndHost(gw: Front, x: Exchange): Step {
  const origin = x.req.headers.origin;
  if (origin !== undefined && origin !== gw.publicOrigin) return { status: 403, code: ERR.denied, message: "origin not allowed", outcome: "denied" };
  const host = hostName(x.req.headers.host);
  if (host === undefined || !gw.allowedHosts.has(host))
    return { status: 403, code: ERR.denied, message: "host not allowed", outcome: "denied", reason: "host" };
  return undefined;
}

// ---------------------------------------------------------------- authenticate

/** Each connection's last verified API key (a property of its socket: it goes when the connection goes). */
const KEY_MEMO = Symbol("key memo");
type Remembering = Exchange["req"]["socket"] & { [KEY_MEMO]?: KeyMemo };

function authenticate(gw: Front, x: Exchange): Step {
  const socket = x.req.socket as Remembering;
  let memo = socket[KEY_MEMO];
  if (memo === undefined) {
    memo = newKeyMemo();
    socket[KEY_MEMO] = memo;
  }
  const a = gw.auth.authenticate(x.req.headers, memo);
  return a instanceof Promise ? a.then((r) => authenticated(gw, x, r)) : authenticated(gw, x, a);
}

function authenticated(gw: Front, x: Exchange, a: AuthResult): Stop | undefined {
  x.t = gw.metrics.phase("auth", x.t0);
  if (a.ok) {
    x.identity = a.identity;
    // issue 13: a token without the scopes every request needs gets the step-up challenge, whatever it asks.
    const lacking = gw.access.missingRequired(a.identity);
    if (!lacking) return undefined;
    x.req.resume();
    const msg = `the token lacks required scope(s): ${lacking.filter((s) => !a.identity.scopes?.includes(s)).join(" ")}`;
    const challenge = insufficientScopeChallenge(`${gw.publicOrigin}${gw.metadataPath}`, lacking, msg);
    return { status: 403, code: ERR.denied, message: msg, outcome: "denied", headers: { "www-authenticate": challenge }, reason: msg };
  }
  gw.metrics.authFailures.inc({ reason: a.reason });
  x.req.resume();
  // issue 13: the challenge names the scopes every request needs, so a client asks for them up front.
  const challenge = unauthorizedChallenge(
    `${gw.publicOrigin}${gw.metadataPath}`,
    gw.config.auth.jwt ? gw.access.requiredScopes : [],
    a.invalidToken ? a.message : undefined,
  );
  return { status: 401, code: ERR.unauthorized, message: a.message, outcome: "unauthenticated", headers: { "www-authenticate": challenge }, reason: a.reason };
}

// ---------------------------------------------------------------- admit

function admit(gw: Front, x: Exchange): Step {
  if (x.route === "sse") {
    // Opening a stream starts an upstream session (maybe a process): it draws from the client's bucket.
    const pc = gw.config.limits.perClient;
    const t = gw.limiter.take(`c:${x.identity!.key}`, pc.requestsPerMinute, pc.burst);
    return t instanceof Promise ? t.then((r) => (r.ok ? undefined : clientLimited(gw, r.retryAfter))) : t.ok ? undefined : clientLimited(gw, t.retryAfter);
  }
  if (x.req.method !== "POST") return undefined;
  const max = gw.config.limits.maxRequestBytes;
  if (Number(x.req.headers["content-length"] ?? -1) > max) {
    x.req.resume();
    return { status: 413, code: ERR.tooLarge, message: `request body larger than ${max} bytes`, outcome: "invalid", closeConnection: true };
  }
  return gw.admit(x);
}

function clientLimited(gw: Front, retryAfter: number): Stop {
  gw.metrics.rateLimited.inc({ scope: "client" });
  return {
    status: 429,
    code: ERR.rateLimited,
    message: `rate limit exceeded for this client; retry after ${retryAfter} s`,
    outcome: "rate-limited",
    headers: { "retry-after": String(retryAfter) },
  };
}

// ---------------------------------------------------------------- parse

/** Where a request being read keeps its state (module-level listeners, no closures per request). */
const BODY = Symbol("body");
interface Receiving {
  gw: Front;
  x: Exchange;
  chunks: Buffer[];
  size: number;
  over: boolean;
}
type Tagged = Exchange["req"] & { [BODY]?: Receiving };

/**
 * Reads the body, bounded in size and in time: a client that sends its body slowly holds a slot only
 * until the deadline (limits.bodyTimeoutSeconds; the gateway's sweep answers 408 and cuts it), then
 * resumes the stages after parse. Listeners are module functions: no closure or promise per request.
 */
function parse(gw: Front, x: Exchange): Step {
  if (x.req.method !== "POST") return undefined;
  const req = x.req as Tagged;
  req[BODY] = { gw, x, chunks: [], size: 0, over: false };
  gw.receiving(x, (gw.config.limits.bodyTimeoutSeconds ?? 10) * 1000);
  req.on("data", onBodyData);
  req.on("end", onBodyEnd);
  req.on("error", onBodyError);
  return PENDING;
}

function onBodyData(this: Tagged, c: Buffer): void {
  const b = this[BODY]!;
  if (b.over) return;
  b.size += c.length;
  const max = b.gw.config.limits.maxRequestBytes;
  if (b.size > max) {
    b.over = true;
    b.gw.received(b.x);
    b.gw.respond(b.x, { status: 413, code: ERR.tooLarge, message: `request body larger than ${max} bytes`, outcome: "invalid" });
    // Closing the socket while the client is still sending makes the kernel answer its bytes
    // with a reset, and the client never reads the 413 (EPIPE/ECONNRESET). Discard the rest of
    // the body instead (`over` drops it, nothing is buffered), but only for a few seconds: a
    // client that keeps streaming is cut off.
    setTimeout(() => {
      if (!this.complete) this.destroy();
    }, 5_000).unref();
    return;
  }
  b.chunks.push(c);
}

function onBodyEnd(this: Tagged): void {
  const b = this[BODY]!;
  if (b.over) return;
  b.over = true;
  const { gw, x, chunks } = b;
  gw.received(x);
  if (x.done) return;
  x.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const s = parseBody(gw, x);
  if (s) gw.respond(x, s);
  else run(gw, x, AFTER_PARSE);
}

function onBodyError(this: Tagged): void {
  const b = this[BODY]!;
  if (b.over) return;
  b.over = true;
  b.gw.received(b.x);
  b.gw.respond(b.x, { status: 400, code: ERR.invalidRequest, message: "request body not received", outcome: "client-closed" });
}

/** The body deadline passed (called by the gateway's sweep): 408, and the rest of the body is not waited for. */
export function bodyTimedOut(x: Exchange, ms: number): void {
  const b = (x.req as Tagged)[BODY];
  if (!b || b.over) return;
  b.over = true;
  b.gw.respond(x, {
    status: 408,
    code: ERR.invalidRequest,
    message: `request body not received within ${ms / 1000} s`,
    outcome: "invalid",
    closeConnection: true,
  });
  setImmediate(() => x.req.destroy());
}

function parseBody(gw: Front, x: Exchange): Stop | undefined {
  const t = performance.now();
  let msg: unknown;
  try {
    msg = JSON.parse(x.body!.toString("utf8"));
  } catch {
    x.t = gw.metrics.phase("parse", t);
    return { status: 400, code: ERR.parse, message: "parse error: the body is not valid JSON", outcome: "invalid" };
  }
  const problem = shapeProblem(msg);
  x.t = gw.metrics.phase("parse", t);
  if (problem) return stop.invalid(`invalid request: ${problem}`);
  const m = msg as JsonRpcMessage;
  x.msg = m;
  x.method = m.method ?? "response";
  // A request method without an id is not a notification the server may ignore: it would run
  // unauthorized and unlimited (initialize this way opens a session per message). Refused.
  if (m.method !== undefined && m.id === undefined && !m.method.startsWith("notifications/"))
    return stop.invalid(`invalid request: "${m.method.slice(0, 64)}" is a request and needs an "id"`);
  return undefined;
}

// ---------------------------------------------------------------- era

/** The x-mcp-header declarations of a tool definition, computed once per definition. */
const DECLS = new WeakMap<ToolEntry, ParamHeader[]>();

function era(gw: Front, x: Exchange): Step {
  if (x.route !== "mcp") return undefined; // the older HTTP+SSE transport: 2024-11-05 sessions
  const d = x.msg ? classify(x.msg, x.req.headers, gw.protocolVersions) : classifyBodyless(x.req.headers, gw.protocolVersions);
  if ("status" in d) return d;
  x.era = d.era;
  x.protocolVersion = d.version;
  if (d.offer !== undefined) {
    // 2025 negotiation for a version outside the allowlist: the server is asked for one inside it,
    // and answers with that (the body is rewritten, so the server acts on what was checked).
    x.msg = { ...x.msg!, params: { ...x.msg!.params, protocolVersion: d.offer } };
    x.body = Buffer.from(JSON.stringify(x.msg));
  }
  const m = x.msg;
  if (d.era !== "modern" || m?.method !== "tools/call" || typeof m.params?.name !== "string") return undefined;
  // Mcp-Param-* headers mirror the arguments the tool's schema marks with x-mcp-header.
  const name = m.params.name;
  const check = (e: ToolEntry | undefined): Stop | undefined => {
    if (!e) return undefined; // unknown tool: the policy stage refuses it
    let decls = DECLS.get(e);
    if (!decls) {
      decls = paramHeaders(e.tool.inputSchema);
      DECLS.set(e, decls);
    }
    return decls.length === 0 ? undefined : paramHeaderProblem(decls, m.params?.arguments, x.req.headers);
  };
  const known = gw.catalog.get(name);
  return known ? check(known) : gw.catalog.ensure(name).then(check);
}

// ---------------------------------------------------------------- session

function session(gw: Front, x: Exchange): Step {
  const id = x.identity!;
  if (x.route === "sse") return undefined; // the stream opens its session in forward
  // 2026-07-28 has no sessions: an Mcp-Session-Id header is ignored (and not forwarded).
  if (x.era === "modern") return undefined;
  if (x.route === "messages") {
    const sid = new URL(x.req.url ?? "/", "http://x").searchParams.get("sessionId") ?? "";
    x.sessionId = sid;
    const s = gw.sessions.resolve(sid, id, "sse");
    if (s?.kind !== "hosted") return stop.notFound();
    x.hosted = s;
    return reserveId(gw, x);
  }
  const sid = x.req.headers["mcp-session-id"];
  if (typeof sid === "string") {
    x.sessionId = sid;
    // Unknown and foreign sessions get the same answer, so session ids cannot be probed.
    const s = gw.sessions.resolve(sid, id, "streamable-http");
    if (!s) return stop.notFound();
    if (s.kind === "hosted") x.hosted = s;
    else x.bound = s;
    return reserveId(gw, x);
  }
  if (x.req.method !== "POST") return stop.invalid("missing Mcp-Session-Id header");
  if (x.msg!.method === "initialize") return undefined; // opened in forward, once the request passed its checks
  if (gw.proxy?.stateless) return undefined;
  return stop.invalid("missing Mcp-Session-Id header (initialize first)");
}

/** Two requests in flight with the same id would get each other's answers: the second is refused. */
function reserveId(gw: Front, x: Exchange): Stop | undefined {
  const m = x.msg;
  if (!m || m.method === undefined || m.id === undefined) return undefined;
  const key = JSON.stringify(m.id);
  if (gw.sessions.reserve(x, key)) return undefined;
  return stop.invalid(`invalid request: request id ${key.slice(0, 64)} is already in flight in this session`);
}

// ---------------------------------------------------------------- policy

function policy(gw: Front, x: Exchange): Step {
  const m = x.msg;
  if (!m) return undefined; // GET, DELETE, the older transport's stream
  const id = x.identity!;
  if (m.method === undefined || m.id === undefined) {
    // Notifications and the client's answers to server requests: nothing to authorize, but every
    // message costs: they draw from a budget of their own (a flood of them is refused, not forwarded).
    const l = gw.config.limits;
    const n = l.notifications ?? { requestsPerMinute: l.perClient.requestsPerMinute, burst: l.perClient.burst };
    const t = gw.limiter.take(`n:${id.key}`, n.requestsPerMinute, n.burst);
    const ok = (r: { ok: boolean; retryAfter: number }): Stop | undefined => {
      if (r.ok) {
        x.checked = { timeoutMs: gw.policy.timeoutMs(undefined) };
        return undefined;
      }
      gw.metrics.rateLimited.inc({ scope: "notifications" });
      return {
        status: 429,
        code: ERR.rateLimited,
        message: `notification rate limit exceeded for this client; retry after ${r.retryAfter} s`,
        outcome: "rate-limited",
        headers: { "retry-after": String(r.retryAfter) },
      };
    };
    return t instanceof Promise ? t.then(ok) : ok(t);
  }
  if (m.method === "tools/call" && typeof m.params?.name === "string") {
    x.tool = m.params.name;
    x.args = m.params.arguments;
  }
  let r: ReturnType<Front["policy"]["check"]>;
  try {
    r = gw.policy.check(id, m.method, m.params, gw.facts(x));
  } catch {
    return stop.internal();
  }
  return r instanceof Promise ? r.then((c) => checked(gw, x, c)) : checked(gw, x, r);
}

function checked(gw: Front, x: Exchange, r: Refusal | Checked): Stop | undefined {
  x.t = gw.metrics.phase(x.msg!.method === "tools/call" ? "validate" : "policy", x.t);
  if ("status" in r) {
    if (r.outcome === "rate-limited") gw.metrics.rateLimited.inc({ scope: r.scope });
    else gw.metrics.denied.inc({ kind: r.scope });
    const headers: OutgoingHttpHeaders = {};
    if (r.retryAfter !== undefined) headers["retry-after"] = String(r.retryAfter);
    // issue 13: a valid token lacking scopes gets 403 + every scope the operation needs (RFC 6750 3.1, MCP step-up).
    if (r.scopes) headers["www-authenticate"] = insufficientScopeChallenge(`${gw.publicOrigin}${gw.metadataPath}`, r.scopes, r.message);
    x.rule = r.rule;
    return { status: r.status, code: r.code, message: r.message, outcome: r.outcome, headers, reason: r.outcome === "rate-limited" ? undefined : r.message };
  }
  x.checked = r;
  x.tool = r.tool;
  x.args = r.args;
  gw.startSpan(x);
  return undefined;
}

// ---------------------------------------------------------------- forward

function forward(gw: Front, x: Exchange): Step {
  // issue 13: the signed identity must exist before a session's upstream opens (a stdio process gets it at spawn).
  if (x.route === "sse") {
    const minting = gw.prepareIdentity(x);
    return minting ? minting.then(() => (x.done ? HANDLED : openLegacyStream(gw, x))) : openLegacyStream(gw, x);
  }
  if (x.req.method !== "POST") {
    if (x.hosted) return hostedStream(gw, x, x.hosted);
    gw.proxy!.stream(x);
    return HANDLED;
  }
  // issue 13: the signed identity that goes upstream with the request must exist before it is sent.
  const minting = gw.prepareIdentity(x);
  return minting ? minting.then(() => (x.done ? HANDLED : forwardPost(gw, x))) : forwardPost(gw, x);
}

function forwardPost(gw: Front, x: Exchange): Step {
  if (x.route === "messages") return legacyPost(gw, x, x.hosted!);
  if (x.era === "modern") return gw.forwardModern(x);
  if (gw.proxy) {
    gw.proxy.post(x);
    return HANDLED;
  }
  return hostedPost(gw, x);
}

/** Streamable HTTP client, gateway-held session: the answer to the POST is the matching response, as JSON. */
function hostedPost(gw: Front, x: Exchange): Step {
  const m = x.msg!;
  let h = x.hosted;
  if (!h) {
    // initialize without a session (checked in session): the gateway opens one upstream.
    h = gw.sessions.host(x.identity!, false, x.source);
    if (!h) return stop.noCapacity();
    x.hosted = h;
    x.sessionId = h.id;
  }
  if (m.method === undefined || m.id === undefined) {
    h.notify(m);
    x.res.writeHead(202).end();
    gw.finish(x, "ok", 202);
    return HANDLED;
  }
  h.request(x, x.checked!.timeoutMs);
  return HANDLED;
}

function hostedStream(gw: Front, x: Exchange, h: HostedSession): Step {
  if (x.req.method === "DELETE") {
    gw.sessions.drop(h.id, "client-closed", "session deleted");
    x.res.writeHead(200).end();
    gw.finish(x, "ok", 200);
    return HANDLED;
  }
  if (h.stream) return stop.invalid("a stream is already open for this session", 409);
  const res = x.res;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "mcp-session-id": h.id });
  res.flushHeaders();
  h.stream = res;
  res.on("close", () => {
    if (h.stream === res) h.stream = undefined;
  });
  gw.finish(x, "ok", 200);
  return HANDLED;
}

// ---------------------------------------------------------------- replica (issue 16)

/** Another replica's session: relayed to it (affinity.ts), before this replica admits or checks anything. */
function replica(gw: Front, x: Exchange): Step {
  return gw.affinity?.stage(gw, x);
}

// ---------------------------------------------------------------- the runner

export const STAGES: readonly Stage[] = [route, originAndHost, authenticate, replica, admit, parse, era, session, policy, forward];
const AFTER_PARSE = STAGES.indexOf(parse) + 1;

/** Runs the stages from `from` on; synchronous until a stage has to wait. */
export function run(gw: Front, x: Exchange, from = 0): void {
  for (let i = from; i < STAGES.length; i++) {
    let step: Step;
    try {
      step = STAGES[i]!(gw, x);
    } catch {
      step = stop.internal();
    }
    if (step === undefined) continue;
    if (step === HANDLED) return;
    if (step instanceof Promise) {
      step.then(
        (s) => {
          if (x.done || s === HANDLED) return;
          if (s === undefined) run(gw, x, i + 1);
          else gw.respond(x, s);
        },
        () => gw.respond(x, stop.internal()),
      );
      return;
    }
    gw.respond(x, step);
    return;
  }
}
