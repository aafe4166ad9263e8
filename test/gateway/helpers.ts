// Shared fixtures for the gateway tests: real MCP peers (server-everything as a child process), a
// gateway config builder, API key files, and an audit sink that keeps lines in memory.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayConfigInput } from "../../gateway/src/config.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const EVERYTHING = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

export interface Child {
  proc: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/** Starts server-everything in `streamableHttp` or `sse` mode and waits until it listens. */
export async function startEverything(mode: "streamableHttp" | "sse"): Promise<Child> {
  const port = await freePort();
  const proc = spawn(process.execPath, [EVERYTHING, mode], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    const t = setTimeout(() => reject(new Error(`server-everything ${mode} did not start: ${err}`)), 20_000);
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (/listening|running/i.test(err)) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.on("exit", (c) => reject(new Error(`server-everything exited ${c}: ${err}`)));
  });
  proc.stderr!.resume();
  return {
    proc,
    port,
    stop: () =>
      new Promise<void>((r) => {
        if (proc.exitCode !== null) return r();
        proc.once("exit", () => r());
        proc.kill("SIGKILL");
      }),
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `mcp-bastion-${prefix}-`));
}

/** Writes API key files the way Kubernetes mounts a Secret: NAME -> ..data/NAME -> ..<timestamp>/NAME. */
export function writeKeys(dir: string, keys: Record<string, string>): void {
  for (const [name, key] of Object.entries(keys)) writeFileSync(join(dir, name), `${key}\n`);
}

export function baseConfig(over: Partial<GatewayConfigInput> & Pick<GatewayConfigInput, "upstream" | "auth">): GatewayConfigInput {
  return {
    version: 1,
    server: { namespace: "test", name: "everything" },
    listen: { host: "127.0.0.1", port: 0, adminPort: 0 },
    publicUrl: "http://127.0.0.1/mcp",
    authorization: {
      rules: [
        { name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["echo", "get-sum"], deny: [] } },
        { name: "bob", clients: { apiKeys: ["bob"] }, tools: { allow: ["*"], deny: ["get-env", "trigger-*"] }, prompts: { allow: ["*"], deny: [] }, resources: { allow: ["demo://resource/static/document/*"], deny: [] } },
      ],
    },
    limits: {
      perClient: { requestsPerMinute: 6000, burst: 1000 },
      perTool: [],
      maxConcurrentRequests: 64,
      maxRequestBytes: 65536,
      requestTimeoutSeconds: 30,
      toolTimeouts: [],
      mode: "divided",
      replicas: 1,
    },
    tools: { pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: false },
    audit: { redactKeys: ["ssn"] },
    ...over,
  };
}

/** Collects audit lines in memory (the gateway writes them to stdout in production). */
export class MemorySink {
  lines: string[] = [];
  write(chunk: string): boolean {
    for (const l of chunk.split("\n")) if (l) this.lines.push(l);
    return true;
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
