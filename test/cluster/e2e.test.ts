// mcp-bastion end to end on a real single-node cluster (dev/cluster/index.ts), with images built here
// from the project's own Dockerfile and npm packages (hack/cluster/images.sh). In order:
//   1. the operator, installed with the Helm chart (our image, our values) into a namespace enforcing Pod
//      Security "restricted", runs, becomes leader and reconciles;
//   2. the server-everything example is Ready=True; its containers run as UID 65532, read-only root, no
//      capabilities, seccomp RuntimeDefault, inside their memory limits, read from the running processes;
//   3. an MCP client pod labelled mcp.bastion.dev/client=true lists and calls tools through the Service,
//      authorization filters and refuses; an unlabelled pod cannot connect (NetworkPolicy, kube-router);
//      the server cannot reach a destination outside its egress allowlist; DNS works.
// Each step builds on the previous one (one cluster for the file: starting one costs a minute).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { childNames } from "../../operator/src/render/labels.ts";
import { tool } from "../ship/tools.ts";
import { type Cluster, imageArchives, OUTSIDE_IPS, run, startCluster, waitUntil } from "../../dev/cluster/index.ts";
import { type Any, condition, installOperator, type Kube, kube, RESTRICTED, ROOT } from "./kube.ts";

const RELEASE_NS = "mcp-system";
const NS = "agents";

let cluster: Cluster;
let k: Kube;
let helm: string;
let operatorImage = "";
let everythingImage = "";
const keys = { "ci-agent": randomBytes(16).toString("hex"), "support-bot": randomBytes(16).toString("hex") };
let outsideListener: ChildProcess | undefined;

const kubectl = (args: string[], input?: string) => k.kubectl(args, input);
const getJson = (args: string[]) => k.getJson(args);
const apply = (objects: Any[]) => k.apply(objects);
const describePod = (ns: string, name: string) => k.describePod(ns, name);
/** Runs a pod to completion (restartPolicy Never) and returns its log; restricted-compliant security context. */
async function runPod(
  ns: string,
  name: string,
  image: string,
  command: string[],
  opts: { labels?: Record<string, string>; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ phase: string; log: string }> {
  await cluster.kubectl(["-n", ns, "delete", "pod", name, "--ignore-not-found", "--wait=true"]);
  await apply([
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, labels: opts.labels ?? {} },
      spec: {
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "main",
            image,
            imagePullPolicy: "IfNotPresent",
            command,
            env: Object.entries(opts.env ?? {}).map(([n, value]) => ({ name: n, value })),
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    },
  ]);
  let phase = "";
  await waitUntil(`pod ${ns}/${name} to finish`, opts.timeoutMs ?? 180_000, async () => {
    const pod = await getJson(["-n", ns, "get", "pod", name]);
    phase = pod?.status?.phase ?? "";
    return phase === "Succeeded" || phase === "Failed" ? true : describePod(ns, name);
  });
  const log = (await cluster.kubectl(["-n", ns, "logs", name])).stdout;
  return { phase, log };
}

/** A container's own view of its process 1 (/proc/1/status), parsed into fields. */
async function procStatus(ns: string, pod: string, container: string): Promise<Record<string, string>> {
  const out = await kubectl(["-n", ns, "exec", pod, "-c", container, "--", "cat", "/proc/1/status"]);
  return Object.fromEntries(
    out
      .split("\n")
      .filter((l) => l.includes(":"))
      .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]),
  );
}

/**
 * The External Secrets Operator built by hack/cluster/build-eso.sh and its CRDs from the same module
 * version (the Go module cache holds its source after the build).
 */
async function esoBinaryAndCrds(): Promise<{ bin: string; crds: string[] }> {
  const r = await run(join(ROOT, "hack", "cluster", "build-eso.sh"), [], { timeoutMs: 90 * 60_000 });
  assert.equal(r.code, 0, `hack/cluster/build-eso.sh: ${r.stderr}`);
  const mod = await run("go", ["mod", "download", "-json", "github.com/external-secrets/external-secrets"], { cwd: join(ROOT, "hack", "cluster", "eso") });
  assert.equal(mod.code, 0, mod.stderr);
  const crdDir = join(JSON.parse(mod.stdout).Dir as string, "config", "crds", "bases");
  // Every CRD of that version, generators included: its GeneratorState controller watches
  // generatorstates.generators.external-secrets.io, and without that CRD its informer never syncs and the
  // whole operator exits after controller-runtime's 2-minute cache-sync timeout.
  const crds = readdirSync(crdDir)
    .filter((f) => /^(generators\.)?external-secrets\.io_.*\.yaml$/.test(f))
    .map((f) => join(crdDir, f));
  return { bin: join(r.stdout.trim().split("\n").pop() ?? "", "external-secrets"), crds };
}
let eso: { bin: string; crds: string[] } | undefined;

before(async () => {
  const t0 = Date.now();
  const [archives, helmBin, esoBuilt] = await Promise.all([imageArchives("operator", "everything"), tool("helm"), esoBinaryAndCrds()]);
  eso = esoBuilt;
  helm = helmBin;
  const t1 = Date.now();
  cluster = await startCluster({ images: [archives.operator ?? "", archives.everything ?? ""] });
  k = kube(cluster);
  operatorImage = cluster.images["mcp-bastion.local/mcp-bastion:dev"] ?? "";
  everythingImage = cluster.images["mcp-bastion.local/everything:dev"] ?? "";
  assert.match(operatorImage, /@sha256:/);
  assert.match(everythingImage, /@sha256:/);
  // External Secrets' CRDs before the operator starts, so it discovers the kind at once.
  for (const crd of eso.crds) await kubectl(["apply", "--server-side", "-f", crd]);
  console.log(`images ready in ${((t1 - t0) / 1000).toFixed(1)} s, cluster started in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
});

after(async () => {
  outsideListener?.kill("SIGKILL");
  await cluster?.stop();
});

describe("1. the operator installed with the Helm chart", { timeout: 20 * 60_000 }, () => {
  test("runs under Pod Security restricted, becomes leader and reconciles", async () => {
    const names = await installOperator(cluster, helm, operatorImage, RELEASE_NS);

    // Pod Security restricted, seen from inside the running operator.
    const st = await procStatus(RELEASE_NS, names[0] ?? "", "operator");
    assert.match(st.Uid ?? "", /^65532\s+65532\s+65532\s+65532$/);
    assert.equal(st.CapEff, "0000000000000000");
    assert.equal(st.Seccomp, "2", "seccomp filter mode (RuntimeDefault)");
    assert.equal(st.NoNewPrivs, "1");

    // It reconciles: an McpServer gets its children and a Reconciled verdict for its generation.
    await apply([
      { apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: RESTRICTED } },
      { apiVersion: "v1", kind: "Secret", metadata: { name: "everything-api-keys", namespace: NS }, stringData: keys },
    ]);
    const example = parse(readFileSync(join(ROOT, "examples", "everything.yaml"), "utf8")) as Any;
    example.spec.image = everythingImage;
    example.spec.network = { egress: [{ cidrs: [`${OUTSIDE_IPS[0]}/32`], ports: [{ port: 9000 }] }] };
    await apply([example]);
    await waitUntil("McpServer everything Reconciled=True", 180_000, async () => {
      const s = await getJson(["-n", NS, "get", "mcpserver", "everything"]);
      const c = condition(s, "Reconciled");
      return c?.status === "True" && s.status.observedGeneration === s.metadata.generation ? true : `conditions ${JSON.stringify(s?.status?.conditions ?? [])}`;
    });
    for (const kind of ["deployment", "service", "networkpolicy", "serviceaccount"]) await kubectl(["-n", NS, "get", kind, "everything"]);
  });
});

describe("2. server-everything is Ready and hardened, seen from its running containers", { timeout: 20 * 60_000 }, () => {
  test("Ready=True; every container runs as 65532, read-only root, no capabilities, seccomp RuntimeDefault, within its memory limit", async () => {
    await waitUntil("McpServer everything Ready=True", 600_000, async () => {
      const s = await getJson(["-n", NS, "get", "mcpserver", "everything"]);
      if (condition(s, "Ready")?.status === "True") return true;
      const pods = await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"]);
      const seen = await Promise.all((pods?.items ?? []).map((p: Any) => describePod(NS, p.metadata.name)));
      return `Ready=${JSON.stringify(condition(s, "Ready"))}; ${seen.join("; ") || "no pods"}`;
    });
    const printed = await kubectl(["get", "mcpservers", "-A"]);
    assert.match(printed, /everything\s+True/, printed);

    const pod = (await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything", "--field-selector=status.phase=Running"])).items[0] as Any;
    assert.ok(pod, "a running pod");
    const containers = (pod.spec.containers as Any[]).map((c) => c.name as string);
    assert.ok(containers.length >= 2, `server and gateway containers: ${containers.join(", ")}`);
    for (const c of containers) {
      const st = await procStatus(NS, pod.metadata.name, c);
      assert.match(st.Uid ?? "", /^65532\s+65532\s+65532\s+65532$/, `${c}: Uid ${st.Uid}`);
      for (const cap of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(st[cap], "0000000000000000", `${c}: ${cap}`);
      assert.equal(st.Seccomp, "2", `${c}: seccomp filter (RuntimeDefault)`);
      assert.equal(st.NoNewPrivs, "1", `${c}: no_new_privs`);
      const write = await cluster.kubectl([
        "-n",
        NS,
        "exec",
        pod.metadata.name,
        "-c",
        c,
        "--",
        "node",
        "-e",
        "try{require('fs').writeFileSync('/probe','x');console.log('wrote')}catch(e){console.log(e.code)}",
      ]);
      assert.equal(write.stdout.trim(), "EROFS", `${c}: the root filesystem is read-only (${write.stdout}${write.stderr})`);
      const limitSpec = (pod.spec.containers as Any[]).find((x) => x.name === c)?.resources?.limits?.memory;
      assert.ok(limitSpec, `${c} has a memory limit`);
      const cg = await kubectl([
        "-n",
        NS,
        "exec",
        pod.metadata.name,
        "-c",
        c,
        "--",
        "node",
        "-e",
        "const f=require('fs');const r=p=>f.readFileSync('/sys/fs/cgroup/memory/'+p,'utf8').trim();console.log(r('memory.limit_in_bytes'),r('memory.usage_in_bytes'))",
      ]);
      const [limit, usage] = cg.trim().split(" ").map(Number);
      assert.equal(limit, toBytes(limitSpec), `${c}: the cgroup limit is the spec's ${limitSpec}`);
      assert.ok((usage ?? Infinity) < (limit ?? 0), `${c}: usage ${usage} < limit ${limit}`);
    }
  });
});

function toBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unexpected quantity ${q}`);
  return Number(m[1]) * { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, "": 1 }[m[2] ?? ""]!;
}

// The MCP client run inside a pod: the operator image has Node and the official MCP SDK.
const CLIENT = `
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// A real client retries while the network is not there yet: a new pod's address reaches kube-router's
// NetworkPolicy ipsets a moment after the pod starts (until then the gateway's port rejects it).
const connect = async (name) => {
  const deadline = Date.now() + 60000;
  for (;;) {
    const c = new Client({ name, version: "1.0.0" });
    const t = new StreamableHTTPClientTransport(new URL(process.env.URL), { requestInit: { headers: { authorization: "Bearer " + process.env.KEY } } });
    try {
      await c.connect(t);
      return { c, t };
    } catch (e) {
      if (Date.now() > deadline || !/fetch failed|ECONNREFUSED|EHOSTUNREACH|ETIMEDOUT/.test(String(e) + String(e?.cause))) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
};
const out = {};
try {
  const { c: client } = await connect("e2e");
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  out.echo = await client.callTool({ name: "echo", arguments: { message: "hello from a pod" } });
  try {
    out.refused = await client.callTool({ name: process.env.DENIED, arguments: {} });
  } catch (e) {
    out.refusedError = { code: e.code, message: e.message };
  }
  await client.close();
} catch (e) {
  out.error = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
`;

describe("3. clients, authorization, NetworkPolicy, egress and DNS", { timeout: 20 * 60_000 }, () => {
  const url = `http://everything.${NS}.svc.cluster.local:8443/mcp`;
  const clientLabels = { "mcp.bastion.dev/client": "true" };

  async function mcpClient(name: string, key: string, denied: string): Promise<Any> {
    const { phase, log } = await runPod(NS, name, operatorImage, ["node", "--input-type=module", "-e", CLIENT], {
      labels: clientLabels,
      env: { URL: url, KEY: key, DENIED: denied },
    });
    const line = log.trim().split("\n").pop() ?? "";
    assert.equal(phase, "Succeeded", `client pod: ${log}`);
    return JSON.parse(line);
  }

  test("a labelled client lists and calls tools through the Service by its DNS name; authorization filters and refuses", async () => {
    const ci = await mcpClient("client-ci", keys["ci-agent"], "trigger-long-running-operation");
    assert.equal(ci.error, undefined, ci.error);
    assert.ok(ci.tools.includes("echo") && ci.tools.includes("get-sum"), `tools: ${ci.tools}`);
    assert.ok(!ci.tools.includes("trigger-long-running-operation"), "a denied tool is not listed");
    assert.match(JSON.stringify(ci.echo.content), /hello from a pod/);
    assert.ok(ci.refusedError || ci.refused?.isError, `the denied tool is refused: ${JSON.stringify(ci.refused)}`);

    const bot = await mcpClient("client-bot", keys["support-bot"], "get-tiny-image");
    assert.deepEqual(bot.tools, ["echo", "get-sum"]);
    assert.ok(bot.refusedError || bot.refused?.isError, `get-tiny-image is refused for support-bot: ${JSON.stringify(bot.refused)}`);
  });

  test("an unlabelled pod cannot connect to the gateway (NetworkPolicy enforced by kube-router); a labelled one can; DNS resolves", async () => {
    const busybox = "mcp-bastion.local/busybox:1";
    // Ten tries a second apart: a new pod's address reaches kube-router's ipsets a moment after it starts.
    const probe = [
      "sh",
      "-c",
      `nslookup everything.${NS}.svc.cluster.local >/dev/null && echo dns=ok; for i in 1 2 3 4 5 6 7 8 9 10; do echo | nc -w 3 everything.${NS}.svc.cluster.local 8443 >/dev/null && { echo connect=0; exit 0; }; sleep 1; done; echo connect=1`,
    ];
    const labelled = await runPod(NS, "probe-labelled", busybox, probe, { labels: clientLabels });
    assert.match(labelled.log, /dns=ok/, labelled.log);
    assert.match(labelled.log, /connect=0/, `a labelled pod connects: ${labelled.log}`);
    const unlabelled = await runPod(NS, "probe-unlabelled", busybox, probe);
    assert.match(unlabelled.log, /dns=ok/, unlabelled.log);
    assert.match(unlabelled.log, /connect=1/, `an unlabelled pod is refused or times out: ${unlabelled.log}`);
  });

  test("the server reaches the destination on its egress allowlist and nothing else", async () => {
    // A listener on two addresses of the node outside the pod network; only the first is allowlisted.
    const script = `const net=require("net");for(const a of ${JSON.stringify(OUTSIDE_IPS)})net.createServer(s=>s.end("hi "+a+"\\n")).listen(9000,a);setInterval(()=>{},1e6)`;
    outsideListener = spawn("ip", ["netns", "exec", cluster.netns, process.execPath, "-e", script], { stdio: "ignore" });
    const pod = (await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything", "--field-selector=status.phase=Running"])).items[0] as Any;
    const server = (pod.spec.containers as Any[]).find((c) => c.image === everythingImage)?.name;
    assert.ok(server, "the server container");
    const dial = (ip: string) =>
      `new Promise(r=>{const s=require("net").connect(9000,"${ip}");s.setTimeout(4000);s.on("data",d=>{r("${ip}=ok");s.destroy()});s.on("timeout",()=>{r("${ip}=timeout");s.destroy()});s.on("error",e=>r("${ip}="+e.code))})`;
    let last = "";
    // The allowlisted address answers once the listener is up (it is started just above).
    await waitUntil("the allowlisted destination to answer", 60_000, async () => {
      const r = await cluster.kubectl([
        "-n",
        NS,
        "exec",
        pod.metadata.name,
        "-c",
        server,
        "--",
        "node",
        "-e",
        `Promise.all([${OUTSIDE_IPS.map(dial).join(",")}]).then(x=>console.log(x.join(" ")))`,
      ]);
      last = r.stdout.trim() || r.stderr.trim();
      return last.includes(`${OUTSIDE_IPS[0]}=ok`) ? true : last;
    });
    assert.match(
      last,
      new RegExp(`${OUTSIDE_IPS[1]?.replaceAll(".", "\\.")}=(timeout|ECONNREFUSED|EHOSTUNREACH)`),
      `the other destination is blocked: ${last}`,
    );
  });
});

// Two MCP sessions from one pod to a stdio server: both read a file, then (when the test says so, by
// creating /tmp/go after it has counted the server processes) the first disconnects abruptly and the
// second must still work.
const STDIO_CLIENT = `
import { existsSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// A real client retries while the network is not there yet: a new pod's address reaches kube-router's
// NetworkPolicy ipsets a moment after the pod starts (until then the gateway's port rejects it).
const connect = async (name) => {
  const deadline = Date.now() + 60000;
  for (;;) {
    const c = new Client({ name, version: "1.0.0" });
    const t = new StreamableHTTPClientTransport(new URL(process.env.URL), { requestInit: { headers: { authorization: "Bearer " + process.env.KEY } } });
    try {
      await c.connect(t);
      return { c, t };
    } catch (e) {
      if (Date.now() > deadline || !/fetch failed|ECONNREFUSED|EHOSTUNREACH|ETIMEDOUT/.test(String(e) + String(e?.cause))) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
};
const out = {};
const open = connect;
const read = async (s) => JSON.stringify((await s.c.callTool({ name: "read_text_file", arguments: { path: "/data/hello.txt" } })).content);
try {
  const a = await open("a");
  const b = await open("b");
  out.a = await read(a);
  out.b = await read(b);
  out.tools = (await a.c.listTools()).tools.map((t) => t.name).sort();
  try { out.write = await a.c.callTool({ name: "write_file", arguments: { path: "/data/x", content: "x" } }); } catch (e) { out.writeError = e.message; }
  console.log("READY");
  const deadline = Date.now() + 300000;
  while (!existsSync("/tmp/go") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  // An abrupt disconnect: the transport is closed without ending the session politely.
  await a.t.close();
  out.bAfter = await read(b);
  // A polite end (DELETE of the session): the gateway closes the bridge connection, the bridge ends
  // that process. The abruptly dropped session's process stays until the gateway's idle timeout.
  await b.t.terminateSession();
  await b.c.close();
} catch (e) {
  out.error = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
`;

describe("4. a stdio server: the bridge in the server's own image, one process per client", { timeout: 20 * 60_000 }, () => {
  test("Ready; the bridge runs in the server image; two clients get two processes; one disconnecting leaves the other working", async () => {
    const archives = await imageArchives("filesystem");
    const fsImage = (await cluster.importImages([archives.filesystem ?? ""]))["mcp-bastion.local/filesystem:dev"] ?? "";
    assert.match(fsImage, /@sha256:/);
    const example = parse(readFileSync(join(ROOT, "examples", "filesystem.yaml"), "utf8")) as Any;
    example.spec.image = fsImage;
    // No storage provisioner on this node: the read-only data comes from a ConfigMap instead of the PVC.
    example.spec.volumes = [{ name: "docs", mountPath: "/data", configMap: { name: "team-docs" }, readOnly: true }];
    const fsKeys = { "docs-agent": randomBytes(16).toString("hex"), "search-agent": randomBytes(16).toString("hex") };
    await apply([
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "team-docs", namespace: NS }, data: { "hello.txt": "hello from a configmap\n" } },
      { apiVersion: "v1", kind: "Secret", metadata: { name: "filesystem-api-keys", namespace: NS }, stringData: fsKeys },
      example,
    ]);
    await waitUntil("McpServer filesystem Ready=True", 600_000, async () => {
      const s = await getJson(["-n", NS, "get", "mcpserver", "filesystem"]);
      if (condition(s, "Ready")?.status === "True") return true;
      const pods = await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=filesystem"]);
      const seen = await Promise.all((pods?.items ?? []).map((p: Any) => describePod(NS, p.metadata.name)));
      return `Ready=${JSON.stringify(condition(s, "Ready"))}; ${seen.join("; ") || "no pods"}`;
    });
    const pod = (await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=filesystem", "--field-selector=status.phase=Running"])).items[0] as Any;
    const server = (pod.spec.containers as Any[]).find((c) => c.image === fsImage);
    assert.ok(server, `a container runs the server's own image ${fsImage}`);
    assert.ok(
      (pod.spec.initContainers as Any[] | undefined)?.some((c) => c.image === operatorImage),
      "an init container from our image installs the bridge",
    );
    const cmdline = (await kubectl(["-n", NS, "exec", pod.metadata.name, "-c", server.name, "--", "cat", "/proc/1/cmdline"])).split("\0");
    assert.match(cmdline[0] ?? "", /\/opt\/mcp-bastion\/mcp-bastion-bridge$/, `process 1 of the server container is the bridge: ${cmdline.join(" ")}`);

    // The server processes (children of the bridge) inside the server container, by their command line.
    const children = async () => {
      const r = await cluster.kubectl([
        "-n",
        NS,
        "exec",
        pod.metadata.name,
        "-c",
        server.name,
        "--",
        "node",
        "-e",
        "const f=require('fs');console.log(f.readdirSync('/proc').filter(p=>/^\\d+$/.test(p)&&p!=='1'&&p!==String(process.pid)).filter(p=>{try{return f.readFileSync('/proc/'+p+'/cmdline','utf8').split('\\0')[1]==='/app/dist/index.js'}catch{return false}}).join(' '))",
      ]);
      return r.stdout.trim().split(/\s+/).filter(Boolean);
    };

    const name = "client-stdio";
    await cluster.kubectl(["-n", NS, "delete", "pod", name, "--ignore-not-found", "--wait=true"]);
    await apply([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: NS, labels: { "mcp.bastion.dev/client": "true" } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "main",
              image: operatorImage,
              imagePullPolicy: "IfNotPresent",
              command: ["node", "--input-type=module", "-e", STDIO_CLIENT],
              env: [
                { name: "URL", value: `http://filesystem.${NS}.svc.cluster.local:8443/mcp` },
                { name: "KEY", value: fsKeys["docs-agent"] },
              ],
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
            },
          ],
          volumes: [{ name: "tmp", emptyDir: {} }],
        },
      },
    ]);
    await waitUntil("the stdio client to hold two sessions", 240_000, async () => {
      const log = (await cluster.kubectl(["-n", NS, "logs", name])).stdout;
      if (log.includes("READY")) return true;
      if (log.includes('"error"')) throw new Error(`the client failed: ${log}`);
      return `${await describePod(NS, name)} log: ${log}`;
    });
    let pids: string[] = [];
    await waitUntil("two server processes, one per session", 60_000, async () => {
      pids = await children();
      return pids.length === 2 ? true : `server processes: ${pids.join(", ") || "none"}`;
    });
    await kubectl(["-n", NS, "exec", name, "--", "node", "-e", "require('fs').writeFileSync('/tmp/go','')"]);
    await waitUntil("the client to finish", 120_000, async () => {
      const p = await getJson(["-n", NS, "get", "pod", name]);
      return ["Succeeded", "Failed"].includes(p?.status?.phase) ? true : describePod(NS, name);
    });
    const log = (await kubectl(["-n", NS, "logs", name])).trim().split("\n");
    const out = JSON.parse(log[log.length - 1] ?? "{}");
    assert.equal(out.error, undefined, out.error);
    assert.match(out.a, /hello from a configmap/);
    assert.match(out.b, /hello from a configmap/);
    assert.match(out.bAfter, /hello from a configmap/, "the second session works after the first disconnected");
    assert.ok(!out.tools.includes("write_file"), `write_file is not listed: ${out.tools}`);
    assert.ok(out.writeError || out.write?.isError, `write_file is refused: ${JSON.stringify(out.write)}`);
    await waitUntil("the process of the terminated session to exit", 60_000, async () => {
      const now = await children();
      return now.length < 2 && now.every((p) => pids.includes(p)) ? true : `server processes: ${now.join(", ")} (were ${pids.join(", ")})`;
    });
  });
});

// One initialize with a key; prints the HTTP status. Retries only while the connection itself fails (see connect).
const KEY_PROBE = `
const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "k", version: "1" } } });
(async () => {
  const deadline = Date.now() + 60000;
  for (;;) {
    try {
      const r = await fetch(process.env.URL, { method: "POST", headers: { authorization: "Bearer " + process.env.KEY, "content-type": "application/json", accept: "application/json, text/event-stream" }, body });
      console.log("status=" + r.status);
      return;
    } catch (e) {
      if (Date.now() > deadline) { console.log("error=" + e + " " + e.cause); return; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
})();
`;

describe("5. API key rotation without restart", { timeout: 20 * 60_000 }, () => {
  test("a key added to the Secret is accepted and a removed one refused by the running gateway, no container restarted", async () => {
    const restarts = async () => {
      const pods = (await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"])).items as Any[];
      return pods.map((p) => `${p.metadata.name}:${(p.status.containerStatuses as Any[]).map((c) => c.restartCount).join(",")}`).join(" ");
    };
    const before = await restarts();
    const rotated = randomBytes(16).toString("hex");
    const status = (key: string) =>
      runPod(NS, "probe-key", operatorImage, ["node", "-e", KEY_PROBE], {
        labels: { "mcp.bastion.dev/client": "true" },
        env: { URL: `http://everything.${NS}.svc.cluster.local:8443/mcp`, KEY: key },
      }).then((r) => r.log.trim());
    assert.match(await status(rotated), /status=401/, "a key not yet in the Secret is refused");
    // Rotate: support-bot gets a new key, the old one is dropped.
    await apply([
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "everything-api-keys", namespace: NS },
        stringData: { "ci-agent": keys["ci-agent"], "support-bot": rotated },
      },
    ]);
    let last = "";
    await waitUntil("the rotated key to be accepted (kubelet sync period)", 180_000, async () => {
      last = await status(rotated);
      return /status=200/.test(last) ? true : last;
    });
    assert.match(await status(keys["support-bot"]), /status=401/, "the old key is refused");
    assert.equal(await restarts(), before, "no container restarted");
  });
});

describe("5b. secrets from the real External Secrets Operator", { timeout: 20 * 60_000 }, () => {
  test("an ExternalSecret rendered by the operator is synced by External Secrets (fake provider); the file is readable by 65532 in the server container and absent from the gateway", async () => {
    assert.ok(eso, "External Secrets built");
    const esoArgs = ["--metrics-addr=127.0.0.1:18080", "--concurrent=2", "--enable-leader-election=false"];
    const esoBin = eso.bin;
    let proc = cluster.startProcess("external-secrets", esoBin, esoArgs);
    // If it exits anyway (an informer that did not sync within controller-runtime's fixed 2 minutes on a
    // loaded machine; it has no flag for that timeout), it is started again, as the kubelet would.
    let restarts = 0;
    const value = `token-${randomBytes(8).toString("hex")}`;
    // The ExternalSecret and its Secret are named by the renderer (a dot joins server and secret: no collision).
    const synced = childNames({ metadata: { name: "everything", namespace: NS } } as Parameters<typeof childNames>[0]).secret("upstream-token");
    await apply([
      {
        apiVersion: "external-secrets.io/v1",
        kind: "SecretStore",
        metadata: { name: "fake", namespace: NS },
        spec: { provider: { fake: { data: [{ key: "mcp/everything/token", value }] } } },
      },
    ]);
    await kubectl([
      "-n",
      NS,
      "patch",
      "mcpserver",
      "everything",
      "--type=merge",
      "-p",
      JSON.stringify({
        spec: { secrets: [{ name: "upstream-token", storeRef: { name: "fake" }, remoteRef: { key: "mcp/everything/token" }, fileName: "token" }] },
      }),
    ]);
    await waitUntil("the ExternalSecret to be synced", 600_000, async () => {
      if (proc.exited()) {
        if (++restarts > 3) throw new Error(`external-secrets exited ${restarts} times: ${cluster.logTail("external-secrets", 40)}`);
        proc = cluster.startProcess("external-secrets", esoBin, esoArgs);
      }
      const es = await getJson(["-n", NS, "get", "externalsecret", synced]);
      return condition(es, "Ready")?.status === "True"
        ? true
        : `ExternalSecret: ${JSON.stringify(es?.status ?? "absent")}; external-secrets (restarted ${restarts} times): ${cluster.logTail("external-secrets", 2)}`;
    });
    const secret = await getJson(["-n", NS, "get", "secret", synced]);
    assert.equal(Buffer.from(secret.data.token, "base64").toString(), value);
    let pod: Any;
    await waitUntil("a running server pod with the secret volume, Ready", 300_000, async () => {
      const s = await getJson(["-n", NS, "get", "mcpserver", "everything"]);
      const pods = ((await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"]))?.items ?? []) as Any[];
      pod = pods.find(
        (p) =>
          p.metadata.deletionTimestamp === undefined &&
          p.status.phase === "Running" &&
          (p.spec.volumes as Any[]).some((v) => v.secret?.secretName === synced) &&
          (p.status.containerStatuses as Any[]).every((c) => c.ready),
      );
      return pod && condition(s, "Ready")?.status === "True"
        ? true
        : `pods: ${pods.map((p) => `${p.metadata.name} ${p.status.phase}`).join(", ")}; Ready=${JSON.stringify(condition(s, "Ready"))}`;
    });
    const path = "/var/run/secrets/mcp/upstream-token/token";
    const inServer = await kubectl([
      "-n",
      NS,
      "exec",
      pod.metadata.name,
      "-c",
      "server",
      "--",
      "node",
      "-e",
      `const f=require("fs");console.log(process.getuid(), f.readFileSync(${JSON.stringify(path)},"utf8"))`,
    ]);
    assert.equal(inServer.trim(), `65532 ${value}`, "UID 65532 reads the synced value in the server container");
    const inGateway = await kubectl([
      "-n",
      NS,
      "exec",
      pod.metadata.name,
      "-c",
      "gateway",
      "--",
      "node",
      "-e",
      `console.log(require("fs").existsSync(${JSON.stringify(path)}) || require("fs").existsSync("/var/run/secrets/mcp"))`,
    ]);
    assert.equal(inGateway.trim(), "false", "the gateway container does not have the secret");
  });
});

// A client that keeps calling `echo` through one MCP session and logs every outcome as a JSON line:
// {n, status, ok} or {n, status, error: <the gateway's answer>}. After an error it opens a new session.
// With RETRY=1 a failed call is retried (new session, once a second, up to 60 times) before it counts as lost. It stops
// when /tmp/stop exists (or after 5 minutes) and prints {summary: {calls, succeeded, lost, retries}}.
const CALL_LOOP = `
import { existsSync } from "node:fs";
const URL_ = process.env.URL, KEY = process.env.KEY, RETRY = process.env.RETRY === "1";
const headers = { authorization: "Bearer " + KEY, "content-type": "application/json", accept: "application/json, text/event-stream" };
const parse = (text) => {
  const data = text.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).pop() ?? text;
  try { return JSON.parse(data); } catch { return { unparsed: text.slice(0, 300) }; }
};
const post = async (session, body) => {
  const r = await fetch(URL_, { method: "POST", headers: { ...headers, ...(session ? { "mcp-session-id": session } : {}) }, body: JSON.stringify(body), signal: AbortSignal.timeout(15000) });
  const text = await r.text();
  return { status: r.status, session: r.headers.get("mcp-session-id"), body: text ? parse(text) : null };
};
let session = null, n = 0, succeeded = 0, lost = 0, retries = 0;
const open = async () => {
  const r = await post(null, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "loop", version: "1" } } });
  if (r.status !== 200 || !r.session) throw Object.assign(new Error("initialize failed"), { answer: r });
  await post(r.session, { jsonrpc: "2.0", method: "notifications/initialized" });
  session = r.session;
};
const call = async (i) => {
  try {
    if (!session) await open();
    const r = await post(session, { jsonrpc: "2.0", id: i, method: "tools/call", params: { name: "echo", arguments: { message: "call " + i } } });
    if (r.status === 200 && r.body?.result && !r.body.result.isError && JSON.stringify(r.body.result).includes("call " + i)) return { ok: true };
    // 429 (the example's per-client rate limit) leaves the session valid: keep it, wait, retry.
    if (r.status !== 429) session = null;
    return { ok: false, status: r.status, error: r.body };
  } catch (e) {
    session = null;
    return e.answer ? { ok: false, status: e.answer.status, error: e.answer.body } : { ok: false, error: { network: String(e) + " " + String(e?.cause ?? "") } };
  }
};
const deadline = Date.now() + 300000;
while (!existsSync("/tmp/stop") && Date.now() < deadline) {
  n++;
  let r = await call(n);
  console.log(JSON.stringify({ n, ...r }));
  for (let a = 0; RETRY && !r.ok && a < 60; a++) {
    retries++;
    await new Promise((res) => setTimeout(res, 1000));
    r = await call(n);
    console.log(JSON.stringify({ n, retry: a + 1, ...r }));
  }
  if (r.ok) succeeded++; else lost++;
  // About 50 calls a minute: inside examples/everything.yaml's 120/min per client, divided by 2 replicas.
  await new Promise((res) => setTimeout(res, 1200));
}
console.log(JSON.stringify({ summary: { calls: n, succeeded, lost, retries } }));
`;

describe("6. faults on the real node", { timeout: 20 * 60_000 }, () => {
  const url = `http://everything.${NS}.svc.cluster.local:8443/mcp`;

  async function startLoop(name: string, retry: boolean): Promise<void> {
    await cluster.kubectl(["-n", NS, "delete", "pod", name, "--ignore-not-found", "--wait=true"]);
    await apply([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: NS, labels: { "mcp.bastion.dev/client": "true" } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "main",
              image: operatorImage,
              imagePullPolicy: "IfNotPresent",
              command: ["node", "--input-type=module", "-e", CALL_LOOP],
              env: [
                { name: "URL", value: url },
                { name: "KEY", value: keys["ci-agent"] },
                { name: "RETRY", value: retry ? "1" : "0" },
              ],
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
            },
          ],
          volumes: [{ name: "tmp", emptyDir: {} }],
        },
      },
    ]);
  }
  async function loopLog(name: string): Promise<Any[]> {
    const r = await cluster.kubectl(["-n", NS, "logs", name]);
    return r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  }
  async function stopLoop(name: string): Promise<Any> {
    await kubectl(["-n", NS, "exec", name, "--", "node", "-e", "require('fs').writeFileSync('/tmp/stop','')"]);
    let summary: Any;
    await waitUntil(`${name} to print its summary`, 120_000, async () => {
      summary = (await loopLog(name)).find((l) => l.summary)?.summary;
      return summary ? true : describePod(NS, name);
    });
    return summary;
  }
  const okCount = (lines: Any[]) => lines.filter((l) => l.ok).length;

  test("killing the server container: a clean JSON-RPC error from the gateway, then calls succeed again after the kubelet restarts it", async () => {
    // The previous step's secret rolled the Deployment: the pod to kill is the new one, not the old one that is
    // still Running while it terminates (it would vanish under the test).
    let pod: Any;
    await waitUntil("one running server pod, no older one terminating", 300_000, async () => {
      const pods = ((await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"]))?.items ?? []) as Any[];
      pod = pods[0];
      return pods.length === 1 && !pod.metadata.deletionTimestamp && pod.status?.phase === "Running"
        ? true
        : `pods: ${pods.map((p) => `${p.metadata.name} ${p.status?.phase}${p.metadata.deletionTimestamp ? " terminating" : ""}`).join(", ")}`;
    });
    const status = (p: Any) => ((p?.status?.containerStatuses ?? []) as Any[]).find((c) => c.name === "server");
    const server = status(pod);
    assert.ok(server?.containerID, `the server container's id: ${JSON.stringify(pod.status.containerStatuses)}`);
    const restartsBefore = server.restartCount as number;

    await startLoop("loop-kill", false);
    await waitUntil("the call loop to succeed 3 times", 180_000, async () => {
      const lines = await loopLog("loop-kill");
      return okCount(lines) >= 3 ? true : `${await describePod(NS, "loop-kill")} last: ${JSON.stringify(lines.slice(-2))}`;
    });
    // Counted before the kill: reading the log takes seconds on a busy node, and the first failed call (the one
    // this test waits for) can be logged within them; counted after, it would be sliced away.
    const beforeKill = await loopLog("loop-kill");
    const atKill = beforeKill.length;
    const okAtKill = okCount(beforeKill);
    const killed = await cluster.ctr(["tasks", "kill", "--signal", "SIGKILL", String(server.containerID).replace("containerd://", "")]);
    assert.equal(killed.code, 0, `ctr tasks kill: ${killed.stderr}`);

    let lines: Any[] = [];
    await waitUntil("an error answer, then 3 successful calls again with the server restarted by the kubelet", 300_000, async () => {
      lines = (await loopLog("loop-kill")).slice(atKill);
      const firstError = lines.findIndex((l) => !l.ok && !l.summary);
      const okAfter = firstError >= 0 ? okCount(lines.slice(firstError)) : 0;
      const p = await getJson(["-n", NS, "get", "pod", pod.metadata.name]);
      const restarts = status(p)?.restartCount ?? 0;
      return firstError >= 0 && okAfter >= 3 && restarts > restartsBefore
        ? true
        : `errors seen: ${firstError >= 0}, ok after: ${okAfter}, restarts ${restarts}, last: ${JSON.stringify(lines.slice(-2))}`;
    });
    await stopLoop("loop-kill");
    assert.ok(okCount(lines) >= 3 && okAtKill >= 3, `calls succeed before the kill (${okAtKill}) and again after it (${okCount(lines)})`);
    // While the server is down the gateway answers; once its readiness probe fails, the Service has no
    // endpoint and connections are refused (that is kube-proxy, not the gateway). Every answer of the
    // gateway is a clean JSON-RPC error: a code and a message, no stack trace or internal path.
    const answers = lines.filter((l) => !l.ok && !l.summary && !l.error?.network);
    assert.ok(answers.length > 0, `the gateway answered at least once while the server was down: ${JSON.stringify(lines.filter((l) => !l.ok).slice(0, 5))}`);
    for (const e of answers) {
      const body = e.error;
      assert.equal(body?.jsonrpc, "2.0", `a JSON-RPC answer: ${JSON.stringify(e)}`);
      assert.ok(Number.isInteger(body?.error?.code) && typeof body?.error?.message === "string", `a JSON-RPC error object: ${JSON.stringify(e)}`);
      assert.doesNotMatch(
        JSON.stringify(body),
        /\s+at\s+\S+\s+\(|\/app\/|node:internal|ECONNREFUSED 127/,
        `no stack trace or internals leak: ${JSON.stringify(body)}`,
      );
    }
  });

  test("deleting one pod of a two-replica server loses no successful call of a client that retries", async () => {
    await kubectl(["-n", NS, "patch", "mcpserver", "everything", "--type=merge", "-p", JSON.stringify({ spec: { replicas: 2 } })]);
    // The previous step's secret rolled the Deployment: wait for the rollout to finish, not only for two
    // available pods (old ones may still be running).
    await waitUntil("two available replicas, rollout complete", 300_000, async () => {
      const d = await getJson(["-n", NS, "get", "deploy", "everything"]);
      const st = d?.status ?? {};
      return st.observedGeneration === d?.metadata?.generation && st.replicas === 2 && st.updatedReplicas === 2 && st.availableReplicas === 2
        ? true
        : `deployment status ${JSON.stringify(st)}`;
    });
    await waitUntil("no pod of an older ReplicaSet left", 120_000, async () => {
      const pods = ((await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"]))?.items ?? []) as Any[];
      return pods.length === 2
        ? true
        : `pods: ${pods.map((p) => `${p.metadata.name} ${p.status.phase}${p.metadata.deletionTimestamp ? " terminating" : ""}`).join(", ")}`;
    });
    await startLoop("loop-delete", true);
    await waitUntil("the retrying loop to succeed 5 times", 180_000, async () => {
      const lines = await loopLog("loop-delete");
      return okCount(lines) >= 5 ? true : `${await describePod(NS, "loop-delete")} last: ${JSON.stringify(lines.slice(-2))}`;
    });
    const pods = ((await getJson(["-n", NS, "get", "pods", "-l", "mcp.bastion.dev/server=everything"])).items as Any[]).filter(
      (p) => !p.metadata.deletionTimestamp && p.status.phase === "Running",
    );
    assert.equal(pods.length, 2, `two running replicas: ${pods.map((p) => p.metadata.name).join(", ")}`);
    await kubectl(["-n", NS, "delete", "pod", pods[0].metadata.name, "--wait=false"]);
    const okAtDelete = okCount(await loopLog("loop-delete"));
    await waitUntil("a replacement pod ready and 10 more successful calls", 300_000, async () => {
      const d = await getJson(["-n", NS, "get", "deploy", "everything"]);
      const ok = okCount(await loopLog("loop-delete"));
      return (d?.status?.availableReplicas ?? 0) >= 2 && ok >= okAtDelete + 10
        ? true
        : `available ${d?.status?.availableReplicas}, ok ${ok - okAtDelete} since the delete`;
    });
    const summary = await stopLoop("loop-delete");
    console.log(`two replicas, one pod deleted: ${JSON.stringify(summary)}`);
    const failures = (await loopLog("loop-delete")).filter((l) => l.ok === false);
    assert.equal(summary.lost, 0, `no call lost: ${JSON.stringify(summary)}; failed attempts: ${JSON.stringify(failures.slice(-8))}`);
    assert.ok(summary.succeeded >= okAtDelete + 10, JSON.stringify(summary));
  });
});
