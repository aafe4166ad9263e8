// The reverse proxy to a streamable-HTTP upstream (the fast path): the upstream holds the MCP session,
// the gateway forwards each checked message over a keep-alive agent, filters list answers, strips
// internals from errors, and binds the session id the upstream issues to the client that asked.
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { auditResultOf, resultTap } from "./audit.ts";
import type { Cleanup, Core, Exchange } from "./exchange.ts";
import { ERR, type JsonRpcId, errorBody } from "./jsonrpc.ts";
import { errorKind, log } from "./log.ts";
import { CACHEABLE } from "./modern.ts";
import { LIST_METHODS } from "./policy.ts";
import { sanitizeBody, sanitizeRaw } from "./sanitize.ts";
import type { BoundSession } from "./sessions.ts";
import { SseRewriter } from "./sse.ts";

const HOP_HEADERS = ["content-type", "mcp-session-id", "mcp-protocol-version", "cache-control"];
/** Headers of the client's request the upstream sees. Never: Authorization, cookies, x-api-key, XFCC. */
const FORWARDED = ["accept", "mcp-session-id", "mcp-protocol-version", "last-event-id", "mcp-method", "mcp-name"];
/**
 * issue 11: what a 2026 request forwards: the request metadata headers (checked against the body by
 * the era stage), the Mcp-Param-* headers the server checks too, no session id, no Last-Event-ID.
 */
const FORWARDED_MODERN = ["accept", "mcp-protocol-version", "mcp-method", "mcp-name"];
/**
 * Upstream refusals that are the client's to fix (bad Accept, unsupported media type, unsupported
 * protocol version...): passed through with their status. Anything else the upstream answers with
 * is the gateway's problem and becomes 502.
 */
const CLIENT_ERRORS = new Set([400, 405, 406, 409, 413, 415, 422, 429]);
/** How long POSTs of a session wait for its GET stream to be established upstream, at most. */
const GATE_MS = 2000;

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

function copyHeaders(up: IncomingMessage, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { ...extra };
  for (const k of HOP_HEADERS) {
    const v = up.headers[k];
    if (v !== undefined) h[k] = v;
  }
  return h;
}

function forwardedHeaders(req: IncomingMessage, extra: OutgoingHttpHeaders, modern = false): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { ...extra };
  for (const k of modern ? FORWARDED_MODERN : FORWARDED) {
    const v = req.headers[k];
    if (v !== undefined) h[k] = v;
  }
  if (modern) for (const k in req.headers) if (k.startsWith("mcp-param-")) h[k] = req.headers[k];
  return h;
}

/**
 * The answer for an upstream HTTP error: the upstream's own JSON-RPC error (sanitized) and status for
 * client errors; 404 means the session is gone; anything else is a 502 that names no internals.
 */
function upstreamRefusal(status: number, body: string, id: JsonRpcId | undefined, headers: IncomingMessage["headers"]): { status: number; body: string; headers: OutgoingHttpHeaders; outcome: string } {
  if (status === 404) return { status, body: errorBody(id, ERR.invalidRequest, "session not found"), headers: {}, outcome: "upstream-error" };
  if (!CLIENT_ERRORS.has(status)) return { status: 502, body: errorBody(id, ERR.upstream, "upstream error"), headers: {}, outcome: "upstream-error" };
  const h: OutgoingHttpHeaders = {};
  if (headers["retry-after"] !== undefined) h["retry-after"] = headers["retry-after"];
  if (status === 405 && headers.allow !== undefined) h.allow = headers.allow;
  let out: string | undefined;
  try {
    const m = JSON.parse(body) as { jsonrpc?: unknown; error?: unknown };
    if (m && typeof m === "object" && m.jsonrpc === "2.0" && m.error && typeof m.error === "object") out = sanitizeRaw(body);
  } catch {
    // not JSON: answered with the gateway's own body below
  }
  out ??= errorBody(id, ERR.invalidRequest, `the MCP server refused the request (HTTP ${status})`);
  return { status, body: out, headers: h, outcome: "upstream-refused" };
}

/** Reads an error body, bounded (the upstream's error answers are small; a huge one is cut). */
function readSmall(ur: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  ur.on("data", (c: Buffer) => {
    if (size < 65536) chunks.push(c);
    size += c.length;
  });
  ur.on("end", () => done(size > 65536 ? "" : Buffer.concat(chunks).toString("utf8")));
  ur.on("error", () => done(""));
}

function onProxyTimeout(p: UpstreamProxy, x: Exchange, ms: number): void {
  x.timer = undefined;
  p.timeout(x, ms);
}

export class UpstreamProxy {
  readonly #core: Core;
  readonly #url: URL;
  readonly #agent: http.Agent;
  /** Runs from finish(): clears the timer, frees the request id, and stops the upstream work of an exchange that ended without its answer. */
  readonly #cleanup: Cleanup = (x, outcome) => {
    if (x.timer) clearTimeout(x.timer);
    x.timer = undefined;
    if (x.idKey !== undefined) x.bound?.inflight.delete(x.idKey);
    const up = x.upstreamReq;
    if (outcome === "ok" || !up) return;
    if (!up.destroyed) up.destroy();
    const id = x.msg?.id;
    const gaveUp = outcome === "timeout" || outcome === "client-closed" || outcome === "shutdown";
    if (gaveUp && id !== undefined && x.msg?.method !== undefined && x.sessionId !== undefined) this.cancel(x.req, id, outcome);
  };
  /** A stateless upstream issues no session id: requests then carry none (each is authorized on its own). */
  stateless = false;

  constructor(core: Core, url: URL, agent: http.Agent) {
    this.#core = core;
    this.#url = url;
    this.#agent = agent;
  }

  #request(method: string, headers: OutgoingHttpHeaders, agent: http.Agent | false = this.#agent) {
    const u = this.#url;
    return http.request({ agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers });
  }

  /** Forwards a checked POST. While the session's GET stream is being opened, it waits for it (keeps the order the client sent). */
  post(x: Exchange): void {
    const gate = x.bound?.gate;
    if (gate) gate.push(x);
    else this.#send(x);
  }

  #send(x: Exchange): void {
    if (x.done) return;
    const core = this.#core;
    const msg = x.msg!;
    const body = x.body!;
    const tUp = process.hrtime.bigint();
    // issue 13: the caller's verified identity for the server (headers the client sent under those names are not forwarded).
    const modern = x.era === "modern";
    const up = this.#request("POST", forwardedHeaders(x.req, { ...core.identityHeaders(x), "content-type": "application/json", "content-length": body.length }, modern));
    x.upstreamReq = up;
    x.cleanup = this.#cleanup;
    const isRequest = msg.id !== undefined && msg.method !== undefined;
    // Answers the gateway rewrites: lists (filtered per client), and in 2026 every cacheable result (cacheScope "private").
    const isList = isRequest && (LIST_METHODS.has(msg.method!) || (modern && CACHEABLE.has(msg.method!)));
    // issue 11: a subscriptions/listen stream lives as long as the client keeps it; it has no request timeout.
    const listen = modern && msg.method === "subscriptions/listen";
    if (listen) {
      this.#listen(x, up, body);
      return;
    }
    if (isRequest) x.timer = setTimeout(onProxyTimeout, x.checked!.timeoutMs, this, x, x.checked!.timeoutMs);
    up.on("error", (e) => {
      if (x.done) return;
      log("warn", "upstream request failed", { error: errorKind(e) });
      core.respond(x, { status: 502, code: ERR.upstream, message: "upstream unavailable", outcome: "upstream-error", reason: errorKind(e) });
    });
    up.on("response", (ur) => {
      if (x.done) return void ur.resume();
      const status = ur.statusCode ?? 502;
      const res = x.res;
      if (status >= 400) return this.#refused(x, ur, status);
      // (A 2026 request named "initialize" is not the handshake: it says nothing about the upstream's sessions.)
      if (msg.method === "initialize" && !modern) {
        const sid = ur.headers["mcp-session-id"];
        if (typeof sid === "string") core.sessions.bind(sid, x.identity!);
        else this.stateless = true;
      }
      const ct = String(ur.headers["content-type"] ?? "");
      x.sse = ct.includes("text/event-stream");
      // issue 14: the audit line says how the request was answered (status, sanitized error), read as it passes.
      const tap = resultTap();
      ur.on("data", tap.push);
      const finish = () => {
        core.metrics.phase("upstream", tUp);
        if (x.done) return;
        if (msg.id !== undefined) x.result = tap.result(x.sse, msg.id);
        core.finish(x, "ok", status);
      };
      ur.on("close", () => {
        // The upstream went away mid-answer: the client's answer cannot complete either.
        if (ur.complete || x.done) return;
        res.destroy();
        core.finish(x, "upstream-error", 502, "upstream closed mid-answer");
      });
      if (isList && ct.includes("application/json")) {
        const chunks: Buffer[] = [];
        ur.on("data", (c: Buffer) => chunks.push(c));
        ur.on("end", () => {
          if (x.done) return;
          const out = core.filter(x.identity!, msg.method, Buffer.concat(chunks).toString("utf8"), x.source, modern);
          res.writeHead(status, copyHeaders(ur, { "content-length": Buffer.byteLength(out) })).end(out);
          finish();
        });
        return;
      }
      const src = isList && x.sse ? ur.pipe(new SseRewriter((d) => core.filter(x.identity!, msg.method, d, x.source, modern))) : ur;
      coalesce(src, res, status, copyHeaders(ur));
      src.on("end", finish);
    });
    up.end(body);
  }

  /**
   * issue 11: subscriptions/listen to a 2026 upstream. The stream's notifications are filtered per
   * client (a resource update only for a URI it may read, list changes only of kinds it may see); the
   * exchange is finished (slot released, audited) once the stream is open, like a 2025 GET stream.
   */
  #listen(x: Exchange, up: http.ClientRequest, body: Buffer): void {
    const core = this.#core;
    const res = x.res;
    res.on("close", () => {
      if (!up.destroyed) up.destroy();
    });
    up.on("error", (e) => {
      if (x.done) return void res.destroy();
      core.respond(x, { status: 502, code: ERR.upstream, message: "upstream unavailable", outcome: "upstream-error", reason: errorKind(e) });
    });
    up.on("response", (ur) => {
      if (x.done) return void ur.destroy();
      const status = ur.statusCode ?? 502;
      if (status >= 400) return this.#refused(x, ur, status);
      const ct = String(ur.headers["content-type"] ?? "");
      if (!ct.includes("text/event-stream")) {
        // Answered at once (e.g. an error as JSON): an ordinary answer.
        coalesce(ur, res, status, copyHeaders(ur));
        ur.on("end", () => core.finish(x, "ok", status));
        return;
      }
      res.writeHead(status, copyHeaders(ur, { "x-accel-buffering": "no" }));
      ur.pipe(new SseRewriter((d) => core.notificationFor(x.identity!, x.source, d))).pipe(res);
      res.flushHeaders();
      core.finish(x, "ok", status);
    });
    up.end(body);
  }

  #refused(x: Exchange, ur: IncomingMessage, status: number): void {
    const core = this.#core;
    if (x.timer) clearTimeout(x.timer);
    x.timer = undefined;
    if (status === 404 && x.sessionId !== undefined) core.sessions.forget(x.sessionId);
    readSmall(ur, (text) => {
      if (x.done) return;
      const r = upstreamRefusal(status, text, x.msg?.id, ur.headers);
      x.result = auditResultOf(r.body, false, x.msg?.id);
      if (!x.res.headersSent) x.res.writeHead(r.status, { "content-type": "application/json", ...r.headers }).end(r.body);
      core.finish(x, r.outcome, r.status, `upstream ${status}`);
    });
  }

  timeout(x: Exchange, ms: number): void {
    if (x.done) return;
    const res = x.res;
    const body = errorBody(x.msg?.id, ERR.timeout, `request timed out after ${Math.round(ms / 1000)} s`);
    if (!res.headersSent) res.writeHead(200, { "content-type": "application/json" }).end(body);
    else if (x.sse) res.end(`event: message\ndata: ${body}\n\n`);
    else res.destroy();
    x.result = { result: "error", error: { code: ERR.timeout, message: `request timed out after ${Math.round(ms / 1000)} s` } };
    this.#core.finish(x, "timeout", 200);
  }

  /** Tells the upstream to stop working on a request the client will no longer get an answer for. */
  cancel(req: IncomingMessage, id: JsonRpcId, reason: string): void {
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason } }));
    const r = this.#request("POST", forwardedHeaders(req, { "content-type": "application/json", "content-length": body.length, accept: "application/json, text/event-stream" }));
    r.on("response", (x) => x.resume());
    r.on("error", () => undefined);
    r.end(body);
  }

  /** Closes a session upstream that the gateway dropped (evicted or idle): the server frees it. */
  closeSession(s: BoundSession): void {
    const r = this.#request("DELETE", { "mcp-session-id": s.id });
    r.on("response", (x) => x.resume());
    r.on("error", () => undefined);
    r.end();
  }

  /** GET (the session's stream of server messages) or DELETE on a bound session. */
  stream(x: Exchange): void {
    const core = this.#core;
    const b = x.bound!;
    const req = x.req;
    const res = x.res;
    const isGet = req.method === "GET";
    // A GET stream lives long: on its own connection, so it never holds one of the agent's sockets.
    const up = this.#request(req.method!, forwardedHeaders(req, {}), isGet ? false : this.#agent);
    if (isGet && !b.gate) {
      b.gate = [];
      setTimeout(openGate, GATE_MS, this, b).unref();
    }
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
    up.on("error", (e) => {
      if (isGet) openGate(this, b);
      core.respond(x, { status: 502, code: ERR.upstream, message: "upstream unavailable", outcome: "upstream-error", reason: errorKind(e) });
    });
    up.on("response", (ur) => {
      const status = ur.statusCode ?? 502;
      if (status >= 400) {
        if (isGet) openGate(this, b);
        return this.#refused(x, ur, status);
      }
      if (!isGet) core.sessions.forget(b.id);
      res.writeHead(status, copyHeaders(ur));
      const ct = String(ur.headers["content-type"] ?? "");
      if (ct.includes("text/event-stream")) {
        // Resumed streams can replay list answers: filter every list-shaped result. A tools/list_changed
        // notification makes the gateway re-read the tool list, so a rug pull is caught without waiting.
        ur.pipe(
          new SseRewriter((d) => {
            if (d.includes("notifications/tools/list_changed")) core.toolsChanged();
            return core.filter(x.identity!, undefined, d);
          }),
        ).pipe(res);
        res.flushHeaders();
        // The upstream registered the stream before answering: messages sent after this go to it.
        if (isGet) openGate(this, b);
        core.finish(x, "ok", status);
      } else {
        if (isGet) openGate(this, b);
        ur.pipe(res);
        ur.on("end", () => core.finish(x, "ok", status));
      }
    });
    up.end();
  }

  /** @internal sends POSTs held while a GET stream was opened. */
  release(held: Exchange[]): void {
    for (const x of held) this.#send(x);
  }
}

function openGate(p: UpstreamProxy, b: BoundSession): void {
  const held = b.gate;
  if (!held) return;
  b.gate = undefined;
  p.release(held);
}

