// Audit lines to a central store over OTLP (issue 14), against the real OpenTelemetry Collector (its OTLP
// receiver and contrib's file exporter, built from their Go modules by hack/otelcol/build.sh): every line
// arrives byte for byte, so the store verifies with `mcp-bastion audit verify`; the collector stops and
// starts again mid-stream and no line is lost (the gateway's buffer holds them meanwhile); with a tiny
// buffer and no collector, the lines that did not fit are dropped, counted on /metrics, and said on stderr.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { checkpointKey, verifyAuditLog } from "../../gateway/src/auditchain.ts";
import { parseConfig } from "../../gateway/src/load.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { freePort, waitFor, waitUntil, withDeadline } from "../support/index.ts";
import { MemorySink, ROOT, type Toy, baseConfig, openSession, startToy, tempDir } from "./helpers.ts";

const KEY = "ops-Vq8sLm2Rt5Xw9Pz3Kd7N";
const HMAC = Buffer.from(randomBytes(32).toString("base64"));
let toy: Toy;
let dir: string;
let otelcol: string;
/** Whatever a test started, stopped after the file even when an assertion failed midway (no process left behind). */
const started: (() => Promise<void>)[] = [];

before(async () => {
  // The collector binary, built once into ~/.cache/mcp-bastion (make test's set-up builds it first).
  otelcol = execFileSync(join(ROOT, "hack/otelcol/build.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  toy = await startToy();
  dir = tempDir("audit-otlp");
  writeFileSync(join(dir, "checkpoint.key"), HMAC);
});
after(async () => {
  for (const stop of started.reverse()) await stop().catch(() => undefined);
  await toy?.close();
});

/** A running collector: OTLP/HTTP on 127.0.0.1:port, every logs request written as one JSON line to `out`. */
interface Collector {
  out: string;
  stop(): Promise<void>;
  stderr(): string;
}

async function startCollector(port: number, name: string): Promise<Collector> {
  const out = join(dir, `${name}.jsonl`);
  const cfg = join(dir, `${name}.yaml`);
  // Its own metrics are off: the default would listen on :8888, shared by every test running at once.
  writeFileSync(
    cfg,
    [
      "receivers:",
      "  otlp:",
      "    protocols:",
      "      http:",
      `        endpoint: 127.0.0.1:${port}`,
      "exporters:",
      "  file:",
      `    path: ${out}`,
      "    flush_interval: 100ms",
      "service:",
      "  telemetry:",
      "    metrics:",
      "      level: none",
      "  pipelines:",
      "    logs:",
      "      receivers: [otlp]",
      "      exporters: [file]",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(otelcol, [`--config=file:${cfg}`], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => {
    err = (err + d).slice(-8000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  started.push(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  });
  await waitFor(
    () => `the collector to accept connections on 127.0.0.1:${port} (stderr: ${err.slice(-600)})`,
    async () => {
      if (child.exitCode !== null) throw new Error(`collector exited with ${child.exitCode}: ${err.slice(-600)}`);
      return await new Promise<boolean>((resolve) => {
        const s = connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
    },
  );
  return {
    out,
    stderr: () => err,
    // SIGTERM: the collector's own graceful stop (the file exporter flushes what it accepted).
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await withDeadline("the collector to stop after SIGTERM", exited, undefined, () => err.slice(-600));
    },
  };
}

/** How many different lines the collector stored (delivery is at least once: a line may be there twice). */
const distinct = (lines: string[]) => new Set(lines).size;

/** The audit lines the collector stored: the string body of every log record in its output files, in order. */
function stored(...files: string[]): string[] {
  const lines: string[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const row of readFileSync(f, "utf8").split("\n")) {
      if (!row.trim()) continue;
      const req = JSON.parse(row) as { resourceLogs?: { scopeLogs?: { logRecords?: { body?: { stringValue?: string } }[] }[] }[] };
      for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const r of sl.logRecords ?? []) lines.push(r.body?.stringValue ?? "");
    }
  }
  return lines;
}

/** A gateway auditing to stdout (a MemorySink here) and over OTLP to 127.0.0.1:port, with one API key client. */
async function startGateway(port: number, bufferLines: number) {
  const keys = tempDir("audit-otlp-keys");
  writeFileSync(join(keys, "ops"), `${KEY}\n`);
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir: keys } } });
  cfg.authorization.rules = [{ name: "ops", clients: { apiKeys: ["ops"] }, tools: { allow: ["*"], deny: ["delete-all"] } }];
  cfg.audit = {
    redactKeys: [],
    checkpoint: { keyFile: join(dir, "checkpoint.key"), everyLines: 7, everySeconds: 3600 },
    otlp: { endpoint: `http://127.0.0.1:${port}`, bufferLines },
  };
  const stdout = new MemorySink();
  const gw = new Gateway({ config: parseConfig(cfg), auditSink: stdout });
  started.push(() => gw.close());
  const { port: gwPort, adminPort } = await gw.start();
  const url = `http://127.0.0.1:${gwPort}/mcp`;
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${KEY}` };
  headers["mcp-session-id"] = await openSession(url, headers);
  headers["mcp-protocol-version"] = "2025-06-18";
  await waitFor("the gateway to be ready (tool catalog loaded)", () => gw.ready);
  let id = 1;
  return {
    gw,
    stdout,
    /** `n` tools/call requests, one after another (an allowed one and a refused one in turn): one audit line each. */
    async calls(n: number) {
      for (let i = 0; i < n; i++) {
        const name = i % 2 === 0 ? "add" : "delete-all";
        const r = await fetch(url, {
          method: "POST",
          headers,
          body: JSON.stringify({ jsonrpc: "2.0", id: id++, method: "tools/call", params: { name, arguments: { a: i, b: 1 } } }),
        });
        await r.text();
      }
    },
    /** One series' value from the admin port's /metrics (0 when it is absent), e.g. metric("x_total", { reason: "r" }). */
    async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      const line = text.split("\n").find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && want.every((w) => l.includes(w)));
      return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
    },
  };
}

test("every audit line reaches the collector intact, also across a collector restart, and the store verifies", async () => {
  const port = await freePort();
  const first = await startCollector(port, "run1");
  const g = await startGateway(port, 10_000);
  const audited = () => g.stdout.lines.length;
  await g.calls(10);
  await waitUntil(
    "the collector to store the first lines",
    () => distinct(stored(first.out)),
    (n) => n >= audited(),
  );

  // The collector stops mid-stream: the gateway keeps answering and keeps the lines in its buffer.
  await first.stop();
  await g.calls(12);
  await waitFor(
    "the gateway to notice the collector is gone (a failed export, retried)",
    async () => (await g.metric("mcp_gateway_audit_otlp_retries_total")) > 0,
  );
  assert.ok((await g.metric("mcp_gateway_audit_otlp_buffered_lines")) > 0, "lines wait in the buffer while the collector is down");

  // It comes back on the same address (a new output file, so what each run stored can be told apart).
  const second = await startCollector(port, "run2");
  await g.calls(10);
  await waitUntil(
    "the restarted collector to receive every line buffered during the outage and after",
    () => distinct(stored(first.out, second.out)),
    (n) => n >= audited(),
  );
  await g.gw.close(); // the final checkpoint, exported before close returns
  await waitUntil(
    "the final checkpoint to be stored",
    () => distinct(stored(first.out, second.out)),
    (n) => n >= audited(),
  );
  await second.stop();

  const lines = stored(first.out, second.out);
  // At least once: a batch whose answer was lost in the restart may come twice. Every line is there once
  // counted by content, in the gateway's order, and byte for byte what the gateway wrote to stdout.
  const unique = [...new Set(lines)];
  assert.deepEqual(unique, g.stdout.lines, "the collector stored exactly the lines of stdout, in order");
  assert.ok(g.stdout.lines.length >= 33, `32 requests and their checkpoints were audited (saw ${g.stdout.lines.length})`);
  assert.ok(stored(second.out).length > 0 && stored(first.out).length > 0, "both collector runs stored lines");
  const v = verifyAuditLog(`${unique.join("\n")}\n`, checkpointKey(HMAC, "test"));
  assert.deepEqual([v.ok, v.problems, v.warnings], [true, [], []], "the stored trail verifies: chain and signed checkpoints intact, final checkpoint present");
  assert.ok(v.checkpoints >= 4);
});

test("with a tiny buffer and the collector down, the lines that do not fit are dropped, counted and reported", async () => {
  // The gateway's operational log (stderr) is read here too: the drop must be said there, not only counted.
  let stderr = "";
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    stderr += String(chunk);
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    const port = await freePort(); // nothing listens here yet
    const g = await startGateway(port, 5);
    await g.calls(20);
    const full = { reason: "buffer-full" };
    // Every line written (initialize, the 20 calls, their checkpoints) but the 5 the buffer holds is
    // dropped. Stdout and the exporter get the same writes, so stdout says how many lines there were.
    const requests = () => g.stdout.lines.filter((l) => !l.includes('"type":"checkpoint"')).length;
    const seen = await waitUntil(
      "all 21 request lines to be written, and those that did not fit to be counted on /metrics",
      async () => {
        g.gw.audit.flush();
        return { requests: requests(), written: g.stdout.lines.length, dropped: await g.metric("mcp_gateway_audit_otlp_dropped_total", full) };
      },
      (v) => v.requests === 21 && v.dropped === v.written - 5,
    );
    const written = seen.written;
    assert.equal(await g.metric("mcp_gateway_audit_otlp_buffered_lines"), 5, "the buffer is full, and no fuller");
    assert.equal(await g.metric("mcp_gateway_audit_otlp_exported_total"), 0);
    assert.match(stderr, /"msg":"audit lines not exported over OTLP","reason":"buffer-full"/);
    assert.match(stderr, /"msg":"audit OTLP export failing; lines are kept and retried".*"error":"ECONNREFUSED"/);

    // The collector starts: what the buffer held arrives (the first 5 lines, a contiguous stretch of the
    // chain), and the drop count stays what it was.
    const c = await startCollector(port, "tiny");
    await waitUntil(
      "the 5 buffered lines to arrive",
      () => stored(c.out),
      (l) => l.length >= 5,
    );
    assert.deepEqual([...new Set(stored(c.out))], g.stdout.lines.slice(0, 5));
    assert.equal(await g.metric("mcp_gateway_audit_otlp_dropped_total", full), written - 5);
    // Counted once the gateway has read the collector's answer (the file may hold the lines a moment before).
    await waitUntil(
      "the 5 lines to be counted as exported",
      () => g.metric("mcp_gateway_audit_otlp_exported_total"),
      (n) => n === 5,
    );
    await g.gw.close();
    await c.stop();
  } finally {
    process.stderr.write = write;
  }
});
