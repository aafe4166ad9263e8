// The gateway's hot-path steps in isolation (CPU only, in this process, no network): what one
// tools/call costs in authentication, JSON parsing + shape check, policy (limits, authorization,
// integrity, JSON Schema) and the audit line. Complements the end-to-end figures, which on a busy
// 2-core machine also contain scheduling noise.
import { writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../gateway/src/audit.ts";
import { Authenticator } from "../../gateway/src/auth/index.ts";
import { Authorizer } from "../../gateway/src/authz.ts";
import { ToolCatalog } from "../../gateway/src/catalog.ts";
import { shapeProblem } from "../../gateway/src/jsonrpc.ts";
import { PolicyEngine } from "../../gateway/src/policy.ts";
import { LocalLimiter } from "../../gateway/src/ratelimit.ts";

export interface StepCost {
  step: string;
  ns: number;
}

async function time(n: number, fn: () => unknown): Promise<number> {
  for (let i = 0; i < 2000; i++) await fn(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

export async function measureSteps(n = 50_000): Promise<StepCost[]> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-bastion-steps-"));
  const key = "bench-key-Lk3Jh5Gf7Ds9Aq2W";
  writeFileSync(join(dir, "bench"), key);
  const auth = new Authenticator({ apiKeys: { dir } });
  await auth.apiKeys!.rescan();
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 42, method: "tools/call", params: { name: "echo", arguments: { message: "hello benchmark" } } }));
  const catalog = new ToolCatalog({ pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: true }, { drift() {}, finding() {} });
  catalog.learn([
    {
      name: "echo",
      description: "Echoes back the input string",
      inputSchema: { type: "object", properties: { message: { type: "string", description: "Message to echo" } }, required: ["message"], $schema: "http://json-schema.org/draft-07/schema#" },
    },
  ]);
  const limits = {
    perClient: { requestsPerMinute: 6e10, burst: 1e9 },
    perTool: [{ tool: "echo", requestsPerMinute: 6e10, burst: 1e9 }],
    maxConcurrentRequests: 256,
    maxRequestBytes: 1_048_576,
    requestTimeoutSeconds: 30,
    toolTimeouts: [],
    mode: "divided" as const,
    replicas: 1,
  };
  const limiter = new LocalLimiter();
  const policy = new PolicyEngine(limits, limiter, new Authorizer([{ name: "b", clients: { apiKeys: ["bench"] }, tools: { allow: ["echo"], deny: [] } }]), catalog);
  const identity = { key: "apikey:bench", kind: "apikey" as const, name: "bench" };
  const audit = new AuditLog(["password"], { write: () => true });
  const params = { name: "echo", arguments: { message: "hello benchmark" } };
  const out: StepCost[] = [];
  out.push({ step: "auth (API key: sha256 + lookup + timingSafeEqual)", ns: await time(n, () => auth.authenticate(headers)) });
  out.push({ step: "parse (JSON.parse + JSON-RPC shape check)", ns: await time(n, () => shapeProblem(JSON.parse(body.toString("utf8")))) });
  out.push({ step: "policy (2 buckets, authz, integrity, JSON Schema)", ns: await time(n, () => policy.check(identity, "tools/call", params)) });
  out.push({
    step: "audit (redact + serialize one line)",
    ns: await time(n, () =>
      audit.record({
        time: new Date().toISOString(),
        client: identity.key,
        source: "127.0.0.1",
        transport: "streamable-http",
        method: "tools/call",
        tool: "echo",
        arguments: audit.redact(params.arguments),
        outcome: "ok",
        status: 200,
        latencyMs: 0.5,
        session: "0123abcd",
      }),
    ),
  });
  audit.flush();
  await limiter.close();
  auth.stop();
  return out;
}
