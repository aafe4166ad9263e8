// The older HTTP+SSE transport (MCP 2024-11-05) for clients that still speak it: a GET on /sse opens a
// gateway-held session and its event stream (the first event names the session's POST endpoint), each
// POST to /messages?sessionId=... is accepted at once (202) and its answer - or its refusal - goes out
// on that stream. The stages run these requests like any other (authenticate, admit, parse, session,
// policy); only the two ends below differ. A request keeps its slot until its answer is on the stream.
import { errorBody } from "./jsonrpc.ts";
import type { Core, Exchange, Step, Stop } from "./exchange.ts";
import { HANDLED, stop } from "./exchange.ts";
import type { HostedSession } from "./sessions.ts";

/** How often an idle stream carries a comment, so proxies in between keep it open. */
const PING_MS = 25_000;

/** GET /sse: opens a gateway-held session and its stream; the stream's end drops the session. */
export function openLegacyStream(gw: Core, x: Exchange): Step {
  const h = gw.sessions.host(x.identity!, true, x.source);
  if (!h) return stop.noCapacity();
  x.hosted = h;
  x.sessionId = h.id;
  x.method = "sse/connect";
  const res = x.res;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  res.write(`event: endpoint\ndata: /messages?sessionId=${h.id}\n\n`);
  h.stream = res;
  const ping = setInterval(() => res.write(": ping\n\n"), PING_MS);
  ping.unref();
  x.req.on("close", () => {
    clearInterval(ping);
    gw.sessions.drop(h.id, "client-closed", "client disconnected");
  });
  gw.finish(x, "ok", 200);
  return HANDLED;
}

/** POST /messages: accepted at once (202); the answer goes out on the session's SSE stream. */
export function legacyPost(gw: Core, x: Exchange, h: HostedSession): Step {
  const m = x.msg!;
  x.res.writeHead(202).end("Accepted");
  if (m.method === undefined || m.id === undefined) {
    h.notify(m);
    gw.finish(x, "ok", 202);
    return HANDLED;
  }
  x.detached = true;
  h.request(x, x.checked!.timeoutMs);
  return HANDLED;
}

/**
 * A policy refusal (a JSON-RPC error, HTTP 200 elsewhere) of an older-transport POST: 202, and the
 * error on the session's stream, where the client waits for its answer. False when the refusal is not
 * one of those (HTTP-level refusals are answered on the POST itself).
 */
export function refuseOnStream(gw: Core, x: Exchange, s: Stop): boolean {
  if (x.route !== "messages" || s.status !== 200 || !x.hosted) return false;
  if (!x.res.headersSent) x.res.writeHead(202).end("Accepted");
  x.hosted.write(errorBody(x.msg?.id, s.code, s.message));
  gw.finish(x, s.outcome, 202, s.reason);
  return true;
}
