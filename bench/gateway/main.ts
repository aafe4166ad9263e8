// Gateway benchmark (not a test): the same MCP load - an established session calling server-everything's
// `echo` tool - sent three ways on loopback:
//   direct   straight to server-everything (streamable HTTP)
//   gateway  through `mcp-bastion gateway` with API-key auth, authorization, rate limits (per client and
//            per tool), schema validation and audit all on
//   nginx    through nginx (Debian's package, via hack/deps-gateway.sh) as a plain reverse proxy with
//            upstream keepalive
//   node     through a bare 20-line node:http proxy (no checks): the floor for any Node.js proxy here
//   gw-2026  through the gateway as a 2026-07-28 (stateless) client: no session, the `_meta` envelope and
//            Mcp-Method/Mcp-Name headers on every call, bridged by the gateway to the 2025 server (issue 11)
// at 1 connection (latency) and 8 connections (throughput). Prints requests/s, p50, p99, the ratio of each
// path to direct, the gateway's RSS, and where the gateway's time goes (its own phase counters).
//
// Usage: node bench/gateway/main.ts [--requests N] [--seconds S]
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort } from "../../test/support/index.ts";
import { measureSteps } from "./steps.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const EVERYTHING = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const KEY = "bench-key-Lk3Jh5Gf7Ds9Aq2W";
const { values: opts } = parseArgs({ options: { requests: { type: "string" }, seconds: { type: "string" } } });
const LATENCY_REQUESTS = Number(opts.requests ?? 3000);
const THROUGHPUT_SECONDS = Number(opts.seconds ?? 5);

function waitOutput(proc: ChildProcess, stream: "stdout" | "stderr", re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const t = setTimeout(() => reject(new Error(`${what} did not start: ${buf.slice(-500)}`)), 30_000);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(t);
        proc[stream]!.off("data", on);
        proc[stream]!.resume();
        resolve(m);
      }
    };
    proc[stream]!.on("data", on);
    proc.on("exit", (c) => reject(new Error(`${what} exited ${c}: ${buf.slice(-500)}`)));
  });
}

const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
}
process.on("exit", cleanup);

// ---------------------------------------------------------------- the three paths

let upstreamPid = 0;
async function startDirect(): Promise<number> {
  const port = await freePort();
  const p = spawn(process.execPath, [EVERYTHING, "streamableHttp"], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  children.push(p);
  upstreamPid = p.pid!;
  await waitOutput(p, "stderr", /listening/i, "server-everything");
  return port;
}

/**
 * The gateway as the image runs it: compiled JavaScript (tsc -p tsconfig.build.json into .cache/), not
 * the TypeScript sources through Node's type stripping (which costs memory the image never pays).
 * Falls back to the sources when the build fails.
 */
function gatewayCommand(): string[] {
  const out = join(ROOT, ".cache", "bench-dist");
  try {
    execFileSync(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(ROOT, "tsconfig.build.json"), "--outDir", out], { stdio: "pipe" });
    const runner = join(out, "run-gateway.mjs");
    writeFileSync(runner, 'import { run } from "./cli/src/commands/gateway.js";\nprocess.exitCode = await run(process.argv.slice(3));\n');
    return [runner];
  } catch {
    process.stderr.write("bench: compiling failed; running the gateway from its TypeScript sources\n");
    return [join(ROOT, "cli/bin/mcp-bastion.js")];
  }
}

async function startGateway(upstreamPort: number, dir: string): Promise<{ port: number; adminPort: number; proc: ChildProcess; audit: { lines: number } }> {
  mkdirSync(join(dir, "keys"), { recursive: true });
  writeFileSync(join(dir, "keys", "bench"), KEY);
  const cfg = {
    version: 1,
    server: { namespace: "bench", name: "everything" },
    listen: { host: "127.0.0.1", port: 0, adminPort: 0 },
    publicUrl: "http://127.0.0.1/mcp",
    upstream: { transport: "streamable-http", url: `http://127.0.0.1:${upstreamPort}/mcp` },
    auth: { apiKeys: { dir: join(dir, "keys") } },
    authorization: { rules: [{ name: "bench", clients: { apiKeys: ["bench"] }, tools: { allow: ["echo", "get-*"], deny: ["get-env"] } }] },
    limits: {
      // High enough never to trip, so the limiter runs its full path on every call.
      perClient: { requestsPerMinute: 60_000_000, burst: 1_000_000 },
      perTool: [{ tool: "echo", requestsPerMinute: 60_000_000, burst: 1_000_000 }],
      maxConcurrentRequests: 256,
      maxRequestBytes: 1_048_576,
      requestTimeoutSeconds: 30,
      toolTimeouts: [{ tool: "echo", timeoutSeconds: 10 }],
      mode: "divided",
      replicas: 1,
    },
    tools: { pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: true },
    audit: { redactKeys: ["password"] },
  };
  writeFileSync(join(dir, "gateway.json"), JSON.stringify(cfg));
  const p = spawn(process.execPath, [...gatewayCommand(), "gateway", "--config", join(dir, "gateway.json")], {
    stdio: ["ignore", "pipe", "pipe"],
    // BENCH_PROFILE=DIR writes a V8 CPU profile of the gateway there (open it in Chrome DevTools).
    env: process.env.BENCH_PROFILE ? { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` } : process.env,
  });
  children.push(p);
  const audit = { lines: 0 };
  p.stdout!.on("data", (d: Buffer) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) audit.lines++;
  });
  const m = await waitOutput(p, "stderr", /"port":(\d+),"adminPort":(\d+)/, "gateway");
  const adminPort = Number(m[2]);
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => http.get(`http://127.0.0.1:${adminPort}/readyz`, (res) => r(res.resume() && res.statusCode === 200)).on("error", () => r(false)));
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port: Number(m[1]), adminPort, proc: p, audit };
}

/**
 * The floor for any Node.js proxy on this machine: 20 lines of node:http, keep-alive upstream, no
 * checks at all. The gateway's overhead minus this one is what its features cost.
 */
const BARE_PROXY = `
import http from "node:http";
const [listenPort, upPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const pass = ["accept", "mcp-session-id", "mcp-protocol-version"];
http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const headers = { "content-type": "application/json", "content-length": body.length };
    for (const k of pass) if (req.headers[k] !== undefined) headers[k] = req.headers[k];
    const up = http.request({ agent, host: "127.0.0.1", port: upPort, path: req.url, method: req.method, headers }, (ur) => {
      const h = {};
      for (const k of ["content-type", "mcp-session-id", "cache-control"]) if (ur.headers[k] !== undefined) h[k] = ur.headers[k];
      res.writeHead(ur.statusCode, h);
      ur.pipe(res);
    });
    up.on("error", () => res.destroy());
    up.end(body);
  });
}).listen(listenPort, "127.0.0.1", () => process.stderr.write("listening\\n"));
`;

async function startBareProxy(upstreamPort: number, dir: string): Promise<number> {
  const port = await freePort();
  writeFileSync(join(dir, "bare-proxy.mjs"), BARE_PROXY);
  const p = spawn(process.execPath, [join(dir, "bare-proxy.mjs"), String(port), String(upstreamPort)], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(p);
  bareProxyPid = p.pid!;
  await waitOutput(p, "stderr", /listening/, "bare node proxy");
  return port;
}

let bareProxyPid = 0;
let nginxPid = 0;
async function startNginx(upstreamPort: number, dir: string): Promise<number> {
  const out = execFileSync(join(ROOT, "hack/deps-gateway.sh"), ["nginx"], { stdio: ["ignore", "pipe", "inherit"] }).toString();
  const bin = /^nginx=(.+)$/m.exec(out)?.[1];
  if (!bin) throw new Error("hack/deps-gateway.sh did not print the nginx path");
  const port = await freePort();
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream everything { server 127.0.0.1:${upstreamPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://everything;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
    }
  }
}`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const p = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(p);
  nginxPid = p.pid!;
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => http.get(`http://127.0.0.1:${port}/`, (res) => r(!!res.resume())).on("error", () => r(false)));
    if (ok) return port;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nginx did not start: ${readFileSync(join(dir, "nginx-error.log"), "utf8").slice(-500)}`);
}

// ---------------------------------------------------------------- load

interface Target {
  name: string;
  port: number;
  /** issue 11: "2026" sends stateless 2026-07-28 requests (no session); default: a 2025 session. */
  era?: "2026";
}

function post(agent: http.Agent, port: number, headers: Record<string, string>, body: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: "127.0.0.1", port, path: "/mcp", method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const BASE_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${KEY}` };

/** initialize + notifications/initialized: returns the headers every call of this session carries. */
async function openSession(agent: http.Agent, port: number): Promise<Record<string, string>> {
  const init = await post(agent, port, BASE_HEADERS, JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } } }));
  const sid = init.headers["mcp-session-id"];
  if (init.status !== 200 || typeof sid !== "string") throw new Error(`initialize failed on port ${port}: ${init.status}`);
  const h = { ...BASE_HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" };
  await post(agent, port, h, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
  return h;
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  n: number;
}

/** The headers of a 2026-07-28 tools/call (no session: every request carries its metadata). */
const MODERN_HEADERS = { ...BASE_HEADERS, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo" };
const MODERN_META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "bench", version: "1" } };

async function load(t: Target, conns: number, mode: { requests: number } | { seconds: number }): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const headers = t.era === "2026" ? MODERN_HEADERS : await openSession(agent, t.port);
  const meta = t.era === "2026" ? { _meta: MODERN_META } : {};
  let next = 1;
  const call = () => post(agent, t.port, headers, JSON.stringify({ jsonrpc: "2.0", id: next++, method: "tools/call", params: { name: "echo", arguments: { message: "hello benchmark" }, ...meta } }));
  // Warm up (JIT, keep-alive sockets, the gateway's caches).
  for (let i = 0; i < 300; i++) {
    const r = await call();
    if (r.status !== 200 || !r.text.includes("Echo: hello benchmark")) throw new Error(`${t.name}: unexpected answer ${r.status} ${r.text.slice(0, 200)}`);
  }
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  const deadline = "seconds" in mode ? Date.now() + mode.seconds * 1000 : Number.POSITIVE_INFINITY;
  let remaining = "requests" in mode ? mode.requests : Number.POSITIVE_INFINITY;
  const worker = async () => {
    while (remaining-- > 0 && Date.now() < deadline) {
      const s = process.hrtime.bigint();
      const r = await call();
      lat.push(Number(process.hrtime.bigint() - s) / 1000);
      if (r.status !== 200) throw new Error(`${t.name}: HTTP ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: conns }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return { rps: lat.length / secs, p50: q(0.5), p99: q(0.99), n: lat.length };
}

// ---------------------------------------------------------------- gateway internals

async function phases(adminPort: number): Promise<Record<string, { s: number; n: number }>> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`http://127.0.0.1:${adminPort}/metrics`, (res) => {
      let b = "";
      res.on("data", (d) => {
        b += d;
      });
      res.on("end", () => resolve(b));
    }).on("error", reject);
  });
  const out: Record<string, { s: number; n: number }> = {};
  for (const m of text.matchAll(/mcp_gateway_phase_(seconds|count)_total\{phase="(\w+)"[^}]*\} ([0-9.e+-]+)/g)) {
    const e = out[m[2]!] ?? { s: 0, n: 0 };
    out[m[2]!] = e;
    if (m[1] === "seconds") e.s = Number(m[3]);
    else e.n = Number(m[3]);
  }
  return out;
}

/** CPU seconds (user + system) used so far by a process and its children's threads, from /proc. */
function cpuSeconds(pid: number): number {
  const read = (p: number) => {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
    } catch {
      return 0;
    }
  };
  let total = read(pid);
  try {
    for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) total += read(Number(c));
  } catch {
    // no children file: the process alone
  }
  return total;
}

function rssMb(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

// ---------------------------------------------------------------- main

const dir = join(tmpdir(), `mcp-bastion-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
const upstream = await startDirect();
const gw = await startGateway(upstream, dir);
const nginx = await startNginx(upstream, dir);
const bare = await startBareProxy(upstream, dir);
const targets: Target[] = [
  { name: "direct", port: upstream },
  { name: "gateway", port: gw.port },
  { name: "nginx", port: nginx },
  { name: "node", port: bare },
  { name: "gw-2026", port: gw.port, era: "2026" },
];
process.stdout.write(`gateway benchmark: tools/call echo on one session; 1 connection x ${LATENCY_REQUESTS} requests, 8 connections x ${THROUGHPUT_SECONDS} s\n`);

const results: Record<string, Record<number, Result>> = { direct: {}, gateway: {}, nginx: {}, node: {}, "gw-2026": {} };
const cpuPerRequest: Record<string, number> = {};
let before = await phases(gw.adminPort);
let after = before;
for (const conns of [1, 8]) {
  for (const t of targets) {
    const first = t.name === "gateway" && conns === 1;
    if (first) before = await phases(gw.adminPort);
    const pid = { gateway: gw.proc.pid!, "gw-2026": gw.proc.pid!, nginx: nginxPid, node: bareProxyPid, direct: upstreamPid }[t.name] ?? 0;
    const c0 = pid ? cpuSeconds(pid) : 0;
    results[t.name]![conns] = await load(t, conns, conns === 1 ? { requests: LATENCY_REQUESTS } : { seconds: THROUGHPUT_SECONDS });
    if (pid && conns === 1) cpuPerRequest[t.name] = ((cpuSeconds(pid) - c0) / (LATENCY_REQUESTS + 302)) * 1e6;
    if (first) after = await phases(gw.adminPort);
  }
}
const mem = rssMb(gw.proc.pid!);
if (process.env.BENCH_PROFILE) {
  gw.proc.kill("SIGTERM");
  await new Promise((r) => gw.proc.once("exit", r));
}

const pad = (s: string, n: number) => s.padStart(n);
const lines: string[] = [];
lines.push(`${"path".padEnd(8)} ${pad("conns", 5)} ${pad("req/s", 9)} ${pad("p50 µs", 8)} ${pad("p99 µs", 8)} ${pad("rps/direct", 10)} ${pad("Δp50 µs", 8)}`);
for (const conns of [1, 8]) {
  const d = results.direct![conns]!;
  for (const t of targets) {
    const r = results[t.name]![conns]!;
    lines.push(
      `${t.name.padEnd(8)} ${pad(String(conns), 5)} ${pad(r.rps.toFixed(0), 9)} ${pad(r.p50.toFixed(0), 8)} ${pad(r.p99.toFixed(0), 8)} ${pad(`${((r.rps / d.rps) * 100).toFixed(1)}%`, 10)} ${pad((r.p50 - d.p50).toFixed(0), 8)}`,
    );
  }
}
process.stdout.write(`\n${lines.join("\n")}\n`);
process.stdout.write(`\ngateway RSS after the run: ${mem.rss.toFixed(1)} MB (peak ${mem.peak.toFixed(1)} MB); audit lines written: ${gw.audit.lines}\n`);
process.stdout.write(
  `CPU per request at 1 connection (from /proc, 10 ms ticks): gateway ${cpuPerRequest.gateway?.toFixed(0)} µs (2026 client: ${cpuPerRequest["gw-2026"]?.toFixed(0)} µs), bare node proxy ${cpuPerRequest.node?.toFixed(0)} µs, nginx ${cpuPerRequest.nginx?.toFixed(0)} µs, server-everything itself ${cpuPerRequest.direct?.toFixed(0)} µs\n`,
);
process.stdout.write("\nwhere the gateway's time goes at 1 connection (mean per request, from its phase counters):\n");
for (const p of ["auth", "parse", "validate", "audit", "upstream"]) {
  const a = after[p];
  const b = before[p];
  if (!a || !b || a.n === b.n) continue;
  process.stdout.write(`  ${p.padEnd(9)} ${(((a.s - b.s) / (a.n - b.n)) * 1e6).toFixed(1).padStart(7)} µs${p === "upstream" ? "  (upstream answer, incl. server-everything)" : p === "validate" ? "  (rate limits + authorization + integrity + JSON Schema)" : ""}\n`);
}
process.stdout.write("\nthe same steps in isolation (CPU only, in-process, mean of 50,000):\n");
for (const s of await measureSteps()) process.stdout.write(`  ${(s.ns / 1000).toFixed(2).padStart(6)} µs  ${s.step}\n`);
const g1 = results.gateway![1]!;
const d1 = results.direct![1]!;
const g8 = results.gateway![8]!;
const d8 = results.direct![8]!;
process.stdout.write(
  `\ngoals: gateway adds ${(g1.p50 - d1.p50).toFixed(0)} µs at p50 (goal < 150; the bare node proxy adds ${(results.node![1]!.p50 - d1.p50).toFixed(0)} µs), keeps ${((g8.rps / d8.rps) * 100).toFixed(1)}% of direct throughput at 8 connections (goal >= 80%), RSS ${mem.rss.toFixed(0)} MB (goal < 120)\n`,
);
cleanup();
process.exit(0);
