// Replicas that keep sessions, on the real node (issue 16 item 3; the mechanism is gateway/src/affinity.ts):
// an McpServer with replicas: 3 and the shared Redis limiter, installed by the operator (Helm chart, our
// image) in a namespace enforcing Pod Security "restricted", with Redis (Debian's redis-server, image from
// hack/cluster/images.sh) as a Deployment and Service beside it. From a client pod, 20 clients open 2025-era
// MCP sessions through the one Service and make 50 tool calls each, every request on a TCP connection of its
// own, so kube-proxy sends each request to any of the three pods while the session lives in one of them
// (server-everything keeps its sessions in its own memory). What must hold:
//   - every one of the 1,000 calls succeeds: no session error, although two requests in three land on a pod
//     that does not hold the session (read from the three gateways' audit lines);
//   - the three replicas together admit what one client's configured rate allows, within 5%: the Redis
//     bucket is shared (each pod alone would admit the full rate, three times too much).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { type Cluster, imageArchives, startCluster, waitUntil } from "../../dev/cluster/index.ts";
import { ipTag } from "../../gateway/src/affinity.ts";
import { tool } from "../ship/tools.ts";
import { type Any, condition, installOperator, type Kube, kube, RESTRICTED, RESTRICTED_CONTAINER, RESTRICTED_POD, ROOT } from "./kube.ts";

const NS = "replicas";
const SERVER = "everything";
const REPLICAS = 3;
const CLIENTS = 20;
const CALLS = 50;
/**
 * One client's limit, shared by the replicas through Redis. The 20 clients use one API key (one client to
 * the limiter) and ask for far more than this, so the bucket stays nearly empty and what is admitted is what
 * the limit allows. The burst is 10 s of refill: a stall of the loaded machine (no request reaching Redis)
 * shorter than that loses no token. With 2 s (burst 20), one run at load 28-30 admitted 5.8% less than the
 * budget: the limiter did its job, the clients had not asked while the machine stalled.
 */
const PER_MINUTE = 600;
const BURST = 100;
/** How long a client waits after a 429 before it asks again. */
const PAUSE_MS = 100;

let cluster: Cluster;
let k: Kube;
let helm: string;
let operatorImage = "";
let everythingImage = "";
let redisImage = "";
const key = randomBytes(16).toString("hex");

before(async () => {
  const t0 = Date.now();
  const [archives, helmBin] = await Promise.all([imageArchives("operator", "everything", "redis"), tool("helm")]);
  helm = helmBin;
  const t1 = Date.now();
  cluster = await startCluster({ images: [archives.operator ?? "", archives.everything ?? "", archives.redis ?? ""] });
  k = kube(cluster);
  operatorImage = cluster.images["mcp-bastion.local/mcp-bastion:dev"] ?? "";
  everythingImage = cluster.images["mcp-bastion.local/everything:dev"] ?? "";
  redisImage = cluster.images["mcp-bastion.local/redis:1"] ?? "";
  for (const image of [operatorImage, everythingImage, redisImage]) assert.match(image, /@sha256:/);
  console.log(`images ready in ${((t1 - t0) / 1000).toFixed(1)} s, cluster started in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
});

after(async () => {
  await cluster?.stop();
});

/** Redis for the shared limiter: one pod, non-root, read-only root, nothing persisted; only the server's pods may reach it. */
function redisObjects(): Any[] {
  const labels = { app: "redis" };
  return [
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "redis", namespace: NS, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: RESTRICTED_POD,
            containers: [
              {
                name: "redis",
                image: redisImage,
                imagePullPolicy: "IfNotPresent",
                // Reached only through the NetworkPolicy below, hence no protected mode; a limiter's
                // buckets are worth nothing after a restart, hence no persistence (and a read-only root).
                args: ["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                ports: [{ name: "redis", containerPort: 6379 }],
                readinessProbe: { tcpSocket: { port: 6379 }, periodSeconds: 2 },
                resources: { requests: { cpu: "200m", memory: "32Mi" }, limits: { cpu: "500m", memory: "128Mi" } },
                securityContext: RESTRICTED_CONTAINER,
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "redis", namespace: NS },
      spec: { selector: labels, ports: [{ name: "redis", port: 6379, targetPort: 6379 }] },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "redis", namespace: NS },
      spec: {
        podSelector: { matchLabels: labels },
        policyTypes: ["Ingress", "Egress"],
        ingress: [{ from: [{ podSelector: { matchLabels: { "mcp.bastion.dev/server": SERVER } } }], ports: [{ port: 6379, protocol: "TCP" }] }],
        egress: [],
      },
    },
  ];
}

// 20 clients in one pod, each with its own 2025-era session (initialize, notifications/initialized, then 50
// echo calls). Every request goes on a new TCP connection (agent: false), so kube-proxy chooses a pod for
// each. A 429 (the shared limit) is waited out and asked again; a 502 "upstream unavailable" (the owner's
// gateway could not reach its own server) is counted apart and asked again; anything else is an error.
// Prints one JSON line: counts, the session owners' tags, and when each admitted request was answered.
const LOAD = `
import http from "node:http";
import net from "node:net";
import dns from "node:dns";
const target = new URL(process.env.URL);
// The Service's address, looked up once: a lookup per connection would put CoreDNS in every request's path.
// The requests still name the Service in their Host header, as any client's do.
let address = "";
const KEY = process.env.KEY, CLIENTS = Number(process.env.CLIENTS), CALLS = Number(process.env.CALLS), PAUSE = Number(process.env.PAUSE_MS);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A new pod's address reaches kube-router's NetworkPolicy ipsets a moment after it starts: wait for the
// Service to accept a connection before the clock starts.
const reach = async () => {
  try { address ||= (await dns.promises.lookup(target.hostname, { family: 4 })).address; } catch { return false; }
  return connect();
};
const connect = () => new Promise((res) => {
  const s = net.connect(Number(target.port), address);
  s.setTimeout(3000);
  s.on("connect", () => { s.destroy(); res(true); });
  s.on("error", () => res(false));
  s.on("timeout", () => { s.destroy(); res(false); });
});
for (const deadline = Date.now() + 120000; !(await reach()); await sleep(1000))
  if (Date.now() > deadline) { console.log(JSON.stringify({ error: "the Service accepted no connection within 120 s" })); process.exit(1); }
let requests = 0;
const post = (session, body) => new Promise((resolve) => {
  requests++;
  const data = JSON.stringify(body);
  const headers = { host: target.host, authorization: "Bearer " + KEY, "content-type": "application/json", accept: "application/json, text/event-stream", "content-length": Buffer.byteLength(data) };
  if (session) headers["mcp-session-id"] = session;
  const req = http.request({ host: address, port: target.port, path: target.pathname, method: "POST", agent: false, headers, timeout: 60000 }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString();
      const json = text.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).pop() ?? text;
      let parsed = null;
      try { parsed = json ? JSON.parse(json) : null; } catch { parsed = { unparsed: text.slice(0, 200) }; }
      resolve({ status: res.statusCode, session: res.headers["mcp-session-id"] ?? null, body: parsed });
    });
    res.on("error", (e) => resolve({ status: 0, session: null, body: { network: String(e) } }));
  });
  req.on("timeout", () => req.destroy(new Error("no answer within 60 s")));
  req.on("error", (e) => resolve({ status: 0, session: null, body: { network: String(e) } }));
  req.end(data);
});
const limitedAnswer = (r) => r.status === 429 && r.body?.error?.code === -32029;
const upstreamAnswer = (r) => r.status === 502 && r.body?.error?.code === -32002;
const t0 = Date.now();
const taken = [];
const finished = [];
const owners = {};
const errors = [];
let okCalls = 0, limited = 0, upstreamErrors = 0;
// Sends until the answer is not a 429 (and not a 502, which is counted and sent again): returns it.
const send = async (session, body) => {
  for (;;) {
    const r = await post(session, body);
    if (limitedAnswer(r)) { limited++; await sleep(PAUSE); continue; }
    if (upstreamAnswer(r)) { upstreamErrors++; taken.push(Date.now() - t0); continue; }
    return r;
  }
};
await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
  const init = await send(null, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "replica-client-" + c, version: "1" } } });
  if (init.status !== 200 || !init.session) { errors.push("client " + c + " initialize: HTTP " + init.status + " " + JSON.stringify(init.body).slice(0, 300)); return; }
  taken.push(Date.now() - t0);
  const session = init.session;
  const tag = session.split(".")[0];
  owners[tag] = (owners[tag] ?? 0) + 1;
  const note = await send(session, { jsonrpc: "2.0", method: "notifications/initialized" });
  if (note.status !== 202 && note.status !== 200) errors.push("client " + c + " notifications/initialized: HTTP " + note.status + " " + JSON.stringify(note.body).slice(0, 300));
  for (let n = 1; n <= CALLS; n++) {
    const message = "client " + c + " call " + n;
    const r = await send(session, { jsonrpc: "2.0", id: n, method: "tools/call", params: { name: "echo", arguments: { message } } });
    if (r.status === 200 && !r.body?.result?.isError && JSON.stringify(r.body?.result ?? "").includes(message)) { okCalls++; taken.push(Date.now() - t0); }
    else errors.push(message + ": HTTP " + r.status + " " + JSON.stringify(r.body).slice(0, 300));
  }
  finished.push(Date.now() - t0);
}));
console.log(JSON.stringify({ okCalls, limited, upstreamErrors, errors, owners, taken: taken.sort((a, b) => a - b), finished: finished.sort((a, b) => a - b), requests, ms: Date.now() - t0 }));
`;

describe("three replicas behind one Service on the real node", { timeout: 45 * 60_000 }, () => {
  test("20 clients x 50 calls: every request may land on any pod, no session error, the shared Redis limiter holds the combined rate within 5%", async () => {
    await installOperator(cluster, helm, operatorImage, "mcp-system", 1);

    // Redis first: the server's egress allowlist names its pod's address (kube-router applies NetworkPolicy
    // after the Service's DNAT, so the pod address is what it sees).
    await k.apply([{ apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: RESTRICTED } }, ...redisObjects()]);
    let redisIp = "";
    await waitUntil("Redis ready", 300_000, async () => {
      const pods = ((await k.getJson(["-n", NS, "get", "pods", "-l", "app=redis"]))?.items ?? []) as Any[];
      const ready = pods.find((p) => p.status?.podIP && (p.status?.containerStatuses ?? []).every((c: Any) => c.ready));
      redisIp = ready?.status?.podIP ?? "";
      return redisIp ? true : (await Promise.all(pods.map((p) => k.describePod(NS, p.metadata.name)))).join("; ") || "no pod";
    });

    const server = parse(readFileSync(join(ROOT, "examples", "everything.yaml"), "utf8")) as Any;
    server.metadata = { name: SERVER, namespace: NS };
    server.spec.image = everythingImage;
    server.spec.replicas = REPLICAS;
    server.spec.limits = {
      ...server.spec.limits,
      perClient: { requestsPerMinute: PER_MINUTE, burst: BURST },
      perTool: [],
      redis: { url: `redis://redis.${NS}.svc.cluster.local:6379` },
    };
    server.spec.network = { egress: [{ cidrs: [`${redisIp}/32`], ports: [{ port: 6379 }] }] };
    await k.apply([{ apiVersion: "v1", kind: "Secret", metadata: { name: "everything-api-keys", namespace: NS }, stringData: { "ci-agent": key } }, server]);

    const selector = `mcp.bastion.dev/server=${SERVER}`;
    let gateways: { name: string; ip: string }[] = [];
    await waitUntil(`McpServer ${SERVER} Ready with ${REPLICAS} ready pods, all of them endpoints of the peers Service`, 900_000, async () => {
      const s = await k.getJson(["-n", NS, "get", "mcpserver", SERVER]);
      const d = await k.getJson(["-n", NS, "get", "deploy", SERVER]);
      const st = d?.status ?? {};
      const pods = ((await k.getJson(["-n", NS, "get", "pods", "-l", selector]))?.items ?? []) as Any[];
      const live = pods.filter(
        (p) => !p.metadata.deletionTimestamp && p.status?.phase === "Running" && (p.status.containerStatuses ?? []).every((c: Any) => c.ready),
      );
      const slices = ((await k.getJson(["-n", NS, "get", "endpointslices", "-l", `kubernetes.io/service-name=${SERVER}-peers`]))?.items ?? []) as Any[];
      const peers = slices
        .flatMap((sl) => (sl.endpoints ?? []) as Any[])
        .filter((e) => e.conditions?.ready)
        .flatMap((e) => e.addresses as string[]);
      gateways = live.map((p) => ({ name: p.metadata.name as string, ip: p.status.podIP as string }));
      const done =
        condition(s, "Ready")?.status === "True" &&
        st.observedGeneration === d?.metadata?.generation &&
        st.updatedReplicas === REPLICAS &&
        st.availableReplicas === REPLICAS &&
        pods.length === REPLICAS &&
        live.length === REPLICAS &&
        live.every((p) => peers.includes(p.status.podIP));
      if (done) return true;
      const seen = await Promise.all(pods.map((p) => k.describePod(NS, p.metadata.name)));
      return `Ready=${JSON.stringify(condition(s, "Ready"))}; deployment ${JSON.stringify(st)}; peers ${peers.join(", ") || "none"}; ${seen.join("; ") || "no pods"}`;
    });
    const tags = new Map(gateways.map((g) => [ipTag(g.ip), g]));

    const client = "replica-clients";
    await k.apply([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: client, namespace: NS, labels: { "mcp.bastion.dev/client": "true" } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: RESTRICTED_POD,
          containers: [
            {
              name: "main",
              image: operatorImage,
              imagePullPolicy: "IfNotPresent",
              command: ["node", "--input-type=module", "-e", LOAD],
              // A CPU request: without one the pod is BestEffort, whose CPU shares are 2 against the
              // gateways' 50+, so on a busy node the clients would stall and stop asking.
              resources: { requests: { cpu: "500m", memory: "128Mi" }, limits: { memory: "512Mi" } },
              env: Object.entries({
                URL: `http://${SERVER}.${NS}.svc.cluster.local:8443/mcp`,
                KEY: key,
                CLIENTS: String(CLIENTS),
                CALLS: String(CALLS),
                PAUSE_MS: String(PAUSE_MS),
              }).map(([name, value]) => ({ name, value })),
              securityContext: RESTRICTED_CONTAINER,
            },
          ],
        },
      },
    ]);
    let clientIp = "";
    await waitUntil("the client pod to finish", 1_200_000, async () => {
      const p = await k.getJson(["-n", NS, "get", "pod", client]);
      clientIp = p?.status?.podIP ?? clientIp;
      return ["Succeeded", "Failed"].includes(p?.status?.phase) ? true : k.describePod(NS, client);
    });
    const log = (await k.kubectl(["-n", NS, "logs", client])).trim().split("\n");
    const last = log[log.length - 1] ?? "";
    assert.ok(last.startsWith("{"), `the client pod printed no summary: ${await k.describePod(NS, client)} log: ${log.slice(-10).join("\n")}`);
    const out = JSON.parse(last) as {
      okCalls: number;
      limited: number;
      upstreamErrors: number;
      errors: string[];
      owners: Record<string, number>;
      taken: number[];
      finished: number[];
      requests: number;
      ms: number;
      error?: string;
    };
    assert.equal(out.error, undefined, out.error);
    console.log(
      `${CLIENTS} clients x ${CALLS} calls through one Service to ${REPLICAS} replicas in ${(out.ms / 1000).toFixed(1)} s: ${out.okCalls} calls ok, ${out.errors.length} errors, ` +
        `${out.upstreamErrors} upstream errors, ${out.limited} answers 429, ${out.requests} requests in all`,
    );
    // On failure, the gateway pods' states and restarts too: the cluster is gone after the file.
    const podStates = async () => (await Promise.all(gateways.map((g) => k.describePod(NS, g.name)))).join("\n");
    if (out.errors.length) assert.fail(`${out.errors.length} calls failed (first: ${out.errors.slice(0, 3).join("; ")}); gateway pods:\n${await podStates()}`);
    assert.equal(out.okCalls, CLIENTS * CALLS, "all 1,000 calls succeeded");

    // Where the requests landed, from the gateways' audit lines: a request from the client pod was received by
    // that pod (the Service chose it); one from a peer's address was relayed to it, the session's owner.
    const source = (a: string) => a.replace(/^::ffff:/, "");
    const perPod = async () =>
      Promise.all(
        gateways.map(async (g) => {
          const lines = (await k.kubectl(["-n", NS, "logs", g.name, "-c", "gateway"]))
            .split("\n")
            .filter((l) => l.startsWith("{"))
            .map((l) => {
              try {
                return JSON.parse(l) as Any;
              } catch {
                return {};
              }
            });
          const audit = lines.filter((l) => typeof l.outcome === "string" && typeof l.source === "string");
          const fromClient = audit.filter((l) => source(l.source) === clientIp);
          return {
            pod: g.name,
            ip: g.ip,
            received: fromClient.length,
            relayedOut: fromClient.filter((l) => l.outcome === "relayed").length,
            servedForPeers: audit.filter((l) => gateways.some((p) => p.ip === source(l.source))).length,
            redisUnavailable: lines.filter((l) => /redis limiter unavailable/.test(String(l.msg ?? l.message ?? ""))).length,
          };
        }),
      );
    let pods: Awaited<ReturnType<typeof perPod>> = [];
    // Audit lines are written in batches: wait until every request the client sent is in one pod's log.
    await waitUntil("every request of the client in a gateway's audit log", 180_000, async () => {
      pods = await perPod();
      const received = pods.reduce((a, p) => a + p.received, 0);
      return received >= out.requests ? true : `${received} of ${out.requests} requests in the audit logs: ${JSON.stringify(pods)}`;
    });

    // The shared limit, over the window in which all 20 clients were still asking (from the first request
    // to the moment the first client had made all its calls): admitted = what the bucket allows then.
    const window = (out.finished[0] ?? out.ms) / 1000;
    const admitted = out.taken.filter((t) => t <= window * 1000).length;
    const budget = BURST + (PER_MINUTE / 60) * window;
    const admittedAll = out.taken.length;
    const budgetAll = BURST + (PER_MINUTE / 60) * ((out.taken[out.taken.length - 1] ?? 0) / 1000);
    // The longest time without an admitted request: longer than burst/rate, and tokens were lost to a stall.
    const gap = out.taken.reduce((g, t, i) => Math.max(g, t - (out.taken[i - 1] ?? 0)), 0) / 1000;
    for (const p of pods)
      console.log(
        `  pod ${p.pod} (${p.ip}, tag ${ipTag(p.ip)}): received ${p.received} requests from the client, relayed ${p.relayedOut} of them to the session's owner, ` +
          `answered ${p.servedForPeers} relayed from its peers; owns ${out.owners[ipTag(p.ip)] ?? 0} sessions`,
      );
    console.log(
      `  shared limit ${PER_MINUTE}/min, burst ${BURST}: admitted ${admitted} in the ${window.toFixed(1)} s all clients were asking (budget ${budget.toFixed(1)}, ` +
        `${((100 * (admitted - budget)) / budget).toFixed(1)}%); over the whole run ${admittedAll} (budget ${budgetAll.toFixed(1)}); longest time without an admitted request ${gap.toFixed(1)} s`,
    );

    assert.deepEqual(
      Object.keys(out.owners).sort(),
      [...tags.keys()].sort(),
      `sessions are held by all three pods, each id naming its pod: ${JSON.stringify(out.owners)}`,
    );
    const received = pods.reduce((a, p) => a + p.received, 0);
    assert.equal(received, out.requests, "every request the client sent was received by exactly one pod");
    for (const p of pods) {
      // A Service spreads new connections evenly: a third each, so far more than a tenth.
      assert.ok(p.received > out.requests / 10, `pod ${p.pod} received requests from the client: ${JSON.stringify(pods)}`);
      assert.ok(
        p.relayedOut > 0 && p.servedForPeers > 0,
        `pod ${p.pod} relayed requests to their sessions' pods and answered its own sessions' requests from peers: ${JSON.stringify(p)}`,
      );
      assert.equal(p.redisUnavailable, 0, `pod ${p.pod} used the shared Redis limiter throughout`);
    }
    const relayed = pods.reduce((a, p) => a + p.relayedOut, 0);
    assert.ok(relayed > out.requests / 3, `most requests landed on a pod that does not hold their session (${relayed} of ${out.requests} relayed)`);
    assert.ok(out.limited > 0, `the clients asked for more than the limit: ${out.limited} answers 429`);
    assert.ok(
      Math.abs(admitted - budget) <= 0.05 * budget,
      `the three replicas together admitted ${admitted} in ${window.toFixed(1)} s, within 5% of one client's budget ${budget.toFixed(1)} (burst ${BURST} + ${PER_MINUTE}/min)`,
    );
  });
});
