// Reconcile benchmark against the local control plane (not a timed test): creates N McpServers
// (default 1,000; a list such as 1000,3000,10000 runs each size on a fresh control plane and prints the
// curve, which is where the knee shows) and prints the time until all are Reconciled, reconciles per second, API
// requests per reconcile, the writes of a full resync with nothing changed (goal 0), the operator's
// peak RSS (goal < 200 MB) and CPU share next to kube-apiserver's and etcd's (the goal is to be
// limited by the API server, not by the operator).
//
//   node bench/reconcile/main.ts [--servers N[,N...]] [--concurrency N] [--node-flags "..."] [--source] [--json]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KubeClient } from "../../operator/src/runtime/kube.ts";
import { readAuditEvents, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor } from "../../test/support/index.ts";
import { conditionsOf, installCrd, mcpServer, must, ROOT, spawnOperator } from "../../test/controller/helpers.ts";

/** The operator's V8 flags as the Helm chart sets them (charts/mcp-bastion/values.yaml `nodeOptions`). */
function chartNodeOptions(): string {
  const m = /^nodeOptions:\s*"([^"]*)"/m.exec(readFileSync(join(ROOT, "charts/mcp-bastion/values.yaml"), "utf8"));
  if (!m) throw new Error("charts/mcp-bastion/values.yaml has no nodeOptions line");
  return m[1]!;
}

function parse() {
  try {
    return parseArgs({
      options: {
        servers: { type: "string", default: "1000" },
        concurrency: { type: "string", default: "32" },
        // V8 sized as the chart sizes it (values.yaml nodeOptions, for its 256 MiB limit): without a cap, V8
        // on a big machine lets garbage pile up to ~400 MB before collecting, though only 50-80 MB are live;
        // inside a 256 MiB cgroup Node would pick an old space of ~64 MB, too small for 1,000 servers.
        // "" = Node defaults.
        "node-flags": { type: "string", default: chartNodeOptions() },
        // Run the operator compiled by tsc, as the image does (Node's type stripping alone costs ~18 MB RSS).
        source: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`bench/reconcile: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
const { values } = parse();
const SIZES = String(values.servers).split(",").map(Number);
const NS = "bench";
if (SIZES.some((n) => !Number.isInteger(n) || n < 1)) {
  process.stderr.write("bench/reconcile: --servers must be a positive whole number or a comma-separated list of them\n");
  process.exit(2);
}

const CLK_TCK = 100; // Linux USER_HZ
/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

type Figures = Record<string, unknown> & { servers: number };

async function runOnce(N: number): Promise<Figures> {
  const cp = await startControlPlane({ auditLog: true });
  try {
    await installCrd(cp);
    await must(cp, ["create", "namespace", NS]);
    const nodeFlags = (values["node-flags"] ?? "").split(" ").filter(Boolean);
    let compiledMain: string | undefined;
    if (!values.source) {
      const outDir = join(ROOT, ".cache", "bench-dist");
      execFileSync(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", join(ROOT, "tsconfig.build.json"), "--outDir", outDir], { stdio: "inherit" });
      compiledMain = join(outDir, "cli", "src", "main.js");
    }
    const op = await spawnOperator(
      cp.kubeconfigPath,
      ["--leader-elect=false", `--concurrency=${values.concurrency}`, "--resync-period=3600", "--log-level=info"],
      nodeFlags,
      compiledMain,
    );
    const opPid = op.child.pid as number;
    const cpPids = readFileSync(join(cp.dir, "pgids"), "utf8").trim().split(" ").map(Number);
    const client = await KubeClient.create({ kubeconfigPath: cp.kubeconfigPath, userAgent: "bench", maxSockets: 32 });

    const cpu0 = new Map([opPid, ...cpuPids()].map((p) => [p, cpuSeconds(p)]));
    function cpuPids() {
      return cpPids;
    }
    log(`creating ${N} McpServers`);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < N) {
          const i = next++;
          await client.create(
            { apiVersion: "mcp.bastion.dev/v1alpha1", plural: "mcpservers", namespace: NS },
            mcpServer(`s-${String(i).padStart(4, "0")}`, NS),
          );
        }
      }),
    );
    const tCreated = performance.now();
    log(`created in ${((tCreated - t0) / 1000).toFixed(1)} s; waiting for Reconciled`);
    // Watch progress through the operator's own gauge (cheap), then confirm once from the API server:
    // polling a list of 1,000 full objects several times a second would load the API server we measure.
    // Progress every 30 s (count, and who used the CPU since the last line): a long run shows where it stalls.
    let lastLog = performance.now();
    let lastCpu = new Map([...cpu0.keys()].map((p) => [p, cpuSeconds(p)]));
    // Per-reconcile latency over time (the histogram's sum and count since the last line), queue depth and
    // heap: a knee shows as latency or heap that grows with the count, a queue that stops draining, or relists.
    let lastRec = { sum: 0, count: 0 };
    const loads: number[] = [];
    await waitFor(
      `${N} Reconciled`,
      async () => {
        // An operator that died (out of heap at its V8 flags, say) ends the run with what it said last,
        // instead of a poll that waits for the deadline.
        if (op.child.exitCode !== null || op.child.signalCode !== null) {
          const last = op.logs
            .slice(-8)
            .map((l) => JSON.stringify(l).slice(0, 300))
            .join("\n  ");
          throw new Error(`the operator exited (${op.child.exitCode ?? op.child.signalCode}) while reconciling ${N} servers; its last lines:\n  ${last}`);
        }
        const n = await op.metric("mcp_bastion_servers", { condition: "Reconciled" }).catch(() => -1);
        if (n < 0) return false;
        loads.push(loadavg()[0] ?? 0);
        const now = performance.now();
        if (now - lastLog > 30_000) {
          const cpu = new Map([...cpu0.keys()].map((p) => [p, cpuSeconds(p)]));
          const share = [...cpu.keys()].map(
            (p) => `${p === opPid ? "operator" : comm(p)} ${((((cpu.get(p) ?? 0) - (lastCpu.get(p) ?? 0)) / ((now - lastLog) / 1000)) * 100).toFixed(0)}%`,
          );
          const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${opPid}/status`, "utf8"))?.[1];
          const rec = {
            sum: await op.metric("mcp_bastion_reconcile_duration_seconds_sum"),
            count: await op.metric("mcp_bastion_reconcile_duration_seconds_count"),
          };
          const perRec = rec.count > lastRec.count ? (((rec.sum - lastRec.sum) / (rec.count - lastRec.count)) * 1000).toFixed(0) : "-";
          const depth = await op.metric("mcp_bastion_workqueue_depth");
          const heap = (await op.metric("mcp_bastion_operator_nodejs_heap_size_used_bytes")) / 1024 / 1024;
          const relists = (await op.metric("mcp_bastion_informer_lists_total")) - (await op.metric("mcp_bastion_informer_lists_total", { reason: "initial" }));
          log(
            `${n}/${N} Reconciled after ${((now - t0) / 1000).toFixed(0)} s; ${rec.count - lastRec.count} reconciles at ${perRec} ms each, queue ${depth}, relists ${relists}; CPU ${share.join(", ")}; operator RSS ${(Number(rss) / 1024).toFixed(0)} MB, heap ${heap.toFixed(0)} MB; load ${loadavg()[0]!.toFixed(1)}`,
          );
          lastRec = rec;
          lastLog = now;
          lastCpu = cpu;
        }
        return n >= N;
      },
      Math.max(15 * 60_000, N * 600),
      // Each poll scrapes /metrics, whose server gauge walks every cached McpServer: 4 polls a second
      // cost the operator 9% of its CPU at 1,000 servers (profile), which a real Prometheus never asks.
      1000,
    );
    const tReconciled = performance.now();
    const list = await client.list<{ metadata: { generation?: number }; status?: { conditions?: { type: string }[] } }>({
      apiVersion: "mcp.bastion.dev/v1alpha1",
      plural: "mcpservers",
      namespace: NS,
    });
    const confirmed = list.items.filter((s) => {
      const c = conditionsOf(s as never).Reconciled;
      return c?.status === "True" && c.observedGeneration === s.metadata.generation;
    }).length;
    if (confirmed !== N) throw new Error(`the operator counts ${N} Reconciled but the API server has ${confirmed}`);
    const wall = (tReconciled - t0) / 1000;
    const cpu1 = new Map([...cpu0.keys()].map((p) => [p, cpuSeconds(p)]));
    await waitFor(
      "operator idle",
      async () => (await op.metric("mcp_bastion_workqueue_depth")) === 0 && (await op.metric("mcp_bastion_workqueue_in_flight")) === 0,
      Math.max(120_000, N * 60),
    );

    const reconciles = await op.metric("mcp_bastion_reconcile_total");
    const requests = await op.metric("mcp_bastion_api_requests");
    const watches = await op.metric("mcp_bastion_api_requests", { verb: "WATCH" });
    const lists = await op.metric("mcp_bastion_api_requests", { verb: "LIST" });
    const opUA = `mcp-bastion-operator/${op.identity}`;
    const opWrites = () => readAuditEvents(cp.auditLogPath as string).filter((e) => e.stage === "ResponseComplete" && e.userAgent === opUA);
    const writesFirst = opWrites().length;

    // Full resync with nothing changed.
    log("full resync (SIGHUP) with nothing changed");
    const before = reconciles;
    const writesBefore = writesFirst;
    const tr0 = performance.now();
    process.kill(opPid, "SIGHUP");
    await waitFor(
      "resync done",
      async () =>
        (await op.metric("mcp_bastion_reconcile_total")) >= before + N &&
        (await op.metric("mcp_bastion_workqueue_depth")) === 0 &&
        (await op.metric("mcp_bastion_workqueue_in_flight")) === 0,
      Math.max(300_000, N * 100),
      250,
    );
    const resyncSeconds = (performance.now() - tr0) / 1000;
    const resyncWrites = opWrites().length - writesBefore;

    const figures = {
      servers: N,
      createSeconds: +((tCreated - t0) / 1000).toFixed(2),
      allReconciledSeconds: +wall.toFixed(2),
      reconcilesPerSecond: +(reconciles / wall).toFixed(1),
      serversPerSecond: +(N / wall).toFixed(1),
      reconciles,
      apiRequestsPerReconcile: +((requests - watches - lists) / reconciles).toFixed(2),
      // Per server too: a reconcile that is skipped (an echo of the operator's own write) lowers the count
      // of reconciles, not the work, so requests per reconcile alone can rise while nothing got worse.
      apiRequestsPerServer: +((requests - watches - lists) / N).toFixed(2),
      apiRequests: { total: requests, watch: watches, list: lists },
      writesPerServer: +(writesFirst / N).toFixed(2),
      resyncSeconds: +resyncSeconds.toFixed(2),
      resyncWrites,
      operatorPeakRssMb: +peakRssMb(opPid).toFixed(1),
      operatorHeapUsedMb: +((await op.metric("mcp_bastion_operator_nodejs_heap_size_used_bytes")) / 1024 / 1024).toFixed(1),
      loadAverage1m: +(loadavg()[0] ?? 0).toFixed(1),
      loadAverage1mRange: [+Math.min(...loads).toFixed(1), +Math.max(...loads).toFixed(1)],
      // CPU seconds per server: what a server costs each process, whatever else ran on the machine (on a
      // loaded machine the wall time mostly says how much CPU the processes were given, this says what they used).
      cpuMsPerServer: Object.fromEntries(
        [...cpu0.keys()].map((p) => [p === opPid ? "operator" : comm(p), +((((cpu1.get(p) ?? 0) - (cpu0.get(p) ?? 0)) / N) * 1000).toFixed(1)]),
      ),
      cpuSharePercentOfWall: Object.fromEntries(
        [...cpu0.keys()].map((p) => [p === opPid ? "operator" : comm(p), +((((cpu1.get(p) ?? 0) - (cpu0.get(p) ?? 0)) / wall) * 100).toFixed(1)]),
      ),
    };
    await op.stop();
    client.close();
    if (values.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
    else {
      const f = figures;
      process.stdout.write(
        [
          `reconcile benchmark: ${f.servers} McpServers against local etcd + kube-apiserver (${values.concurrency} workers)`,
          `  all Reconciled after        ${f.allReconciledSeconds} s (creating them took ${f.createSeconds} s)`,
          `  reconciles per second       ${f.reconcilesPerSecond} (${f.reconciles} reconciles, ${f.serversPerSecond} servers/s)`,
          `  API requests per reconcile  ${f.apiRequestsPerReconcile}, per server ${f.apiRequestsPerServer} (plus ${f.apiRequests.list} lists and ${f.apiRequests.watch} watches in total)`,
          `  writes per server           ${f.writesPerServer}`,
          `  full resync, nothing changed: ${f.resyncWrites} writes in ${f.resyncSeconds} s   goal 0`,
          `  operator peak RSS           ${f.operatorPeakRssMb} MB   goal < 300 MB at 10,000 (JS heap in use at the end: ${f.operatorHeapUsedMb} MB; ${compiledMain ? "compiled JS" : "TypeScript sources"}; node flags: ${nodeFlags.join(" ") || "defaults"})`,
          `  CPU (% of one core, during the reconcile phase): ${Object.entries(f.cpuSharePercentOfWall)
            .map(([k, v]) => `${k} ${v}%`)
            .join(", ")}`,
          `  CPU per server (ms, from creation until all Reconciled): ${Object.entries(f.cpuMsPerServer)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}`,
          `  machine load average (1 min): ${f.loadAverage1mRange[0]}-${f.loadAverage1mRange[1]} while reconciling, ${f.loadAverage1m} at the end, on ${cpus().length} cores (other processes compete when it exceeds the core count)`,
        ].join("\n") + "\n",
      );
    }
    return figures;
  } finally {
    await cp.stop();
  }
}

const curve: Figures[] = [];
for (const n of SIZES) curve.push(await runOnce(n));
if (curve.length > 1) {
  // The knee: where time per server, CPU per server, requests per reconcile or memory per server stop being flat.
  // On a shared machine read the CPU columns (what each process used per server), not the wall time.
  const rows = curve.map((f) => {
    const g = f as unknown as {
      servers: number;
      allReconciledSeconds: number;
      apiRequestsPerReconcile: number;
      apiRequestsPerServer: number;
      resyncWrites: number;
      operatorPeakRssMb: number;
      operatorHeapUsedMb: number;
      loadAverage1mRange: [number, number];
      cpuMsPerServer: Record<string, number>;
    };
    const cpu = g.cpuMsPerServer;
    return [
      String(g.servers).padStart(7),
      g.allReconciledSeconds.toFixed(0).padStart(9),
      ((g.allReconciledSeconds / g.servers) * 1000).toFixed(1).padStart(9),
      `${g.apiRequestsPerReconcile.toFixed(1)} / ${g.apiRequestsPerServer.toFixed(1)}`.padStart(14),
      String(g.resyncWrites).padStart(8),
      g.operatorPeakRssMb.toFixed(0).padStart(6),
      g.operatorHeapUsedMb.toFixed(0).padStart(7),
      `${cpu.operator ?? "-"} / ${cpu["kube-apiserver"] ?? "-"} / ${cpu.etcd ?? "-"}`.padStart(28),
      `${g.loadAverage1mRange[0]}-${g.loadAverage1mRange[1]}`.padStart(11),
    ].join(" ");
  });
  process.stdout.write(
    `\ncurve (node flags: ${values["node-flags"] || "defaults"})\nservers  all Rec. s  ms/server  req/rec/server  resync w  RSS MB  heap MB  CPU ms/server op/apiserver/etcd  load (1 min)\n${rows.join("\n")}\n`,
  );
}
