// The gateway as users run it (`mcp-bastion gateway --config FILE`, a child process) for the
// reliability suite, plus raw HTTP helpers that can send what a well-behaved client never would.
// Upstreams, issuers and config defaults come from the gateway engineer's test/gateway/helpers.ts.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import type { GatewayConfigInput } from "../../contract/gateway-config.ts";
import { GATEWAY_NODE_OPTIONS } from "../../operator/src/render/workload.ts";
import { waitUntil } from "../support/index.ts";
import { ROOT, tempDir } from "../gateway/helpers.ts";

export interface GatewayProcess {
  base: string;
  admin: string;
  port: number;
  pid: number;
  stdout(): string;
  stderr(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** `waitReady: false` for configs that can never be ready (a JWKS that never loads). */
export async function startGateway(cfg: GatewayConfigInput, opts: { waitReady?: boolean } = {}): Promise<GatewayProcess> {
  const file = join(tempDir("rel-gw"), "gateway.json");
  writeFileSync(file, JSON.stringify(cfg));
  // V8 sized as the rendered pod sizes it (NODE_OPTIONS of the gateway container): memory figures mean what they mean in a pod.
  const gw: ChildProcess = spawn(process.execPath, [...GATEWAY_NODE_OPTIONS.split(" "), join(ROOT, "cli/bin/mcp-bastion.js"), "gateway", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  // Bounded: the audit log of a soak is large; the tail is what the checks read.
  const cap = (s: string) => (s.length > 4_000_000 ? s.slice(-2_000_000) : s);
  gw.stdout!.on("data", (d: Buffer) => {
    out = cap(out + d.toString());
  });
  const ports = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start within 60 s: ${err}`)), 60_000);
    gw.stderr!.on("data", (d: Buffer) => {
      err = cap(err + d.toString());
      const m = /"msg":"gateway listening","port":(\d+),"adminPort":(\d+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve({ port: Number(m[1]), adminPort: Number(m[2]) });
      }
    });
    gw.once("exit", (c) => reject(new Error(`gateway exited ${c}: ${err}`)));
  });
  const exited = once(gw, "exit");
  const alive = () => gw.exitCode === null && gw.signalCode === null;
  const admin = `http://127.0.0.1:${ports.adminPort}`;
  if (opts.waitReady !== false)
    await waitUntil(
      "the gateway's /readyz to answer 200",
      async () => (await fetch(`${admin}/readyz`)).status,
      (s) => s === 200,
      60_000,
      100,
    );
  return {
    base: `http://127.0.0.1:${ports.port}`,
    admin,
    port: ports.port,
    pid: gw.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    alive,
    async stop() {
      if (!alive()) return;
      gw.kill("SIGTERM");
      const t = setTimeout(() => gw.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** JSON-RPC error code found in the body (JSON or SSE), if any. */
  rpcError?: number;
  /** The answer's JSON-RPC messages (JSON body or SSE `data:` lines). */
  messages: unknown[];
}

/** Parses a JSON or SSE answer into JSON-RPC messages. */
export function rpcMessages(body: string): unknown[] {
  const out: unknown[] = [];
  const tryPush = (t: string) => {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v)) out.push(...v);
      else out.push(v);
    } catch {
      // not JSON
    }
  };
  if (/^\s*[[{]/.test(body)) tryPush(body);
  else for (const line of body.split("\n")) if (line.startsWith("data:")) tryPush(line.slice(5).trim());
  return out;
}

function firstErrorCode(messages: unknown[]): number | undefined {
  for (const m of messages) {
    const e = (m as { error?: { code?: unknown } } | null)?.error;
    if (e && typeof e.code === "number") return e.code;
  }
  return undefined;
}

/** One HTTP request with node:http (no client-side checks on headers or bodies). */
export function httpRequest(
  base: string,
  opts: { method?: string; path?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; timeoutMs?: number },
): Promise<RawResponse> {
  return new Promise((resolve) => {
    const url = new URL(opts.path ?? "/mcp", base);
    const r = request(url, { method: opts.method ?? "POST", headers: opts.headers ?? {}, timeout: opts.timeoutMs ?? 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size < 4_000_000) chunks.push(c);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const messages = rpcMessages(body);
        const code = firstErrorCode(messages);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, messages, ...(code !== undefined ? { rpcError: code } : {}) });
      });
      res.on("error", (e) => resolve({ status: 0, headers: {}, body: `client error: ${e.message}`, messages: [] }));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", (e) => resolve({ status: 0, headers: {}, body: `client error: ${e.message}`, messages: [] }));
    r.end(opts.body);
  });
}

/** Writes raw bytes on a TCP connection and returns what came back before close or timeout. */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const t = setTimeout(() => s.destroy(), timeoutMs);
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("close", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
    s.on("error", () => {
      // reset by the server: what came before is the answer
    });
    s.end(data);
  });
}

/** Things that must never appear in an answer or a log line. */
export const STACK_TRACE = /\n\s+at [^\n]+:\d+:\d+|node:internal|\/work\/|\.ts:\d+:\d+|Error: [^"\n]*\n\s+at /;
