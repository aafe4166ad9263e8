// A real MCP server (the SDK's McpServer) that the gateway tests steer: served over streamable HTTP
// (/mcp) and the older HTTP+SSE transport (/sse + /messages), with tools that wait until the test
// releases them, a tool that only capable clients get, a URL-mode elicitation error, and a server
// request sent outside any client request. It counts what reaches it.
import { randomUUID } from "node:crypto";
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { UrlElicitationRequiredError } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

export interface Peer {
  port: number;
  /** Base URL (http://127.0.0.1:PORT). */
  base: string;
  /** Ends the `hold` calls waiting on `key` (all of them when omitted). */
  release(key?: string): void;
  /** Calls waiting in `hold` or `stall` right now. */
  holding(): number;
  /** The server closes every live session (an upstream that goes away under its clients). */
  closeSessions(): Promise<void>;
  /** Sessions open on the server, by transport. */
  live(): { streamable: number; sse: number };
  /** Sessions the server created, and DELETEs it received for a session it had. */
  created: number;
  deleted: number;
  /** Methods the server received, in order (requests and notifications). */
  methods: string[];
  /** Tool calls the server ran, by tool. */
  calls: Record<string, number>;
  /** Answers to the unrelated elicitation requests the `elicit-later` tool sends. */
  elicited: string[];
  close(): Promise<void>;
}

export async function startPeer(): Promise<Peer> {
  const waiting = new Map<string, (() => void)[]>();
  const streamable = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();
  const state = { created: 0, deleted: 0 };
  const methods: string[] = [];
  const calls: Record<string, number> = {};
  const elicited: string[] = [];
  const wait = (key: string) =>
    new Promise<void>((resolve) => {
      const list = waiting.get(key) ?? [];
      list.push(resolve);
      waiting.set(key, list);
    });

  const build = () => {
    const s = new McpServer({ name: "peer", version: "1.0.0" });
    const count = (tool: string) => {
      calls[tool] = (calls[tool] ?? 0) + 1;
    };
    s.registerTool("echo", { description: "Echoes", inputSchema: { message: z.string() } }, async ({ message }) => {
      count("echo");
      return { content: [{ type: "text", text: `echo: ${message}` }] };
    });
    s.registerTool("hold", { description: "Answers when the test releases its key", inputSchema: { key: z.string() } }, async ({ key }) => {
      count("hold");
      await wait(key);
      return { content: [{ type: "text", text: `released ${key}` }] };
    });
    s.registerTool(
      "stall",
      { description: "Answers when the test releases its key (short timeout at the gateway)", inputSchema: { key: z.string() } },
      async ({ key }) => {
        count("stall");
        await wait(key);
        return { content: [{ type: "text", text: `released ${key}` }] };
      },
    );
    s.registerTool("secret-admin", { description: "Not for every client", inputSchema: {} }, async () => {
      count("secret-admin");
      return { content: [{ type: "text", text: "admin" }] };
    });
    s.registerTool("url-elicit", { description: "Needs the user to visit a URL first", inputSchema: {} }, async () => {
      count("url-elicit");
      throw new UrlElicitationRequiredError([
        { mode: "url", elicitationId: "e-42", url: "https://auth.example.com/connect?state=e-42", message: "Connect your account" },
      ]);
    });
    s.registerTool("elicit-later", { description: "Asks the user something outside this call", inputSchema: {} }, async () => {
      count("elicit-later");
      // No related request: the SDK sends this on the session's GET stream.
      void s.server.elicitInput({ message: "Which colour?", requestedSchema: { type: "object", properties: { colour: { type: "string" } } } }).then(
        (r) => elicited.push(String(r.content?.colour ?? r.action)),
        (e) => elicited.push(`error: ${String(e)}`),
      );
      return { content: [{ type: "text", text: "asked" }] };
    });
    s.server.oninitialized = () => {
      // Registered only for clients that can answer elicitations (servers do this).
      if (s.server.getClientCapabilities()?.elicitation) {
        s.registerTool("ask-user", { description: "Asks the user", inputSchema: {} }, async () => {
          count("ask-user");
          return { content: [{ type: "text", text: "asked the user" }] };
        });
      }
    };
    return s;
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/sse" && req.method === "GET") {
      const t = new SSEServerTransport("/messages", res);
      sse.set(t.sessionId, t);
      state.created++;
      res.on("close", () => sse.delete(t.sessionId));
      await build().connect(t);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (body && typeof body === "object" && "method" in body) methods.push(String((body as { method: unknown }).method));
    if (url.pathname === "/messages") {
      const t = sse.get(url.searchParams.get("sessionId") ?? "");
      if (!t) return void res.writeHead(404).end();
      return void (await t.handlePostMessage(req, res, body));
    }
    const sid = req.headers["mcp-session-id"];
    let t = typeof sid === "string" ? streamable.get(sid) : undefined;
    if (typeof sid === "string" && !t) return void res.writeHead(404).end();
    if (t && req.method === "DELETE") state.deleted++;
    if (!t) {
      const tr = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          streamable.set(id, tr);
          state.created++;
        },
        onsessionclosed: (id) => void streamable.delete(id),
      });
      tr.onclose = () => {
        if (tr.sessionId) streamable.delete(tr.sessionId);
      };
      await build().connect(tr);
      t = tr;
    }
    await t.handleRequest(req, res, body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    release(key) {
      for (const [k, list] of waiting) {
        if (key !== undefined && k !== key) continue;
        for (const r of list) r();
        waiting.delete(k);
      }
    },
    holding: () => [...waiting.values()].reduce((n, l) => n + l.length, 0),
    async closeSessions() {
      await Promise.all([...streamable.values(), ...sse.values()].map((t) => t.close()));
      streamable.clear();
      sse.clear();
    },
    live: () => ({ streamable: streamable.size, sse: sse.size }),
    get created() {
      return state.created;
    },
    get deleted() {
      return state.deleted;
    },
    methods,
    calls,
    elicited,
    close: () =>
      new Promise<void>((r) => {
        for (const l of waiting.values()) for (const f of l) f();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
