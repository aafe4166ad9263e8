// issue 11: real MCP peers of both protocol eras for the gateway's era matrix (era2026-*.test.ts). Nothing
// here speaks MCP by hand: the server is the v2 TypeScript SDK's McpServer behind createMcpHandler (dual-era:
// 2026-07-28 per request, 2025 requests through its stateless legacy leg), the clients are the v2 SDK's
// Client (mode auto, legacy or pinned) and the v1 SDK's Client (a 2025-only client, as most deployed ones).
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from "@modelcontextprotocol/client";
import { McpServer, acceptedContent, inputRequired } from "@modelcontextprotocol/server";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { z } from "zod";

export const MODERN = "2026-07-28";

/** What reached the upstream server: each tool call's name and arguments (to show refused calls never ran). */
export type Calls = { tool: string; args: unknown }[];

/**
 * The upstream: `echo`, `get-env` (the tool rules deny), `deploy` (asks the client to confirm with an
 * elicitation: the 2026 MRTR pattern, input_required then a retry with inputResponses), a public and a
 * private resource. Every list announces listChanged, so subscriptions/listen has something to carry.
 */
export function peerServer(calls: Calls): () => McpServer {
  return () => {
    const s = new McpServer(
      { name: "era-peer", version: "2.4.0" },
      { capabilities: { tools: { listChanged: true }, resources: { listChanged: true }, prompts: { listChanged: true } } },
    );
    s.registerTool("echo", { description: "Echoes the text", inputSchema: z.object({ text: z.string() }) }, async ({ text }) => {
      calls.push({ tool: "echo", args: { text } });
      return { content: [{ type: "text", text }] };
    });
    s.registerTool("get-env", { description: "Reads the environment", inputSchema: z.object({}) }, async () => {
      calls.push({ tool: "get-env", args: {} });
      return { content: [{ type: "text", text: "SECRET=1" }] };
    });
    s.registerTool("deploy", { description: "Deploys after the user confirms", inputSchema: z.object({ env: z.string() }) }, async ({ env }, ctx) => {
      const confirmation = z.object({ confirm: z.boolean() });
      const answer = acceptedContent(ctx.mcpReq.inputResponses, "confirm", confirmation);
      if (answer?.confirm !== true) {
        return inputRequired({ inputRequests: { confirm: inputRequired.elicit({ message: `Deploy to ${env}?`, requestedSchema: confirmation }) } });
      }
      calls.push({ tool: "deploy", args: { env } });
      return { content: [{ type: "text", text: `deployed to ${env}` }] };
    });
    s.registerResource("public-doc", "demo://resource/static/document/a", { mimeType: "text/plain" }, async (uri) => ({
      contents: [{ uri: uri.href, text: "public" }],
    }));
    s.registerResource("private-doc", "demo://private/b", { mimeType: "text/plain" }, async (uri) => ({ contents: [{ uri: uri.href, text: "private" }] }));
    return s;
  };
}

export type Mode = "auto" | "legacy" | { pin: string };

export interface V2Options {
  /** Answers elicitations (2026: inside an MRTR round; 2025: a server request on the session); records the messages. */
  elicited?: string[];
  /** How to answer an elicitation (default: accept with {confirm: true}). */
  answer?: "accept" | "decline";
  /** A fetch between the SDK and the wire (to tamper with what a real client sends). */
  fetch?: typeof fetch;
}

/** The v2 SDK client, connected: `mode` is its version negotiation (auto probes server/discover). */
export async function v2Client(url: string, key: string, mode: Mode, opts: V2Options = {}): Promise<V2Client> {
  const c = new V2Client({ name: "era-matrix-v2", version: "1.0.0" }, { capabilities: { elicitation: {} }, versionNegotiation: { mode } });
  const elicited = opts.elicited;
  if (elicited) {
    c.setRequestHandler("elicitation/create", async (req) => {
      elicited.push(req.params.message);
      return opts.answer === "decline" ? { action: "decline" } : { action: "accept", content: { confirm: true } };
    });
  }
  await c.connect(new V2Transport(new URL(url), { requestInit: { headers: { "x-api-key": key } }, ...(opts.fetch ? { fetch: opts.fetch } : {}) }));
  return c;
}

/** The v1 SDK client (2025 revisions only): what most deployed clients are. */
export async function v1Client(url: string, key: string, elicited?: string[]): Promise<V1Client> {
  const c = new V1Client({ name: "era-matrix-v1", version: "1.0.0" }, { capabilities: elicited ? { elicitation: {} } : {} });
  if (elicited) {
    const { ElicitRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
    c.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicited.push(req.params.message);
      return { action: "accept", content: { confirm: true } };
    });
  }
  await c.connect(new V1Transport(new URL(url), { requestInit: { headers: { "x-api-key": key } } }));
  return c;
}

/** The JSON-RPC error code a client library surfaced (both SDKs put it on `code`). */
export function codeOf(e: unknown): unknown {
  return (e as { code?: unknown })?.code;
}
