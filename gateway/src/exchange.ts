// One MCP request through the gateway: the per-request context every stage reads and fills in, the
// refusal a stage returns to stop the request, and the narrow view of the gateway (Core) that the
// stages, the upstream proxy, the session table and the older SSE transport work through.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { AuditResult } from "./audit.ts";
import type { Authenticator } from "./auth/index.ts";
import type { Identity } from "./authz.ts";
import type { AccessEngine, RequestFacts } from "./authz/engine.ts";
import type { GatewayConfig } from "../../contract/gateway-config.ts";
import type { Era } from "./era.ts";
import type { Visibility } from "./modern.ts";
import { ERR, type JsonRpcMessage } from "./jsonrpc.ts";
import type { Limiter } from "./ratelimit.ts";
import type { Metrics } from "./metrics.ts";
import type { Checked, PolicyEngine } from "./policy.ts";
import type { BoundSession, HostedSession, SessionTable } from "./sessions.ts";

/** The gateway's routes on the MCP port: streamable HTTP, and the older transport's stream and message endpoints. */
export type Route = "mcp" | "sse" | "messages";

/** Why a request stops before it reaches the upstream; `respond()` turns it into the answer. */
export interface Stop {
  status: number;
  /** JSON-RPC error code of the answer body. */
  code: number;
  message: string;
  /** Audit and metrics outcome. */
  outcome: string;
  headers?: OutgoingHttpHeaders;
  /** Audit detail that the client is not told (e.g. the upstream's status). */
  reason?: string;
  /** Close the connection after answering (a body the gateway will not read to its end). */
  closeConnection?: boolean;
  /** The JSON-RPC error's `data` (issue 11: the supported versions of an UnsupportedProtocolVersionError). */
  data?: unknown;
}

/** A stage (or a transport's end of one) took the exchange over: it answers and finishes it itself. */
export const HANDLED = Symbol("handled");
/** What a stage returns: pass on (undefined), refuse (Stop), taken over (HANDLED), or a promise of one of these. */
export type Step = undefined | Stop | typeof HANDLED | Promise<undefined | Stop | typeof HANDLED>;

/** Ends an exchange's upstream side: clears its timer, removes it from its session, cancels it upstream when it ended without its answer. */
export type Cleanup = (x: Exchange, outcome: string) => void;

export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** performance.now() when the request arrived (ms, a plain number: no BigInt per timing on the hot path). */
  readonly t0: number;
  readonly startMs: number;
  /** The client's address (X-Forwarded-For only from a trusted proxy): audit, source rules, identity for the server. */
  readonly source: string;
  /** Phase timer (performance.now() of the last phase boundary). */
  t: number;
  route: Route;
  transport: "streamable-http" | "sse";
  /** issue 11: the protocol era of the request (era stage): "modern" is 2026-07-28, stateless. */
  era: Era;
  /** The protocol version the request names, when it names one. */
  protocolVersion: string | undefined;
  /** Method for audit and metrics: the JSON-RPC method, "response", or the HTTP method. */
  method: string;
  identity: Identity | undefined;
  msg: JsonRpcMessage | undefined;
  body: Buffer | undefined;
  sessionId: string | undefined;
  bound: BoundSession | undefined;
  hosted: HostedSession | undefined;
  checked: Checked | undefined;
  tool: string | undefined;
  args: unknown;
  /** issue 13: the authorization rule that refused this request (audit). */
  rule: string | undefined;
  /** issue 14: how the request was answered, for the audit line (status and sanitized error, not the content). */
  result: AuditResult | undefined;
  /** Holds a concurrency slot (released by finish, whatever ends the exchange). */
  admitted: boolean;
  /** finish() ran: audit line written, slot released. */
  done: boolean;
  /** Its HTTP answer is sent (202) but it lives on until its answer goes out on the session's stream. */
  detached: boolean;
  /** JSON of the client's request id, while it is reserved in its session (duplicate ids are refused). */
  idKey: string | undefined;
  /** The id the gateway gave this request upstream (gateway-held sessions). */
  upstreamId: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The request to a streamable-HTTP upstream carrying this exchange (destroy() aborts it). */
  upstreamReq: { readonly destroyed: boolean; destroy(): void } | undefined;
  /** Its answer is an SSE stream (a timeout then ends the stream with an error event). */
  sse: boolean;
  cleanup: Cleanup | undefined;
  span: { end(attrs: Record<string, string | number>): void } | undefined;
}

export function newExchange(req: IncomingMessage, res: ServerResponse, source = req.socket.remoteAddress ?? "unknown"): Exchange {
  const t0 = performance.now();
  return {
    req,
    res,
    t0,
    t: t0,
    startMs: Date.now(),
    source,
    route: "mcp",
    transport: "streamable-http",
    era: "legacy",
    protocolVersion: undefined,
    method: req.method ?? "?",
    identity: undefined,
    msg: undefined,
    body: undefined,
    sessionId: undefined,
    bound: undefined,
    hosted: undefined,
    checked: undefined,
    tool: undefined,
    args: undefined,
    rule: undefined,
    result: undefined,
    admitted: false,
    done: false,
    detached: false,
    idKey: undefined,
    upstreamId: undefined,
    timer: undefined,
    upstreamReq: undefined,
    sse: false,
    cleanup: undefined,
    span: undefined,
  };
}

/** What the stages and the transport modules need from the gateway. */
export interface Core {
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly auth: Authenticator;
  readonly policy: PolicyEngine;
  /** issue 13: required scopes, scopes_supported, and the rules' conditions. */
  readonly access: AccessEngine;
  readonly limiter: Limiter;
  readonly sessions: SessionTable;
  /** Answers a refusal (HTTP status + JSON-RPC error, or an error event on the older transport's stream) and finishes. */
  respond(x: Exchange, stop: Stop): void;
  /** The one end of every exchange: releases its slot, writes its audit line. Idempotent. */
  finish(x: Exchange, outcome: string, status: number, reason?: string): void;
  /** Filters list results for the client and strips internals from errors, in one serialized message. */
  filter(identity: Identity, method: string | undefined, raw: string, source?: string, modern?: boolean): string;
  /** issue 11: one message of a subscriptions/listen stream, for this client: passed on or dropped (undefined). */
  notificationFor(identity: Identity, source: string, raw: string): string | undefined;
  /** issue 11: what this client may see anything of (server/discover capabilities, listen filters). */
  visibility(identity: Identity): Visibility;
  /** The facts time- and source-conditioned rules are evaluated against (the gateway's clock, the client's address). */
  facts(x: Exchange): RequestFacts;
  /** A signed identity for the server still has to be minted before the exchange goes upstream (undefined: ready). */
  prepareIdentity(x: Exchange): Promise<unknown> | undefined;
  /** The caller's verified identity as headers for the server (never the client's own credentials). */
  identityHeaders(x: Exchange): Record<string, string>;
  startSpan(x: Exchange): void;
  /** The upstream announced changed tools. */
  toolsChanged(): void;
}

export const stop = {
  invalid: (message: string, status = 400): Stop => ({ status, code: -32600, message, outcome: "invalid" }),
  notFound: (): Stop => ({ status: 404, code: -32600, message: "session not found", outcome: "invalid" }),
  methodNotAllowed: (allow: string): Stop => ({ status: 405, code: -32600, message: "method not allowed", outcome: "invalid", headers: { allow } }),
  internal: (): Stop => ({ status: 500, code: -32603, message: "internal error", outcome: "error" }),
  noCapacity: (): Stop => ({
    status: 503,
    code: ERR.overloaded,
    message: "no session capacity left for this client; close a session or retry later",
    outcome: "rate-limited",
    headers: { "retry-after": "5" },
  }),
};
