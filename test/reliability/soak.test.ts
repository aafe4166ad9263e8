// The soak: mixed valid and hostile traffic through the gateway while McpServers are created,
// updated and deleted on the real control plane with the real operator running. One minute in
// `make test`, ten with RELIABILITY_LONG=1 (or SOAK_SECONDS=N). Valid clients must see zero errors,
// every hostile request must be refused, the fleet must converge at the end, and neither the
// gateway nor the operator may show a memory growth trend (RSS printed at start and end).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { parse } from "yaml";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { mcpServer, type OperatorProcess, spawnOperator } from "../controller/helpers.ts";
import { baseConfig, type Child, startEverything, tempDir, writeKeys } from "../gateway/helpers.ts";
import { Figures, rssMb } from "./figures.ts";
import { waitConverged } from "./fleet.ts";
import { type GatewayProcess, httpRequest, STACK_TRACE, startGateway } from "./gateway.ts";
import { CRD_FILE, ensureNamespace, installCrd, type Kube, kubeClient, MCP_PATH } from "./kube.ts";

const figures = new Figures(import.meta.url);
after(() => figures.flush());

const SECONDS = Number(process.env.SOAK_SECONDS ?? (process.env.RELIABILITY_LONG === "1" ? 600 : 60));
const NS = "soak";
const VALID_CLIENTS = 4;
const KEYS: Record<string, string> = { attacker: "attacker-Zq3Wx8Ec5Rv2Tb7Yn4Um" };
for (let i = 0; i < VALID_CLIENTS; i++) KEYS[`client${i}`] = `client${i}-${"Kp9Lm2Nq6Rs4Tv8Wx1Yz".slice(i)}${i}`;

let cp: ControlPlane;
let kube: Kube;
let op: OperatorProcess;
let upstream: Child;
let gw: GatewayProcess;

before(async () => {
  // kube-controller-manager: deleted McpServers' children go through the garbage collector.
  cp = await startControlPlane({ controllerManager: true });
  kube = kubeClient(cp.kubeconfigPath);
  await installCrd(kube, parse(readFileSync(CRD_FILE, "utf8")));
  await ensureNamespace(kube, NS);
  op = await spawnOperator(cp.kubeconfigPath, [
    "--leader-election-namespace=default",
    "--lease-duration=60",
    `--log-level=${process.env.SOAK_OPERATOR_LOG_LEVEL ?? "info"}`,
  ]);
  upstream = await startEverything("streamableHttp");
  const keysDir = tempDir("rel-soak-keys");
  writeKeys(keysDir, KEYS);
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: `http://127.0.0.1:${upstream.port}/mcp` }, auth: { apiKeys: { dir: keysDir } } });
  cfg.authorization.rules = [
    { name: "clients", clients: { apiKeys: Object.keys(KEYS).filter((k) => k !== "attacker") }, tools: { allow: ["echo", "get-sum"], deny: [] } },
    { name: "attacker", clients: { apiKeys: ["attacker"] }, tools: { allow: ["echo"], deny: [] } },
  ];
  cfg.limits.perClient = { requestsPerMinute: 600_000, burst: 10_000 };
  cfg.limits.maxRequestBytes = 256 * 1024;
  gw = await startGateway(cfg);
});

after(async () => {
  await gw?.stop();
  await upstream?.stop();
  await op?.stop("SIGKILL");
  kube?.close();
  await cp?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A valid client: a session, then echo and get-sum in a loop; every answer checked. */
async function validClient(key: string, until: () => boolean, stats: { ok: number; errors: string[] }): Promise<void> {
  const c = new Client({ name: key, version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEYS[key]}` } } }));
  for (let i = 0; !until(); i++) {
    try {
      if (i % 2 === 0) {
        const r = await c.callTool({ name: "echo", arguments: { message: `${key} ${i}` } });
        if (!JSON.stringify(r.content).includes(`${key} ${i}`)) stats.errors.push(`${key}: wrong echo ${JSON.stringify(r.content).slice(0, 80)}`);
        else stats.ok++;
      } else {
        const r = await c.callTool({ name: "get-sum", arguments: { a: i, b: 1 } });
        if (!JSON.stringify(r.content).includes(String(i + 1))) stats.errors.push(`${key}: wrong sum ${JSON.stringify(r.content).slice(0, 80)}`);
        else stats.ok++;
      }
    } catch (e) {
      stats.errors.push(`${key}: ${String(e).slice(0, 160)}`);
    }
  }
  await c.close();
}

/** Hostile requests, round-robin; each must be refused cleanly. */
async function attacker(until: () => boolean, stats: { sent: number; problems: string[] }): Promise<void> {
  const h = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const init = await httpRequest(gw.base, {
    headers: { ...h, authorization: `Bearer ${KEYS.attacker}` },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "a", version: "1" } },
    }),
  });
  const sid = String(init.headers["mcp-session-id"]);
  const auth = { ...h, authorization: `Bearer ${KEYS.attacker}`, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" };
  const call = (name: string, args: unknown) => JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name, arguments: args } });
  const attacks: (() => Promise<{ status: number; body: string; rpcError?: number }>)[] = [
    () => httpRequest(gw.base, { headers: h, body: call("echo", { message: "x" }) }),
    () => httpRequest(gw.base, { headers: { ...h, authorization: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0." }, body: call("echo", { message: "x" }) }),
    () => httpRequest(gw.base, { headers: auth, body: "{not json" }),
    () => httpRequest(gw.base, { headers: auth, body: `[${call("echo", { message: "x" })}]` }),
    () => httpRequest(gw.base, { headers: auth, body: call("get-env", {}) }),
    () => httpRequest(gw.base, { headers: auth, body: call("echo", { message: 42 }) }),
    () => httpRequest(gw.base, { headers: auth, body: call("ECHO\u200B", { message: "x" }) }),
    () =>
      httpRequest(gw.base, {
        headers: auth,
        body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x","d":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}}}`,
      }),
    () => httpRequest(gw.base, { headers: auth, body: `{"x":"${"a".repeat(300 * 1024)}"}` }),
    () => httpRequest(gw.base, { headers: { ...auth, "mcp-session-id": "not-a-session" }, body: call("echo", { message: "x" }) }),
  ];
  for (let i = 0; !until(); i++) {
    const r = await attacks[i % attacks.length]!();
    stats.sent++;
    if (!(r.status >= 400 || r.rpcError !== undefined))
      stats.problems.push(`attack ${i % attacks.length} not refused: HTTP ${r.status} ${r.body.slice(0, 100)}`);
    if (STACK_TRACE.test(r.body)) stats.problems.push(`attack ${i % attacks.length}: stack trace`);
    if (Object.values(KEYS).some((k) => r.body.includes(k))) stats.problems.push(`attack ${i % attacks.length}: a key came back`);
    await sleep(5);
  }
}

/** Creates, updates and deletes McpServers on the control plane without pause. */
async function churn(until: () => boolean, stats: { creates: number; updates: number; deletes: number; failures: string[] }): Promise<void> {
  const live: string[] = [];
  for (let i = 0; !until(); i++) {
    const name = `s-${i}`;
    const c = await kube.req("POST", `${MCP_PATH}/namespaces/${NS}/mcpservers`, mcpServer(name, NS));
    if (c.status === 201) {
      stats.creates++;
      live.push(name);
    } else stats.failures.push(`create ${name}: HTTP ${c.status}`);
    if (live.length > 3) {
      const target = live[Math.floor(live.length / 2)]!;
      const u = await kube.req(
        "PATCH",
        `${MCP_PATH}/namespaces/${NS}/mcpservers/${target}`,
        { spec: { replicas: 1 + (i % 2), env: [{ name: "ROUND", value: String(i) }] } },
        "application/merge-patch+json",
      );
      if (u.status === 200) stats.updates++;
      else stats.failures.push(`update ${target}: HTTP ${u.status}`);
    }
    if (live.length > 15) {
      const gone = live.shift()!;
      const d = await kube.req("DELETE", `${MCP_PATH}/namespaces/${NS}/mcpservers/${gone}`);
      if (d.status === 200 || d.status === 202) stats.deletes++;
      else stats.failures.push(`delete ${gone}: HTTP ${d.status}`);
    }
    await sleep(200);
  }
}

/** Whether kube-controller-manager (the garbage collector) still runs, and the end of its log. */
function controllerManagerState(): string {
  try {
    const pids = readFileSync(`${cp.dir}/pgids`, "utf8").trim().split(" ").map(Number);
    const kcm = pids[2];
    let alive = false;
    try {
      if (kcm) process.kill(kcm, 0);
      alive = kcm !== undefined;
    } catch {
      alive = false;
    }
    const log = readFileSync(`${cp.dir}/kube-controller-manager.log`, "utf8").trimEnd().split("\n").slice(-8).join("\n");
    return `kube-controller-manager ${alive ? "running" : "not running"}; its log ends:\n${log}`;
  } catch (e) {
    return `kube-controller-manager state unknown: ${String(e)}`;
  }
}

/** Median of the first and last thirds of the samples after a warm-up tenth: a trend, not noise. */
export function trend(samples: number[]): { start: number; end: number } {
  const s = samples.slice(Math.floor(samples.length / 10));
  const third = Math.max(1, Math.floor(s.length / 3));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  return { start: med(s.slice(0, third)), end: med(s.slice(-third)) };
}

test(`soak: ${SECONDS} s of mixed traffic while McpServers churn`, async () => {
  const t0 = Date.now();
  const done = () => Date.now() - t0 > SECONDS * 1000;
  const valid = { ok: 0, errors: [] as string[] };
  const hostile = { sent: 0, problems: [] as string[] };
  const cps = { creates: 0, updates: 0, deletes: 0, failures: [] as string[] };
  const gwRss: number[] = [];
  const opRss: number[] = [];
  const rssStart = { gw: rssMb(gw.pid), op: rssMb(op.child.pid!) };
  const sampler = setInterval(() => {
    gwRss.push(rssMb(gw.pid));
    opRss.push(rssMb(op.child.pid!));
  }, 1_000);
  try {
    await Promise.all([
      ...Object.keys(KEYS)
        .filter((k) => k !== "attacker")
        .map((k) => validClient(k, done, valid)),
      attacker(done, hostile),
      churn(done, cps),
    ]);
  } finally {
    clearInterval(sampler);
  }
  const rssEnd = { gw: rssMb(gw.pid), op: rssMb(op.child.pid!) };
  const g = trend(gwRss);
  const o = trend(opRss);
  const rate = (valid.ok / SECONDS).toFixed(0);
  figures.figure("duration", `${SECONDS} s`);
  figures.figure("valid calls", `${valid.ok} (${rate}/s), ${valid.errors.length} errors`);
  figures.figure("hostile requests", `${hostile.sent}, ${hostile.problems.length} not refused cleanly`);
  figures.figure(
    "gateway RSS",
    `start ${rssStart.gw.toFixed(0)} MB, end ${rssEnd.gw.toFixed(0)} MB (trend: median ${g.start.toFixed(0)} -> ${g.end.toFixed(0)} MB)`,
  );
  figures.figure(
    "operator RSS",
    `start ${rssStart.op.toFixed(0)} MB, end ${rssEnd.op.toFixed(0)} MB (trend: median ${o.start.toFixed(0)} -> ${o.end.toFixed(0)} MB)`,
  );
  let converge: number;
  try {
    // Deleted servers' children go through kube-controller-manager's garbage collector, whose API
    // budget (20 requests/s by default) it shares with the Deployment and ReplicaSet controllers:
    // after a long soak it has a backlog to work off.
    converge = await waitConverged(kube, NS, Math.max(120, SECONDS / 2) * 1000);
  } catch (e) {
    // Say what the operator did with the servers left over (their names are in the problems).
    const left = [...new Set([...(e as Error).message.matchAll(/\/(s-\d+)/g)].map((m) => m[1]!))].slice(0, 3);
    const lines = op.logs.filter((l) => left.some((n) => JSON.stringify(l).includes(`${NS}/${n}"`))).slice(-20);
    figures.failed("soak: the fleet converges after the churn", e);
    throw new Error(
      `${(e as Error).message}\noperator log about ${left.join(", ")}:\n${lines.map((l) => JSON.stringify(l)).join("\n")}\n${controllerManagerState()}`,
    );
  }
  figures.scenario("soak: the fleet converges after the churn", true);
  figures.figure(
    "McpServers",
    `${cps.creates} created, ${cps.updates} updated, ${cps.deletes} deleted; converged ${(converge / 1000).toFixed(2)} s after the churn stopped`,
  );

  const checks: [string, boolean][] = [
    // Served throughout: at least one good answer per second across the clients (a stalled gateway gives
    // none; on a machine loaded 3x its cores a call takes tens of ms). Throughput itself is a figure, not a check.
    ["zero errors for valid clients", valid.errors.length === 0 && valid.ok >= SECONDS],
    ["every hostile request refused cleanly", hostile.problems.length === 0 && hostile.sent > SECONDS],
    ["control plane churn without a failed call", cps.failures.length === 0 && cps.deletes > 0],
    ["gateway and operator still up", gw.alive() && op.child.exitCode === null],
    // Noise allowance: GC timing moves RSS by tens of MB; a leak grows without bound.
    ["no gateway memory growth trend", g.end <= g.start * 1.25 + 20],
    ["no operator memory growth trend", o.end <= o.start * 1.25 + 20],
  ];
  for (const [name, ok] of checks) figures.scenario(`soak: ${name}`, ok);
  assert.deepEqual(valid.errors.slice(0, 5), []);
  assert.deepEqual(hostile.problems.slice(0, 5), []);
  assert.deepEqual(cps.failures.slice(0, 5), []);
  assert.deepEqual(
    checks.filter(([, ok]) => !ok).map(([n]) => n),
    [],
  );
});
