// The reverse proxy to a streamable-HTTP upstream (the fast path): the upstream holds the MCP session,
// the gateway forwards each checked message over undici's connection pool, filters list answers, strips
// internals from errors, and binds the session id the upstream issues to the client that asked.
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { PassThrough } from "node:stream";
import { type Dispatcher, Pool } from "undici";
import { type AuditResult, auditResultOf, auditResultOfBytes, resultTap } from "./audit.ts";
import type { Cleanup, Core, Exchange } from "./exchange.ts";
import { Deadlines } from "./inflight.ts";
import { ERR, errorBody, type JsonRpcId } from "./jsonrpc.ts";
import { errorKind, log } from "./log.ts";
import { CACHEABLE } from "./modern.ts";
import { LIST_METHODS } from "./policy.ts";
import { ERROR_KEY, bytesMayHoldKey, eventMayBeError, firstEventEnd, lastEventEnd, sanitizeBody, sanitizeRaw, topLevelHasKey } from "./sanitize.ts";
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

/**
 * A JSON (not SSE) answer off the fast path (a GET or DELETE answered without a stream, a 2026 listen
 * answered at once), read whole so the sanitizer sees all of it, then sent in one write; past
 * MAX_ERROR_ANSWER it is cut off (these answers are empty or a few hundred bytes).
 */
function relayWhole(ur: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, done: (ok: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  ur.on("data", (c: Buffer) => {
    size += c.length;
    if (size <= MAX_ERROR_ANSWER) chunks.push(c);
    else ur.destroy();
  });
  ur.on("close", () => {
    if (res.writableEnded) return;
    if (!ur.complete || size > MAX_ERROR_ANSWER) {
      res.destroy();
      return done(false);
    }
    const data = sanitizeBody(Buffer.concat(chunks), false);
    res.writeHead(status, { ...headers, "content-length": data.length }).end(data);
    done(true);
  });
}

function copyHeaders(up: IncomingHttpHeaders, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { ...extra };
  for (const k of HOP_HEADERS) {
    const v = up[k];
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
 * forwardedHeaders() for a 2025 POST (the hot path), as one object literal of one shape: the FORWARDED
 * names the client did not send stay undefined, which undici skips. The caller's identity headers are
 * set last (their names are never ones the client's request forwards: RESERVED_HEADERS).
 */
function sessionHeaders(h: IncomingHttpHeaders, identity: Record<string, string>): Record<string, string> {
  const out = {
    "content-type": "application/json",
    accept: h.accept,
    "mcp-session-id": h["mcp-session-id"],
    "mcp-protocol-version": h["mcp-protocol-version"],
    "last-event-id": h["last-event-id"],
    "mcp-method": h["mcp-method"],
    "mcp-name": h["mcp-name"],
  } as Record<string, string>;
  for (const k in identity) out[k] = identity[k]!;
  return out;
}

/**
 * The answer for an upstream HTTP error: the upstream's own JSON-RPC error (sanitized) and status for
 * client errors; 404 means the session is gone; anything else is a 502 that names no internals.
 */
function upstreamRefusal(
  status: number,
  body: string,
  id: JsonRpcId | undefined,
  headers: IncomingHttpHeaders,
  modern = false,
): { status: number; body: string; headers: OutgoingHttpHeaders; outcome: string } {
  if (status === 404 && !modern) return { status, body: errorBody(id, ERR.invalidRequest, "session not found"), headers: {}, outcome: "upstream-error" };
  // (2026: a 404 is the server's "method not found"; passed on below like the other client errors.)
  if (!CLIENT_ERRORS.has(status) && !(modern && status === 404))
    return { status: 502, body: errorBody(id, modern ? ERR.internal : ERR.upstream, "upstream error"), headers: {}, outcome: "upstream-error" };
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
    if (size < MAX_ERROR_BODY) chunks.push(c);
    size += c.length;
  });
  ur.on("end", () => done(size > MAX_ERROR_BODY ? "" : Buffer.concat(chunks).toString("utf8")));
  ur.on("error", () => done(""));
}

const EVENT_END = Buffer.from("\n\n");

/** Error bodies are read up to this size (the upstream's error answers are small; a huge one is cut). */
const MAX_ERROR_BODY = 65536;
/** JSON answers up to this size are held and sent with the headers in one write (content-length, no chunking); longer ones stream. */
const HOLD_BYTES = 64 * 1024;
/**
 * An answer (or SSE event) that is a JSON-RPC error is held whole, however long, so the sanitizer sees
 * all of it (a stack trace cut across two reads passed it before); past this size it is refused instead.
 */
const MAX_ERROR_ANSWER = 1024 * 1024;

/**
 * What a Forward does with the answer's bytes:
 * - hold: a JSON answer, held until it ends (or passes HOLD_BYTES, then streamed as it comes);
 * - stream: a JSON answer being streamed to the client (it passed HOLD_BYTES);
 * - list: a list answer in JSON, read whole, filtered for the client, then sent;
 * - sse: an SSE answer to a list request, through the stream pipeline (each event's list filtered);
 * - events: any other SSE answer: complete events sanitized and passed on, written once per event-loop
 *   turn (the whole answer in one write when it ends within the turn it started);
 * - refused: an HTTP error of the upstream, its body read (bounded) for the refusal.
 */
type Mode = "hold" | "stream" | "list" | "sse" | "events" | "refused";

/**
 * One checked POST on its way to the upstream and its answer on the way back, as an undici dispatch
 * handler: the common answer (a JSON tools/call result) is collected and written to the client in one
 * write with its headers, and nothing per request is a closure or a promise. It also stands for the
 * upstream request on the exchange (x.upstreamReq): destroy() aborts it.
 */
class Forward implements Dispatcher.DispatchHandler {
  readonly #p: UpstreamProxy;
  readonly #x: Exchange;
  readonly #tUp = performance.now();
  #controller: Dispatcher.DispatchController | undefined;
  destroyed = false;
  #mode: Mode = "hold";
  #status = 0;
  #upHeaders: IncomingHttpHeaders = {};
  #headers: OutgoingHttpHeaders = {};
  #chunks: Buffer[] = [];
  #size = 0;
  #tap: ReturnType<typeof resultTap> | undefined;
  #pipe: PassThrough | undefined;
  #started = false;
  /** hold: the answer is a JSON-RPC error longer than HOLD_BYTES, held whole for the sanitizer. */
  #errorHeld = false;
  /** events: bytes of the event still arriving (not passed on yet), and whether it was let through as it comes. */
  #partial: Buffer | undefined;
  #passing = false;
  /** events: the bytes ready for the client, written by #flush. */
  #out: Buffer[] = [];
  #flushScheduled = false;

  constructor(p: UpstreamProxy, x: Exchange) {
    this.#p = p;
    this.#x = x;
  }

  /** The exchange ended without its answer (timeout, client gone, shutdown): the upstream request is aborted. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#controller?.abort(new Error("the exchange ended"));
    this.#pipe?.destroy();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.destroyed) controller.abort(new Error("the exchange ended"));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    const x = this.#x;
    if (x.done) return void controller.abort(new Error("the exchange ended"));
    this.#started = true;
    this.#status = status;
    this.#upHeaders = headers;
    const core = this.#p.core;
    if (status >= 400) {
      this.#mode = "refused";
      this.#p.disarm(x);
      if (status === 404 && x.sessionId !== undefined) core.sessions.forget(x.sessionId);
      return;
    }
    const msg = x.msg!;
    const modern = x.era === "modern";
    // (A 2026 request named "initialize" is not the handshake: it says nothing about the upstream's sessions.)
    if (msg.method === "initialize" && !modern) {
      const sid = headers["mcp-session-id"];
      if (typeof sid === "string") core.sessions.bind(sid, x.identity!);
      else this.#p.stateless = true;
    }
    const ct = String(headers["content-type"] ?? "");
    x.sse = ct.includes("text/event-stream");
    this.#headers = copyHeaders(headers);
    // Answers the gateway rewrites: lists (filtered per client), and in 2026 every cacheable result (cacheScope "private").
    const isList = msg.id !== undefined && msg.method !== undefined && (LIST_METHODS.has(msg.method) || (modern && CACHEABLE.has(msg.method)));
    // issue 14: the audit line says how the request was answered (status, sanitized error): SSE answers
    // are read by the tap as they pass; held answers from their held bytes at the end.
    if (x.sse) this.#tap = resultTap();
    if (x.sse && !isList) this.#mode = "events";
    else if (x.sse) {
      this.#mode = "sse";
      const pipe = new PassThrough();
      this.#pipe = pipe;
      pipe.on("drain", () => this.#controller?.resume());
      const src = isList ? pipe.pipe(new SseRewriter((d) => core.filter(x.identity!, msg.method, d, x.source, modern))) : pipe;
      coalesce(src, x.res, status, this.#headers);
      src.on("end", () => this.#answered());
    } else this.#mode = isList && ct.includes("application/json") ? "list" : "hold";
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const x = this.#x;
    if (x.done && this.#mode !== "refused") return;
    switch (this.#mode) {
      case "refused":
        if (this.#size < MAX_ERROR_BODY) this.#chunks.push(chunk);
        this.#size += chunk.length;
        return;
      case "sse":
        this.#tap!.push(chunk);
        if (!this.#pipe!.write(chunk)) controller.pause();
        return;
      case "events":
        this.#tap!.push(chunk);
        this.#events(chunk);
        return;
      case "stream":
        // Decided at HOLD_BYTES: not an error, so the rest passes as it comes.
        this.#tap!.push(chunk);
        if (!x.res.write(chunk)) {
          controller.pause();
          x.res.once("drain", () => controller.resume());
        }
        return;
      default:
        // (Held answers are audited from the held bytes at their end: no second copy in the tap.)
        this.#chunks.push(chunk);
        this.#size += chunk.length;
        if (this.#mode !== "hold" || this.#size <= HOLD_BYTES) return;
        if (this.#errorHeld) {
          if (this.#size > MAX_ERROR_ANSWER) this.#tooLarge();
          return;
        }
        {
          // A long answer. An error is held whole for the sanitizer (JSON-RPC puts the key first, so its
          // first 64 KiB say); anything else streams from here on, so the gateway never holds it whole.
          const head = this.#take();
          if (bytesMayHoldKey(head, ERROR_KEY) && topLevelHasKey(head.toString("utf8"), "error")) {
            this.#errorHeld = true;
            this.#chunks.push(head);
            this.#size = head.length;
            return;
          }
          this.#mode = "stream";
          this.#tap = resultTap();
          this.#tap.push(head);
          x.res.writeHead(this.#status, this.#headers);
          if (!x.res.write(head)) {
            controller.pause();
            x.res.once("drain", () => controller.resume());
          }
        }
    }
  }

  /**
   * An SSE answer's bytes: complete events are sanitized and queued for the client; the event still
   * arriving waits for its end (an error event split across reads is sanitized whole). An event past
   * HOLD_BYTES that is not an error passes as it comes; an error event is held up to MAX_ERROR_ANSWER.
   */
  #events(chunk: Buffer): void {
    let buf = this.#partial ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = undefined;
    for (;;) {
      if (this.#passing) {
        const end = firstEventEnd(buf);
        if (end === 0) {
          // Keep the last byte: it may be the first half of the boundary that ends this event.
          this.#queue(buf.subarray(0, buf.length - 1));
          this.#partial = buf.subarray(buf.length - 1);
          break;
        }
        this.#queue(buf.subarray(0, end));
        this.#passing = false;
        buf = buf.subarray(end);
        continue;
      }
      const end = lastEventEnd(buf);
      if (end > 0) this.#queue(sanitizeBody(buf.subarray(0, end), true));
      const rest = end > 0 ? buf.subarray(end) : buf;
      if (rest.length <= HOLD_BYTES) {
        if (rest.length > 0) this.#partial = rest;
        break;
      }
      if (!eventMayBeError(rest)) {
        this.#passing = true;
        buf = rest;
        continue;
      }
      if (rest.length > MAX_ERROR_ANSWER) {
        this.#tooLarge();
        return;
      }
      this.#partial = rest;
      break;
    }
    if (this.#out.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(Forward.#flushLater, this);
    }
  }

  #queue(b: Buffer): void {
    if (b.length > 0) this.#out.push(b);
  }

  static #flushLater(f: Forward): void {
    f.#flush();
  }

  /** events: what is ready goes to the client (the first time with the headers). */
  #flush(): void {
    this.#flushScheduled = false;
    const res = this.#x.res;
    if (this.#x.done || res.writableEnded || this.#out.length === 0) return;
    if (!res.headersSent) res.writeHead(this.#status, this.#headers);
    const data = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out);
    this.#out = [];
    if (!res.write(data)) {
      this.#controller?.pause();
      res.once("drain", () => this.#controller?.resume());
    }
  }

  /** An error answer too long to sanitize: the upstream request is aborted and the client gets a clean error. */
  #tooLarge(): void {
    const x = this.#x;
    // Finished first (the cleanup aborts the upstream request), so the abort's error finds it done.
    if (x.res.headersSent) {
      x.res.destroy();
      this.#p.core.finish(x, "upstream-error", 502, "upstream error answer too large to sanitize");
    } else
      this.#p.core.respond(x, {
        status: 502,
        code: x.era === "modern" ? ERR.internal : ERR.upstream,
        message: "upstream error",
        outcome: "upstream-error",
        reason: "upstream error answer too large to sanitize",
      });
    this.destroy();
  }

  #take(): Buffer {
    const c = this.#chunks;
    this.#chunks = [];
    this.#size = 0;
    return c.length === 1 ? c[0]! : Buffer.concat(c);
  }

  onResponseEnd(): void {
    const x = this.#x;
    const res = x.res;
    switch (this.#mode) {
      case "refused": {
        const text = this.#size > MAX_ERROR_BODY ? "" : this.#take().toString("utf8");
        this.#p.refusedWith(x, this.#status, text, this.#upHeaders);
        return;
      }
      case "sse":
        this.#pipe!.end();
        return;
      case "events": {
        if (x.done) return;
        // The last event may lack its blank line: it is sanitized as a whole event all the same.
        const rest = this.#partial;
        this.#partial = undefined;
        if (rest && rest.length > 0) this.#queue(this.#passing ? rest : sanitizeBody(Buffer.concat([rest, EVENT_END]), true));
        const data = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out);
        this.#out = [];
        if (res.headersSent) res.end(data);
        else {
          // The whole answer arrived within one turn: headers and body in one write, with its length.
          this.#headers["content-length"] = data.length;
          res.writeHead(this.#status, this.#headers).end(data);
        }
        this.#answered();
        return;
      }
      case "stream":
        if (x.done) return;
        res.end();
        this.#answered();
        return;
      case "list": {
        if (x.done) return;
        const body = this.#take();
        const out = this.#p.core.filter(x.identity!, x.msg!.method, body.toString("utf8"), x.source, x.era === "modern");
        this.#headers["content-length"] = Buffer.byteLength(out);
        res.writeHead(this.#status, this.#headers).end(out);
        // Audited from the upstream's answer (a list result is "ok" whatever the client may see of it).
        this.#answered(auditResultOfBytes(body, false, x.msg!.id));
        return;
      }
      default: {
        if (x.done) return;
        // The whole answer, headers and body, in one write with its length. The common answer holds
        // no error key (nor an escape that could spell one): neither sanitized nor parsed for the audit.
        const body = this.#take();
        const plain = !bytesMayHoldKey(body, ERROR_KEY);
        const data = plain ? body : sanitizeBody(body, false);
        this.#headers["content-length"] = data.length;
        res.writeHead(this.#status, this.#headers).end(data);
        this.#answered(x.msg!.id === undefined ? undefined : auditResultOfBytes(body, false, x.msg!.id, plain));
        return;
      }
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const x = this.#x;
    this.#pipe?.destroy();
    if (x.done) return;
    const core = this.#p.core;
    if (this.#started) {
      // The upstream went away mid-answer: the client's answer cannot complete either.
      x.res.destroy();
      core.finish(x, "upstream-error", 502, "upstream closed mid-answer");
      return;
    }
    log("warn", "upstream request failed", { error: errorKind(err) });
    core.respond(x, { status: 502, code: ERR.upstream, message: "upstream unavailable", outcome: "upstream-error", reason: errorKind(err) });
  }

  /** `held`: the audit result of an answer held whole (the others are read by the tap as they pass). */
  #answered(held?: AuditResult): void {
    const x = this.#x;
    const core = this.#p.core;
    core.metrics.phase("upstream", this.#tUp);
    if (x.done) return;
    if (x.msg!.id !== undefined) x.result = held ?? this.#tap?.result(x.sse, x.msg!.id);
    core.finish(x, "ok", this.#status);
  }
}

/** How often the deadlines of the requests in flight are checked (timeouts are whole seconds: at most this late). */
const DEADLINE_SWEEP_MS = 100;

export class UpstreamProxy {
  readonly #core: Core;
  readonly #url: URL;
  readonly #agent: http.Agent;
  /** Runs from finish(): drops the deadline, frees the request id, and stops the upstream work of an exchange that ended without its answer. */
  readonly #cleanup: Cleanup = (x, outcome) => {
    this.#deadlines.disarm(x);
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

  /**
   * POSTs go through undici's pool: its dispatch API takes one handler object per request (no
   * ClientRequest, no listeners, no promise), and it writes the request's headers and body at once.
   * Its own timeouts are off: the gateway's per-tool timeouts apply, and an SSE answer may be quiet
   * for long. GET streams, DELETE and cancellations stay on node:http (rare, and a GET holds its socket).
   */
  readonly #pool: Pool;
  readonly #path: string;

  constructor(core: Core, url: URL, agent: http.Agent) {
    this.#core = core;
    this.#url = url;
    this.#agent = agent;
    this.#path = url.pathname + url.search;
    this.#pool = new Pool(url.origin, { connections: 256, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
  }

  get core(): Core {
    return this.#core;
  }

  /** Requests in flight upstream and their deadlines. */
  readonly #deadlines = new Deadlines<Exchange>(DEADLINE_SWEEP_MS, (x) => this.timeout(x, x.checked!.timeoutMs));

  #arm(x: Exchange): void {
    this.#deadlines.arm(x, performance.now() + x.checked!.timeoutMs);
  }

  /** The exchange's answer has started (or it ended): its timeout no longer applies. */
  disarm(x: Exchange): void {
    this.#deadlines.disarm(x);
  }

  /** Closes the pool's connections and stops the deadline sweep (the gateway is shutting down). */
  close(): Promise<void> {
    this.#deadlines.close();
    return this.#pool.destroy();
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
    const msg = x.msg!;
    // issue 13: the caller's verified identity for the server (headers the client sent under those names are not forwarded).
    const modern = x.era === "modern";
    // issue 11: a subscriptions/listen stream lives as long as the client keeps it (no request timeout);
    // it stays on node:http, like the GET streams, since it holds its connection.
    if (modern && msg.method === "subscriptions/listen") {
      this.#listen(x);
      return;
    }
    const headers = modern
      ? (forwardedHeaders(x.req, { ...this.#core.identityHeaders(x), "content-type": "application/json" }, true) as Record<string, string>)
      : sessionHeaders(x.req.headers, this.#core.identityHeaders(x));
    const fwd = new Forward(this, x);
    x.upstreamReq = fwd;
    x.cleanup = this.#cleanup;
    if (msg.id !== undefined && msg.method !== undefined) this.#arm(x);
    this.#pool.dispatch({ path: this.#path, method: "POST", headers, body: x.body! }, fwd);
  }

  /**
   * issue 11: subscriptions/listen to a 2026 upstream. The stream's notifications are filtered per
   * client (a resource update only for a URI it may read, list changes only of kinds it may see); the
   * exchange is finished (slot released, audited) once the stream is open, like a 2025 GET stream.
   */
  #listen(x: Exchange): void {
    const core = this.#core;
    const res = x.res;
    const body = x.body!;
    const up = this.#request(
      "POST",
      forwardedHeaders(x.req, { ...core.identityHeaders(x), "content-type": "application/json", "content-length": body.length }, true),
      false,
    );
    x.upstreamReq = up;
    x.cleanup = this.#cleanup;
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
        // Answered at once (e.g. an error as JSON): an ordinary answer, sanitized whole.
        relayWhole(ur, res, status, copyHeaders(ur.headers), (ok) =>
          ok ? core.finish(x, "ok", status) : core.finish(x, "upstream-error", 502, "upstream answer cut off"),
        );
        return;
      }
      res.writeHead(status, copyHeaders(ur.headers, { "x-accel-buffering": "no" }));
      ur.pipe(new SseRewriter((d) => core.notificationFor(x.identity!, x.source, d))).pipe(res);
      res.flushHeaders();
      core.finish(x, "ok", status);
    });
    up.end(body);
  }

  /** Answers an upstream HTTP error (its body read, bounded) and finishes the exchange. */
  refusedWith(x: Exchange, status: number, text: string, headers: IncomingHttpHeaders): void {
    if (x.done) return;
    const r = upstreamRefusal(status, text, x.msg?.id, headers, x.era === "modern");
    x.result = auditResultOf(r.body, false, x.msg?.id);
    if (!x.res.headersSent) x.res.writeHead(r.status, { "content-type": "application/json", ...r.headers }).end(r.body);
    this.#core.finish(x, r.outcome, r.status, `upstream ${status}`);
  }

  #refused(x: Exchange, ur: IncomingMessage, status: number): void {
    this.disarm(x);
    if (status === 404 && x.sessionId !== undefined) this.#core.sessions.forget(x.sessionId);
    readSmall(ur, (text) => this.refusedWith(x, status, text, ur.headers));
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
    const r = this.#request(
      "POST",
      forwardedHeaders(req, { "content-type": "application/json", "content-length": body.length, accept: "application/json, text/event-stream" }),
    );
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
      const ct = String(ur.headers["content-type"] ?? "");
      if (ct.includes("text/event-stream")) {
        res.writeHead(status, copyHeaders(ur.headers));
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
        relayWhole(ur, res, status, copyHeaders(ur.headers), (ok) =>
          ok ? core.finish(x, "ok", status) : core.finish(x, "upstream-error", 502, "upstream answer cut off"),
        );
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
