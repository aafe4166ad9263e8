// Message channels to the upstream MCP server, for the cases where the gateway itself holds the MCP
// session: a stdio server behind the bridge (newline-delimited JSON over TCP), an upstream on the older
// HTTP+SSE transport, and (for clients on the older transport, and for the gateway's own tools/list)
// a streamable-HTTP upstream driven as a client. One channel = one upstream MCP session.
import http from "node:http";
import net from "node:net";
import type { GatewayConfig } from "../../contract/gateway-config.ts";
import { ERR } from "./jsonrpc.ts";
import { errorKind, log } from "./log.ts";
import { mayHoldKey } from "./sanitize.ts";
import { parseEvent } from "./sse.ts";

/** The caller's identity for the server (authz/identity.ts): HTTP headers of the request carrying a message. */
export type IdentityHeaders = Readonly<Record<string, string>>;

export interface Channel {
  /**
   * Sends one serialized JSON-RPC message. `identity` goes with it as headers where the upstream is
   * reached over HTTP (a stdio server behind the bridge has no headers to carry it).
   */
  send(message: string, identity?: IdentityHeaders): void;
  onmessage: (message: string) => void;
  onclose: () => void;
  close(): void;
}

/** Newline-delimited JSON-RPC over a TCP connection to the stdio bridge (one child process per connection). */
export class TcpChannel implements Channel {
  onmessage: (message: string) => void = () => undefined;
  onclose: () => void = () => undefined;
  readonly #sock: net.Socket;
  #buf = "";
  #closed = false;

  /** `preamble`: the caller's identity for the process the bridge spawns (bridge.ts), sent before anything else. */
  constructor(host: string, port: number, preamble?: string) {
    this.#sock = net.connect({ host, port });
    this.#sock.setNoDelay(true);
    if (preamble !== undefined) this.#sock.write(preamble);
    this.#sock.setEncoding("utf8");
    this.#sock.on("data", (d: string) => {
      this.#buf += d;
      let nl = this.#buf.indexOf("\n");
      while (nl >= 0) {
        const line = this.#buf.slice(0, nl).trim();
        this.#buf = this.#buf.slice(nl + 1);
        if (line.length > 0) this.onmessage(line);
        nl = this.#buf.indexOf("\n");
      }
      if (this.#buf.length > 64 * 1024 * 1024) this.#sock.destroy();
    });
    this.#sock.on("error", (e) => log("warn", "stdio bridge connection error", { error: errorKind(e) }));
    this.#sock.on("close", () => this.#end());
  }

  send(message: string): void {
    if (!this.#closed) this.#sock.write(`${message}\n`);
  }

  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose();
  }

  close(): void {
    this.#sock.destroy();
    this.#end();
  }
}

/** Splits an SSE body into events as chunks arrive. */
export function sseEvents(res: http.IncomingMessage, onEvent: (type: string, data: string) => void): void {
  let buf = "";
  res.setEncoding("utf8");
  res.on("data", (d: string) => {
    buf += d;
    const sep = /\r?\n\r?\n|\r\r/g;
    let start = 0;
    let m: RegExpExecArray | null;
    // biome-ignore lint/suspicious/noAssignInExpressions: the usual exec loop
    while ((m = sep.exec(buf)) !== null) {
      const e = parseEvent(buf.slice(start, m.index));
      start = m.index + m[0].length;
      const type =
        e.other
          .find((l) => l.startsWith("event:"))
          ?.slice(6)
          .trim() ?? "message";
      if (e.data !== undefined) onEvent(type, e.data);
    }
    buf = buf.slice(start);
  });
}

/** The older HTTP+SSE transport as a client: GET the SSE stream, POST messages to the `endpoint` it names. */
export class SseUpstreamChannel implements Channel {
  onmessage: (message: string) => void = () => undefined;
  onclose: () => void = () => undefined;
  readonly #agent: http.Agent;
  readonly #url: URL;
  #endpoint: URL | undefined;
  #queue: [string, IdentityHeaders | undefined][] = [];
  #req: http.ClientRequest;
  #closed = false;

  constructor(url: string, agent: http.Agent) {
    this.#url = new URL(url);
    this.#agent = agent;
    this.#req = http.get(this.#url, { agent: false, headers: { accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return this.close();
      }
      sseEvents(res, (type, data) => {
        if (type === "endpoint") {
          const ep = new URL(data, this.#url);
          // The endpoint must stay on the upstream's origin: never POST client messages elsewhere.
          if (ep.origin !== this.#url.origin) return this.close();
          this.#endpoint = ep;
          const q = this.#queue;
          this.#queue = [];
          for (const [m, id] of q) this.#post(m, id);
        } else if (type === "message") this.onmessage(data);
      });
      res.on("close", () => this.close());
    });
    this.#req.on("error", () => this.close());
  }

  send(message: string, identity?: IdentityHeaders): void {
    if (this.#closed) return;
    if (this.#endpoint) this.#post(message, identity);
    else this.#queue.push([message, identity]);
  }

  #post(message: string, identity?: IdentityHeaders): void {
    const body = Buffer.from(message);
    const req = http.request(this.#endpoint!, {
      method: "POST",
      agent: this.#agent,
      headers: { ...identity, "content-type": "application/json", "content-length": body.length },
    });
    req.on("response", (res) => res.resume());
    req.on("error", (e) => log("warn", "sse upstream post failed", { error: errorKind(e) }));
    req.end(body);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#req.destroy();
    this.onclose();
  }
}

/** The id of `message` when it is a JSON-RPC request (an answer is owed), else undefined. */
function requestIdOf(message: string): string | number | undefined {
  try {
    const m = JSON.parse(message) as { id?: unknown; method?: unknown };
    return typeof m.method === "string" && (typeof m.id === "string" || typeof m.id === "number") ? m.id : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `data` (one message from the upstream) is the answer to the request `message`. */
function answersRequest(data: string, message: string): boolean {
  // Cheap test first: an answer has no method; most events (notifications, server requests) do.
  if (!mayHoldKey(data, '"id"') || (!mayHoldKey(data, '"result"') && !mayHoldKey(data, '"error"'))) return false;
  const id = requestIdOf(message);
  if (id === undefined) return false;
  try {
    const m = JSON.parse(data) as { id?: unknown; method?: unknown };
    return m.method === undefined && m.id === id;
  } catch {
    return false;
  }
}

/** The JSON-RPC error the session gets for `message` when the upstream failed to answer it (no internals). */
function upstreamFailure(message: string, why: string): string | undefined {
  const id = requestIdOf(message);
  if (id === undefined) return undefined;
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code: ERR.upstream, message: "upstream unavailable", data: { reason: why } } });
}

/** A streamable-HTTP upstream driven as a client: each message is a POST; answers come back as JSON or SSE. */
export class HttpUpstreamChannel implements Channel {
  onmessage: (message: string) => void = () => undefined;
  onclose: () => void = () => undefined;
  readonly #agent: http.Agent;
  readonly #url: URL;
  #session: string | undefined;
  #protocol: string | undefined;
  #closed = false;
  #chain: Promise<void> = Promise.resolve();
  #get: http.ClientRequest | undefined;

  constructor(url: string, agent: http.Agent) {
    this.#url = new URL(url);
    this.#agent = agent;
  }

  send(message: string, identity?: IdentityHeaders): void {
    if (this.#closed) return;
    // The initialize POST must complete (it assigns the session) before anything else is sent.
    const isInit = message.includes('"initialize"');
    const p = this.#chain.then(() => this.#post(message, identity));
    if (isInit || !this.#session) this.#chain = p.catch(() => undefined);
  }

  #headers(extra: Record<string, string | number>): Record<string, string | number> {
    const h: Record<string, string | number> = { accept: "application/json, text/event-stream", ...extra };
    if (this.#session) h["mcp-session-id"] = this.#session;
    if (this.#protocol) h["mcp-protocol-version"] = this.#protocol;
    return h;
  }

  #post(message: string, identity?: IdentityHeaders): Promise<void> {
    return new Promise((resolve) => {
      const body = Buffer.from(message);
      // A request must get an answer even when the upstream fails (refused, reset, an HTTP error without a
      // JSON-RPC body, a stream that ends without the answer): the session is told at once with a
      // JSON-RPC error instead of waiting out the request timeout. The message is parsed only then.
      let answered = false;
      const deliver = (data: string) => {
        if (!answered && answersRequest(data, message)) answered = true;
        this.#deliver(data);
      };
      const fail = (why: string) => {
        if (!answered && !this.#closed) {
          answered = true;
          const failure = upstreamFailure(message, why);
          if (failure) this.#deliver(failure);
        }
        resolve();
      };
      const req = http.request(this.#url, {
        method: "POST",
        agent: this.#agent,
        headers: this.#headers({ ...identity, "content-type": "application/json", "content-length": body.length }),
      });
      req.on("response", (res) => {
        const sid = res.headers["mcp-session-id"];
        if (typeof sid === "string" && !this.#session) {
          this.#session = sid;
          // Messages sent after this wait until the GET stream is established upstream: a server
          // request sent right after them (elicitation, sampling) goes to that stream, not lost.
          const ready = this.#openGet();
          this.#chain = this.#chain.then(() => ready);
        }
        const ct = String(res.headers["content-type"] ?? "");
        if ((res.statusCode ?? 500) >= 400) {
          if (res.statusCode === 404 && this.#session) {
            res.resume();
            this.close();
            return resolve();
          }
          // An error status may still carry the server's own JSON-RPC error for this request: pass that on.
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = ct.includes("application/json") ? Buffer.concat(chunks).toString("utf8") : "";
            if (text.length > 0 && answersRequest(text, message)) deliver(text);
            fail(`upstream answered HTTP ${res.statusCode}`);
          });
          res.on("error", () => fail("upstream closed mid-answer"));
          return;
        }
        if (ct.includes("text/event-stream")) sseEvents(res, (_t, data) => deliver(data));
        else if (ct.includes("application/json")) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => deliver(Buffer.concat(chunks).toString("utf8")));
        } else res.resume();
        res.on("end", () => fail("upstream sent no answer"));
        res.on("close", () => fail("upstream closed mid-answer"));
      });
      req.on("error", (e) => {
        log("warn", "upstream post failed", { error: errorKind(e) });
        fail("upstream unavailable");
      });
      req.end(body);
    });
  }

  #deliver(data: string): void {
    if (data.length === 0) return;
    // Remember the negotiated protocol version from the initialize result.
    if (!this.#protocol && data.includes('"protocolVersion"')) {
      try {
        const v = (JSON.parse(data) as { result?: { protocolVersion?: unknown } }).result?.protocolVersion;
        if (typeof v === "string") this.#protocol = v;
      } catch {
        // not JSON: passed on as is, the receiver reports it
      }
    }
    this.onmessage(data);
  }

  /** Server-initiated messages (notifications, sampling requests) arrive on the optional GET stream. */
  #openGet(): Promise<void> {
    return new Promise((ready) => {
      const t = setTimeout(ready, 2000); // a server without a GET stream that never answers does not stall the session
      const done = () => {
        clearTimeout(t);
        ready();
      };
      const req = http.get(this.#url, { agent: false, headers: this.#headers({ accept: "text/event-stream" }) }, (res) => {
        done();
        if (res.statusCode !== 200) return void res.resume();
        sseEvents(res, (_t, data) => this.#deliver(data));
      });
      req.on("error", done);
      this.#get = req;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#get?.destroy();
    if (this.#session) {
      const req = http.request(this.#url, { method: "DELETE", agent: this.#agent, headers: this.#headers({}) });
      req.on("response", (r) => r.resume());
      req.on("error", () => undefined);
      req.end();
    }
    this.onclose();
  }
}

/** `preamble`: for a stdio upstream whose bridge sets identity variables, the session's identity line. */
export function openChannel(upstream: GatewayConfig["upstream"], agent: http.Agent, preamble?: string): Channel {
  switch (upstream.transport) {
    case "stdio":
      return new TcpChannel(upstream.bridge.host, upstream.bridge.port, preamble);
    case "sse":
      return new SseUpstreamChannel(upstream.url, agent);
    case "streamable-http":
      return new HttpUpstreamChannel(upstream.url, agent);
  }
}

/**
 * What the gateway's own catalog session declares. Servers may register tools only for clients that
 * can answer elicitation or sampling (or that expose roots); the gateway's clients can, so the
 * catalog must see those tools too, or a first call to one is refused as an unknown tool.
 */
export const CATALOG_CLIENT_CAPABILITIES = { roots: { listChanged: false }, sampling: {}, elicitation: {} };

/** The catalog session's answer to a server request: nothing to offer, said in the spec's terms. */
function answerServerRequest(id: unknown, method: string): Record<string, unknown> {
  switch (method) {
    case "ping":
      return { jsonrpc: "2.0", id, result: {} };
    case "roots/list":
      return { jsonrpc: "2.0", id, result: { roots: [] } };
    case "elicitation/create":
      return { jsonrpc: "2.0", id, result: { action: "decline" } };
    default:
      return { jsonrpc: "2.0", id, error: { code: -32601, message: `${method.slice(0, 64)} is not available to the gateway's catalog session` } };
  }
}

/** A minimal JSON-RPC client over a channel: initialize, then list every page of tools. Used for the catalog. */
export async function listToolsOver(channel: Channel, timeoutMs: number): Promise<unknown[]> {
  let next = 1;
  const pending = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();
  channel.onmessage = (raw) => {
    try {
      const m = JSON.parse(raw) as { id?: unknown; result?: unknown; error?: unknown; method?: string };
      if (typeof m.id === "number" && !m.method) pending.get(m.id)?.(m);
      else if (m.method !== undefined && m.id !== undefined) channel.send(JSON.stringify(answerServerRequest(m.id, m.method)));
    } catch {
      // ignore non-JSON noise
    }
  };
  const call = (method: string, params: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const id = next++;
      const t = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${method} timed out`));
      }, timeoutMs);
      pending.set(id, (m) => {
        clearTimeout(t);
        pending.delete(id);
        if (m.error) reject(new Error(`${method} failed`));
        else resolve(m.result);
      });
      channel.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  const closed = new Promise<never>((_, reject) => {
    channel.onclose = () => reject(new Error("upstream closed the session"));
  });
  closed.catch(() => undefined);
  const run = async () => {
    await call("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: CATALOG_CLIENT_CAPABILITIES,
      clientInfo: { name: "mcp-bastion-gateway", version: "0.1.0" },
    });
    channel.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const tools: unknown[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const r = (await call("tools/list", cursor ? { cursor } : {})) as { tools?: unknown[]; nextCursor?: string };
      tools.push(...(r.tools ?? []));
      if (!r.nextCursor) break;
      cursor = r.nextCursor;
    }
    return tools;
  };
  try {
    return await Promise.race([run(), closed]);
  } finally {
    channel.close();
  }
}
