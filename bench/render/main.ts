// Renders 1,000 distinct McpServers in one process (every feature switched on in a share of them)
// and prints median and p99 ms per server, the total and the peak RSS, next to a bare cdk8s-plus-27
// Deployment + NetworkPolicy baseline measured in the same run, and where the time goes.
//   node bench/render/main.ts            (make bench-render)
// Goals (2-core machine): median < 1 ms/server, 1,000 in < 1.5 s, peak RSS < 250 MB.
import { createHash } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { App, Chart } from "cdk8s";
import * as kplus from "cdk8s-plus-27";
import { GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import type { McpServer, McpServerInput } from "../../operator/src/api/v1alpha1.ts";
import { computeChecklist, computeOptOuts } from "../../operator/src/render/checklist.ts";
import { gatewayConfig } from "../../operator/src/render/gateway-config.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { mesh } from "../../operator/src/render/mesh.ts";
import { networkPolicy } from "../../operator/src/render/network.ts";
import { externalSecrets } from "../../operator/src/render/secrets.ts";
import { service } from "../../operator/src/render/service.ts";
import { workload } from "../../operator/src/render/workload.ts";

const N = Number(process.env.BENCH_N ?? 1000);
const OPTIONS = { gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0" };

/** Server i: features switched on by residues, so every combination shows up across the set. */
function spec(i: number): McpServerInput {
  const istio = i % 3 === 0;
  const stdio = i % 4 === 1;
  const hash = createHash("sha256").update(String(i)).digest("hex");
  const auth: Record<string, unknown> = {};
  if (i % 2 === 0 || (!istio && i % 2 === 1 && i % 5 !== 0)) auth.apiKeys = { secretRef: { name: `keys-${i}` } };
  if (i % 2 === 1) auth.jwt = { issuer: "https://id.example.com", audiences: ["mcp"], ...(i % 4 === 3 ? { jwksSecretRef: { name: "jwks" } } : {}) };
  if (istio && i % 6 === 0) auth.mtls = { spiffeIds: [`spiffe://cluster.local/ns/agents/sa/client-${i}`] };
  return {
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: `server-${i}`, namespace: `team-${i % 17}`, uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` },
    spec: {
      image: i % 2 === 0 ? `registry.example/mcp/s${i}@sha256:${hash}` : `registry.example/mcp/s${i}:1.${i}`,
      ...(stdio
        ? { command: ["node", "/app/index.js"], args: [`--id=${i}`], transport: { type: "stdio" } }
        : { transport: { type: i % 5 === 0 ? "sse" : "streamable-http", port: 3000 + (i % 1000) } }),
      env:
        i % 3 === 1
          ? [
              { name: "LOG_LEVEL", value: "info" },
              { name: "ID", value: String(i) },
            ]
          : [],
      replicas: 1 + (i % 3),
      ...(i % 4 === 0 ? { resources: { requests: { cpu: "200m" }, limits: { memory: "1Gi" } } } : {}),
      auth,
      authorization: {
        rules: [
          { name: "readers", clients: { apiKeys: ["ci"], groups: ["readers"] }, tools: { allow: ["read_*", "list_*"], deny: ["delete_*"] } },
          ...(i % 2 === 0
            ? [{ name: "admins", clients: { subjects: [`admin-${i}`] }, tools: { allow: ["*"] }, resources: { allow: ["*"] }, prompts: { allow: ["*"] } }]
            : []),
        ],
      },
      limits: {
        perClient: { requestsPerMinute: 60 + i },
        perTool: i % 3 === 0 ? [{ tool: "search", requestsPerMinute: 10 }] : [],
        toolTimeouts: i % 4 === 0 ? [{ tool: "report", timeoutSeconds: 120 }] : [],
        ...(i % 8 === 0 ? { redis: { url: "redis://redis.shared.svc:6379/1" } } : {}),
      },
      tools: {
        pinned:
          i % 4 === 0
            ? [
                { name: "search", sha256: hash },
                { name: "read_file", sha256: hash.split("").reverse().join("") },
              ]
            : [],
        onDrift: i % 10 === 0 ? "Warn" : "Block",
        scanDescriptions: i % 11 !== 0,
      },
      secrets:
        i % 5 === 0
          ? [
              { name: "token", storeRef: { name: "vault", kind: "ClusterSecretStore" }, remoteRef: { key: `mcp/${i}`, property: "token" } },
              { name: "db", storeRef: { name: "aws" }, remoteRef: { key: `db/${i}` }, fileName: "password" },
            ]
          : [],
      volumes: i % 6 === 0 ? [{ name: "data", mountPath: "/data", persistentVolumeClaim: { claimName: `data-${i}` }, readOnly: i % 12 !== 0 }] : [],
      network: {
        ingress:
          i % 2 === 0 ? [{ namespaceSelector: { matchLabels: { team: "agents" } }, podSelector: { matchLabels: { "mcp.bastion.dev/client": "true" } } }] : [],
        egress: [
          ...(i % 2 === 0 ? [{ cidrs: ["10.20.0.0/16"], ports: [{ port: 5432 }] }] : []),
          ...(istio ? [{ hosts: ["api.github.com", `api${i}.example.com`], ports: [{ port: 443 }] }] : []),
        ],
      },
      mesh: { istio: { enabled: istio, mtlsMode: istio && i % 9 === 0 ? "PERMISSIVE" : "STRICT" } },
      audit: { redactKeys: i % 2 === 0 ? ["password", "query"] : [] },
      ...(!istio && i % 7 === 0 ? { tls: { secretRef: { name: `tls-${i}` } } } : {}),
    },
  } as McpServerInput;
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p99: at(0.99), total: ms.reduce((a, b) => a + b, 0), max: s[s.length - 1]! };
}
const f = (n: number, d = 3) => n.toFixed(d);

function baseline(i: number): unknown[] {
  const app = new App();
  const chart = new Chart(app, `b${i}`, { namespace: "bench", disableResourceNameHashes: true });
  const d = new kplus.Deployment(chart, "d", { metadata: { name: `base-${i}` }, replicas: 1 });
  d.addContainer({ image: `registry.example/base:${i}`, portNumber: 8443 });
  new kplus.NetworkPolicy(chart, "np", { metadata: { name: `base-${i}` }, selector: d });
  return chart.toJson();
}

function timeEach(n: number, fn: (i: number) => unknown): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

// Other processes on the machine show up as long tails (p99, total): say how busy it was.
const loadBefore = loadavg()[0]!;
const cpus = availableParallelism();

// ---- inputs (validation is measured too, but it is not part of rendering) ----
const tv = performance.now();
const servers: McpServer[] = [];
for (let i = 0; i < N; i++) {
  const r = validateMcpServer(spec(i));
  if (!r.ok) throw new Error(`bench spec ${i} invalid: ${r.errors.join("; ")}`);
  servers.push(r.value);
}
const validateMs = performance.now() - tv;

// ---- the renderer: one cold pass over all N, as the operator would at start ----
let objects = 0;
const counts = { istio: 0, stdio: 0, secrets: 0, pdb: 0, tls: 0, redis: 0, pinned: 0 };
const wall0 = performance.now();
const render = timeEach(N, (i) => {
  const r = renderMcpServer(servers[i]!, OPTIONS);
  objects += r.objects.length;
});
const wall = performance.now() - wall0;
const rssAfterPassMB = process.resourceUsage().maxRSS / 1024;
for (const s of servers) {
  if (s.spec.mesh.istio.enabled) counts.istio++;
  if (s.spec.transport.type === "stdio") counts.stdio++;
  if (s.spec.secrets.length) counts.secrets++;
  if (s.spec.replicas > 1) counts.pdb++;
  if (s.spec.tls) counts.tls++;
  if (s.spec.limits.redis) counts.redis++;
  if (s.spec.tools.pinned.length) counts.pinned++;
}

// ---- baseline: bare cdk8s-plus-27 Deployment + NetworkPolicy, same process ----
const base = timeEach(N, baseline);

// ---- where the time goes (each phase alone, over the same servers, after the pass above) ----
const phaseSynth = timeEach(N, (i) => {
  const s = servers[i]!;
  const app = new App();
  const chart = new Chart(app, s.metadata.name, { namespace: s.metadata.namespace, disableResourceNameHashes: true });
  workload(chart, { server: s, gatewayImage: OPTIONS.gatewayImage, configChecksum: "0", istio: s.spec.mesh.istio.enabled });
  service(chart, s);
  networkPolicy(chart, s);
  externalSecrets(chart, s);
  mesh(chart, s);
  return chart.toJson();
});
const phaseConfig = timeEach(N, (i) => {
  const c = gatewayConfig(servers[i]!);
  GatewayConfigSchema.parse(c);
  return createHash("sha256")
    .update(JSON.stringify(c, null, 2))
    .digest("hex");
});
const rendered = servers.map((s) => renderMcpServer(s, OPTIONS).objects);
const phaseChecklist = timeEach(N, (i) => [computeChecklist(servers[i]!, rendered[i]!), computeOptOuts(servers[i]!)]);
const warm = timeEach(N, (i) => renderMcpServer(servers[i]!, OPTIONS));

const r = stats(render);
const b = stats(base);
const w = stats(warm);
const rssMB = process.resourceUsage().maxRSS / 1024;
const goals = { median: r.median < 1, total: wall < 1500, rss: rssMB < 250 };

const lines = [
  `render: ${N} distinct McpServers, ${objects} objects (${f(objects / N, 1)} per server), node ${process.version}, ${process.arch}`,
  `  features: istio ${counts.istio}, stdio ${counts.stdio}, secrets ${counts.secrets}, replicas>1 ${counts.pdb}, tls ${counts.tls}, redis ${counts.redis}, pinned ${counts.pinned}`,
  `  cold pass:   median ${f(r.median)} ms/server, p99 ${f(r.p99)} ms, max ${f(r.max)} ms, total ${f(wall, 1)} ms`,
  `  warm pass:   median ${f(w.median)} ms/server, p99 ${f(w.p99)} ms, total ${f(w.total, 1)} ms`,
  `  baseline (bare cdk8s-plus-27 Deployment + NetworkPolicy): median ${f(b.median)} ms, p99 ${f(b.p99)} ms, total ${f(b.total, 1)} ms`,
  `  ratio render/baseline (median): cold ${f(r.median / b.median, 2)}x, warm ${f(w.median / b.median, 2)}x (the baseline runs after the cold pass, so it is warm)`,
  `  where the time goes (median ms/server): cdk8s synth of all constructs ${f(stats(phaseSynth).median)}, gateway config + zod check + sha256 ${f(stats(phaseConfig).median)}, checklist ${f(stats(phaseChecklist).median)}`,
  `  validation (zod, not part of render): ${f(validateMs / N)} ms/server`,
  `  peak RSS: ${f(rssMB, 1)} MB for the whole run (${f(rssAfterPassMB, 1)} MB after the cold pass of ${N})`,
  `  machine: load average ${f(loadBefore, 2)} on ${cpus} CPUs before the run${loadBefore > cpus ? " (busy: p99 and totals include time other processes took)" : ""}`,
  `  goals: median < 1 ms ${goals.median ? "met" : "MISSED"}; ${N} in < 1.5 s ${goals.total ? "met" : "MISSED"}; RSS < 250 MB ${goals.rss ? "met" : "MISSED"}`,
];
process.stdout.write(`${lines.join("\n")}\n`);
