// The gateway's hot-path steps in isolation (CPU only, in this process, no network): what one
// tools/call costs in authentication, JSON parsing + shape check, policy (limits, authorization,
// integrity, JSON Schema) and the audit line. Complements the end-to-end figures, which on a busy
// 2-core machine also contain scheduling noise.
import { writeFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../gateway/src/audit.ts";
import { Authenticator } from "../../gateway/src/auth/index.ts";
import { Authorizer } from "../../gateway/src/authz.ts";
import { AccessEngine } from "../../gateway/src/authz/engine.ts";
import { ToolCatalog } from "../../gateway/src/catalog.ts";
import { shapeProblem } from "../../gateway/src/jsonrpc.ts";
import { PolicyEngine } from "../../gateway/src/policy.ts";
import { LocalLimiter } from "../../gateway/src/ratelimit.ts";

export interface StepCost {
  step: string;
  /** Wall clock per call. */
  ns: number;
  /** CPU time (user + system) per call: on a loaded machine the wall clock also counts waiting for a core. */
  cpuNs?: number;
}

/** One batch of calls: wall clock and CPU time per call. */
async function batch(n: number, fn: () => unknown): Promise<{ ns: number; cpuNs: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  const c = process.cpuUsage(c0);
  return { ns, cpuNs: ((c.user + c.system) * 1000) / n };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * `rounds` > 1: each row's n calls are split into that many batches, the rows' batches interleaved
 * (row 1, row 2, ..., row 1, ...), and each row reports its median batch: on a shared machine a burst of
 * load then hits every row alike instead of whichever row ran during it.
 */
export async function measureSteps(n = 50_000, rounds = 1): Promise<StepCost[]> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-bastion-steps-"));
  const key = "bench-key-Lk3Jh5Gf7Ds9Aq2W";
  writeFileSync(join(dir, "bench"), key);
  const auth = new Authenticator({ apiKeys: { dir } });
  await auth.apiKeys!.rescan();
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const body = Buffer.from(
    JSON.stringify({ jsonrpc: "2.0", id: 42, method: "tools/call", params: { name: "echo", arguments: { message: "hello benchmark" } } }),
  );
  const catalog = new ToolCatalog({ pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: true }, { drift() {}, finding() {} });
  catalog.learn([
    {
      name: "echo",
      description: "Echoes back the input string",
      inputSchema: {
        type: "object",
        properties: { message: { type: "string", description: "Message to echo" } },
        required: ["message"],
        $schema: "http://json-schema.org/draft-07/schema#",
      },
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
  const policy = new PolicyEngine(
    limits,
    limiter,
    new Authorizer([{ name: "b", clients: { apiKeys: ["bench"] }, tools: { allow: ["echo"], deny: [] } }]),
    catalog,
  );
  const identity = { key: "apikey:bench", kind: "apikey" as const, name: "bench" };
  const audit = new AuditLog(["password"], { write: () => true });
  const params = { name: "echo", arguments: { message: "hello benchmark" } };
  const rows: { step: string; n: number; fn: () => unknown }[] = [];
  rows.push({ step: "auth (API key: sha256 + lookup + timingSafeEqual)", n, fn: () => auth.authenticate(headers) });
  rows.push({ step: "parse (JSON.parse + JSON-RPC shape check)", n, fn: () => shapeProblem(JSON.parse(body.toString("utf8"))) });
  rows.push({ step: "policy (2 buckets, authz, integrity, JSON Schema)", n, fn: () => policy.check(identity, "tools/call", params) });
  // issue 13: the same call with the extended authorization - a scheduled rule with a source CIDR, a rule
  // condition and a per-tool constraint (JSON Schema overlay + CEL), all compiled once at load.
  const access = new AccessEngine({
    rules: [
      {
        name: "b",
        clients: { apiKeys: ["bench"] },
        tools: { allow: ["echo"], deny: [] },
        schedule: { windows: [{ start: "00:00", end: "23:59", timeZone: "Europe/Berlin" }] },
        sources: ["127.0.0.0/8", "10.0.0.0/8"],
      },
    ],
    constraints: [
      {
        name: "echo-bounds",
        tools: ["echo"],
        arguments: { type: "object", properties: { message: { type: "string", maxLength: 1024 } } },
        conditions: [{ expression: "size(request.arguments.message) <= 1024 && !request.arguments.message.contains('\\u0000')" }],
      },
    ],
  });
  const extended = new PolicyEngine(limits, limiter, new Authorizer([]), catalog, access);
  const facts = { source: "127.0.0.1", now: Date.now() };
  rows.push({
    step: "policy + issue 13 (window, CIDR, overlay, 1 CEL condition)",
    n,
    fn: () => extended.check(identity, "tools/call", params, facts),
  });
  // The same call carrying a large document in another argument: the condition reads one string, so the
  // activation must not copy the document into CEL maps on every call (it did: ~1 ms a call).
  const doc = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, { a: i, b: [i, i + 1], c: { d: "x" } }]));
  const bigParams = { name: "echo", arguments: { message: "hello benchmark", doc } };
  rows.push({
    step: "policy + issue 13, same, a 200-key document in another argument",
    n: Math.ceil(n / 10),
    fn: () => extended.check(identity, "tools/call", bigParams, facts),
  });
  // A condition on the time of day in a zone (the checklist's maintenance window, written in CEL): the
  // evaluator's accessors with a zone built an Intl.DateTimeFormat per call (~125 µs).
  const timed = new AccessEngine({
    rules: [{ name: "b", clients: { apiKeys: ["bench"] }, tools: { allow: ["echo"], deny: [] } }],
    constraints: [{ name: "office-hours", tools: ["echo"], conditions: [{ expression: "now.getHours('Europe/Berlin') >= 0" }] }],
  });
  const extendedTimed = new PolicyEngine(limits, limiter, new Authorizer([]), catalog, timed);
  rows.push({
    step: "policy + issue 13, a CEL condition on the hour in Europe/Berlin",
    n: Math.ceil(n / 10),
    fn: () => extendedTimed.check(identity, "tools/call", params, facts),
  });
  const noCel = new AccessEngine({
    rules: [
      {
        name: "b",
        clients: { apiKeys: ["bench"] },
        tools: { allow: ["echo"], deny: [] },
        schedule: { notAfter: "2099-01-01T00:00:00Z" },
        sources: ["127.0.0.0/8"],
      },
    ],
  });
  const extendedNoCel = new PolicyEngine(limits, limiter, new Authorizer([]), catalog, noCel);
  rows.push({
    step: "policy + issue 13 without conditions (window, CIDR)",
    n,
    fn: () => extendedNoCel.check(identity, "tools/call", params, facts),
  });
  rows.push({
    step: "audit (redact + serialize one line)",
    n,
    fn: () =>
      audit.record({
        time: Date.now(),
        client: identity.key,
        source: "127.0.0.1",
        transport: "streamable-http",
        method: "tools/call",
        tool: "echo",
        arguments: params.arguments, // redacted in the batched flush, which this includes every 512 records
        outcome: "ok",
        status: 200,
        latencyMs: 0.5,
        session: "0123abcd",
      }),
  });
  for (const r of rows) for (let i = 0; i < 20_000; i++) await r.fn(); // warm up the JIT (the CEL evaluator's call tree needs more than 2,000 calls)
  const samples = rows.map(() => [] as { ns: number; cpuNs: number }[]);
  for (let round = 0; round < rounds; round++) for (const [i, r] of rows.entries()) samples[i]!.push(await batch(Math.max(1, Math.ceil(r.n / rounds)), r.fn));
  audit.flush();
  await limiter.close();
  auth.stop();
  rmSync(dir, { recursive: true, force: true });
  return rows.map((r, i) => ({ step: r.step, ns: median(samples[i]!.map((x) => x.ns)), cpuNs: median(samples[i]!.map((x) => x.cpuNs)) }));
}

// `node bench/gateway/steps.ts [rounds]`: the step costs alone, interleaved in rounds (default 25), with the
// issue-13 rows as multiples of the plain rule.
if (import.meta.main) {
  const { loadavg } = await import("node:os");
  const load = [loadavg()[0]!];
  const steps = await measureSteps(50_000, Number(process.argv[2] ?? 25));
  load.push(loadavg()[0]!);
  process.stdout.write(`median batch of each row, load average ${load.map((x) => x.toFixed(1)).join(" -> ")}\n wall µs   CPU µs  step\n`);
  for (const s of steps) process.stdout.write(`${(s.ns / 1000).toFixed(2).padStart(8)} ${((s.cpuNs ?? 0) / 1000).toFixed(2).padStart(8)}  ${s.step}\n`);
  const plain = steps.find((s) => s.step.startsWith("policy (2 buckets"))!;
  for (const s of steps.filter((x) => x.step.startsWith("policy + issue 13")))
    process.stdout.write(`${(s.ns / plain.ns).toFixed(1)}x wall, ${((s.cpuNs ?? 0) / (plain.cpuNs ?? 1)).toFixed(1)}x CPU of the plain rule: ${s.step}\n`);
}
