// Replicas that keep sessions (issue 16): an MCP session lives in one pod (its server process, or the
// server's own session table behind the gateway), but the Service spreads a client's requests over every
// pod. Each gateway therefore puts its pod's address into the session ids it hands out, and a request
// whose session id names another pod is relayed, untouched, to that pod's gateway, which authenticates,
// checks and answers it as if it had come straight from the client.
//
// Why this and not the alternatives: Service `sessionAffinity: ClientIP` pins by source address, so every
// client behind one ingress or NAT lands on one pod (and a pod restart silently loses the pin); shared
// session state cannot hold a stdio process or a streamable-HTTP server's own in-memory session. Encoding
// the owner in the id needs no shared store and no coordination: the owner is whoever the id says.
//
// What an attacker controls is the session id. The address in it is never trusted as such: a request is
// relayed only to an address that is currently a ready endpoint of this server's own headless Service
// (the peers), over the gateway port, at most once (a relayed request is never relayed again). Anything
// else gets the same 404 "session not found" an unknown session gets, so ids cannot be probed, and an
// id naming a pod that is gone tells the client to initialize again (MCP streamable HTTP, session
// management), which is the right recovery.
//
// Session id on the wire: "<8 hex digits of the owning pod's IPv4>.<the id the session really has>".
// Inside the gateway and upstream the id stays what it was (the tag is removed on the way in and added
// on the way out), so nothing else in the gateway knows about replicas.
import dns from "node:dns";
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { isIPv4 } from "node:net";
import type { Core, Exchange, Step } from "./exchange.ts";
import { HANDLED, stop } from "./exchange.ts";
import { log } from "./log.ts";

/** Set on a relayed request: its receiver answers it itself, whatever the session id says. */
export const RELAYED_HEADER = "x-mcp-bastion-relayed-by";
const SESSION_HEADER = "mcp-session-id";
/** Connection-level headers that are not relayed (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]);
/** How long a resolved peer list is used before it is resolved again; a miss re-resolves sooner. */
const PEERS_TTL_MS = 5_000;
const PEERS_RETRY_MS = 1_000;

export interface AffinityConfig {
  /** This pod's IPv4 address (the downward API's status.podIP). */
  self: string;
  /** The gateway port of every replica. */
  port: number;
  /** Resolves the current peers (ready replicas' addresses): the headless Service's A records. */
  peers: () => Promise<string[]>;
}

/** "198.18.0.7" -> "c6120007". */
export function ipTag(ip: string): string {
  return ip
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join("");
}

/** "c6120007" -> "198.18.0.7"; undefined for anything else. */
export function tagIp(tag: string): string | undefined {
  if (!/^[0-9a-f]{8}$/.test(tag)) return undefined;
  return [0, 2, 4, 6].map((i) => Number.parseInt(tag.slice(i, i + 2), 16)).join(".");
}

/** Splits a session id from the wire into its owner's tag and the session's own id (undefined: not tagged). */
export function splitSessionId(wire: string): { tag: string; id: string } | undefined {
  if (wire.length < 10 || wire[8] !== ".") return undefined;
  const tag = wire.slice(0, 8);
  return tagIp(tag) === undefined ? undefined : { tag, id: wire.slice(9) };
}

/** Peers by a headless Service's DNS name (its ready endpoints), IPv4. */
export function dnsPeers(host: string): () => Promise<string[]> {
  return () => dns.promises.resolve4(host).catch(() => []);
}

export class SessionAffinity {
  readonly tag: string;
  readonly #cfg: AffinityConfig;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  #peers = new Set<string>();
  #resolvedAt = 0;
  #resolving: Promise<Set<string>> | undefined;

  constructor(cfg: AffinityConfig) {
    if (!isIPv4(cfg.self)) throw new Error(`replica sessions: this pod's address must be an IPv4 address, got ${JSON.stringify(cfg.self)}`);
    this.#cfg = cfg;
    this.tag = ipTag(cfg.self);
  }

  /**
   * The stage (after authentication, before admission): a session id of this pod loses its tag; one of a
   * peer is relayed there; every answer's session id gets this pod's tag.
   */
  stage(core: Pick<Core, "respond" | "finish">, x: Exchange): Step {
    const wire = x.req.headers[SESSION_HEADER];
    const parts = typeof wire === "string" ? splitSessionId(wire) : undefined;
    // No session yet, or an id that is not tagged (the session stage answers unknown ids).
    if (!parts) {
      this.#tagAnswers(x.res);
      return undefined;
    }
    if (parts.tag === this.tag) {
      x.req.headers[SESSION_HEADER] = parts.id;
      this.#tagAnswers(x.res);
      return undefined;
    }
    // Relayed once at most; a relayed request for another pod's session is an unknown session here.
    if (x.req.headers[RELAYED_HEADER] !== undefined) return stop.notFound();
    const ip = tagIp(parts.tag)!;
    return this.#isPeer(ip).then((peer) => {
      if (!peer) return stop.notFound();
      this.#relay(core, x, ip);
      return HANDLED;
    });
  }

  /** Adds this pod's tag to the session id of every answer (the bound session's, from upstream, or a gateway-held one). */
  #tagAnswers(res: ServerResponse): void {
    const tag = this.tag;
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
      const headers = rest[rest.length - 1];
      if (headers && typeof headers === "object" && !Array.isArray(headers)) {
        const h = headers as OutgoingHttpHeaders;
        const v = h[SESSION_HEADER];
        if (typeof v === "string" && splitSessionId(v)?.tag !== tag) h[SESSION_HEADER] = `${tag}.${v}`;
      }
      const set = this.getHeader(SESSION_HEADER);
      if (typeof set === "string" && splitSessionId(set)?.tag !== tag) this.setHeader(SESSION_HEADER, `${tag}.${set}`);
      return (writeHead as (...a: unknown[]) => ServerResponse).call(this, status, ...rest);
    } as ServerResponse["writeHead"];
  }

  async #isPeer(ip: string): Promise<boolean> {
    if (ip === this.#cfg.self) return false;
    const now = Date.now();
    if (this.#peers.has(ip) && now - this.#resolvedAt < PEERS_TTL_MS) return true;
    // A peer that just started may not be in the last answer yet: resolve again, but not in a storm.
    if (now - this.#resolvedAt >= PEERS_RETRY_MS || this.#peers.size === 0) await this.#resolve();
    return this.#peers.has(ip);
  }

  #resolve(): Promise<Set<string>> {
    this.#resolving ??= this.#cfg
      .peers()
      .then((list) => {
        this.#peers = new Set(list.filter((a) => isIPv4(a) && a !== this.#cfg.self));
        this.#resolvedAt = Date.now();
        return this.#peers;
      })
      .finally(() => {
        this.#resolving = undefined;
      });
    return this.#resolving;
  }

  /** The client's request, as it came (headers, body, streaming answer), to the owner's gateway and back. */
  #relay(core: Pick<Core, "respond" | "finish">, x: Exchange, ip: string): void {
    const { req, res } = x;
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers[RELAYED_HEADER] = this.tag;
    const up = http.request({ host: ip, port: this.#cfg.port, method: req.method, path: req.url, headers, agent: this.#agent });
    up.on("response", (ur: IncomingMessage) => {
      const h: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) h[k] = v;
      res.writeHead(ur.statusCode ?? 502, h);
      ur.pipe(res);
      ur.on("error", () => res.destroy());
      // The owner wrote the audit line; this one says where the request went.
      ur.on("end", () => core.finish(x, "relayed", ur.statusCode ?? 502, `relayed to ${ip}`));
    });
    up.on("error", (err) => {
      log("warn", "relaying a session's request to its pod failed", { peer: ip, error: err.message });
      // The owner is unreachable (it just went away): the session is gone, the client initializes again.
      if (!res.headersSent) core.respond(x, stop.notFound());
      else {
        res.destroy();
        core.finish(x, "relay-failed", 502, `relaying to ${ip}: ${err.message}`);
      }
    });
    res.on("close", () => {
      if (res.writableFinished) return;
      up.destroy();
      core.finish(x, "client-closed", 499, `relay to ${ip} cut by the client`);
    });
    req.pipe(up);
  }

  close(): void {
    this.#agent.destroy();
  }
}
