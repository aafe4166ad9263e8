// `make demo`: mcp-bastion on a real single-node cluster (dev/cluster/index.ts), from images built here.
// Starts the node in its own network namespace, installs the operator with the Helm chart (our image) into
// a namespace enforcing Pod Security "restricted", applies the examples whose images the project builds
// (server-everything over streamable HTTP, server-filesystem over stdio), waits until they are Ready, prints
// `kubectl get mcpservers -A`, makes one MCP tool call that succeeds and one that authorization refuses from a
// client pod, and says how to look around. Runs until Ctrl-C (or --exit-after-seconds N, or --once), then
// removes everything the cluster made. Needs root (network namespaces, mounts, cgroups, containerd).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { type Cluster, helmInstallOperator, imageArchives, startCluster, waitUntil } from "./index.ts";
import { tool } from "../../test/ship/tools.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const RELEASE_NS = "mcp-system";
const NS = "agents";
const RESTRICTED = { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" };
const USAGE = `usage: node dev/cluster/demo.ts [--once | --exit-after-seconds N]   (make demo DEMO_ARGS=...)
  --once                  stop as soon as everything is shown
  --exit-after-seconds N  stop by itself after N seconds (default: run until Ctrl-C)`;

// biome-ignore lint/suspicious/noExplicitAny: API objects are navigated loosely
type Any = any;
const out = (s = "") => process.stdout.write(`${s}\n`);

// The demo's MCP client, run in a pod labelled mcp.bastion.dev/client=true (the only pods the server's
// NetworkPolicy lets in): plain HTTP, so what goes over the wire is what it prints. One call of a tool the
// key may use, one of a tool its rule does not allow.
const CLIENT = `
const url = process.env.URL, key = process.env.KEY;
const post = async (session, body) => {
  const r = await fetch(url, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(20000),
    headers: { authorization: "Bearer " + key, "content-type": "application/json", accept: "application/json, text/event-stream", ...(session ? { "mcp-session-id": session } : {}) } });
  const text = await r.text();
  const data = text.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).pop() ?? text;
  return { status: r.status, session: r.headers.get("mcp-session-id"), body: data ? JSON.parse(data) : null };
};
const show = (what, r) => {
  if (r.body?.error) return console.log(what + "  ->  refused (HTTP " + r.status + "): JSON-RPC error " + r.body.error.code + " " + JSON.stringify(r.body.error.message));
  if (r.body?.result?.isError) return console.log(what + "  ->  refused: " + JSON.stringify(r.body.result.content));
  console.log(what + "  ->  ok: " + (r.body?.result?.content ?? []).map((c) => c.text ?? c.type).join(" "));
};
// A new pod's address reaches the NetworkPolicy enforcer a moment after the pod starts: retry connecting.
let init;
for (const deadline = Date.now() + 60000; ; ) {
  try { init = await post(null, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "demo", version: "1" } } }); break; }
  catch (e) { if (Date.now() > deadline) throw e; await new Promise((r) => setTimeout(r, 1000)); }
}
console.log("initialize  ->  HTTP " + init.status + ", server " + JSON.stringify(init.body?.result?.serverInfo?.name) + ", session " + init.session);
await post(init.session, { jsonrpc: "2.0", method: "notifications/initialized" });
show('tools/call echo {"message":"hello from a client pod"}', await post(init.session, { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "hello from a client pod" } } }));
show("tools/call get-tiny-image {}", await post(init.session, { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "get-tiny-image", arguments: {} } }));
`;

async function main(): Promise<number> {
  let values: { once?: boolean; "exit-after-seconds"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ options: { once: { type: "boolean" }, "exit-after-seconds": { type: "string" }, help: { type: "boolean", short: "h" } } }));
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const exitAfter = values["exit-after-seconds"] === undefined ? undefined : Number(values["exit-after-seconds"]);
  if (exitAfter !== undefined && !(Number.isFinite(exitAfter) && exitAfter >= 0)) {
    process.stderr.write(`demo: --exit-after-seconds: "${values["exit-after-seconds"]}" must be a number of seconds\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      "demo: the real cluster needs root (network namespaces, mounts, cgroups, containerd); without root, `node operator/bin/mcp-bastion.js demo` shows the operator on a bare control plane\n",
    );
    return 1;
  }

  let cluster: Cluster | undefined;
  let interrupted = false;
  let wake = () => {};
  const onSignal = () => {
    interrupted = true;
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const checkpoint = () => {
    if (interrupted) throw new Interrupted();
  };
  try {
    const t0 = Date.now();
    out("building (or finding cached) the images: the operator from the Dockerfile, server-everything, server-filesystem...");
    const [archives, helm] = await Promise.all([imageArchives("operator", "everything", "filesystem"), tool("helm")]);
    checkpoint();
    out("starting a real single-node cluster in its own network namespace (etcd, kube-apiserver, containerd, kubelet, kube-proxy, kube-router, CoreDNS)...");
    cluster = await startCluster({ images: [archives.operator ?? "", archives.everything ?? "", archives.filesystem ?? ""] });
    const c = cluster;
    out(`  node Ready in network namespace ${c.netns} (${((Date.now() - t0) / 1000).toFixed(0)} s so far)`);
    checkpoint();
    const image = (ref: string) => {
      const pinned = c.images[ref];
      if (!pinned) throw new Error(`image ${ref} was not imported`);
      return pinned;
    };
    const kubectl = async (args: string[], input?: string) => {
      const r = await c.kubectl(args, input === undefined ? {} : { input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    const getJson = async (args: string[]): Promise<Any> => {
      const r = await c.kubectl([...args, "-o", "json"]);
      return r.code === 0 ? JSON.parse(r.stdout) : undefined;
    };
    const apply = (objects: Any[]) => kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));

    out(`installing the operator with the Helm chart into ${RELEASE_NS} (Pod Security restricted)...`);
    await apply([{ apiVersion: "v1", kind: "Namespace", metadata: { name: RELEASE_NS, labels: RESTRICTED } }]);
    const h = await helmInstallOperator(c, helm, image("mcp-bastion.local/mcp-bastion:dev"), RELEASE_NS);
    if (h.code !== 0) throw new Error(`helm install: ${h.stderr.trim()}`);
    checkpoint();

    out(`applying examples/everything.yaml and examples/filesystem.yaml into ${NS}, with API keys in their Secrets...`);
    const keys = { "ci-agent": randomBytes(16).toString("hex"), "support-bot": randomBytes(16).toString("hex") };
    const everything = parse(readFileSync(join(ROOT, "examples", "everything.yaml"), "utf8")) as Any;
    everything.spec.image = image("mcp-bastion.local/everything:dev");
    const filesystem = parse(readFileSync(join(ROOT, "examples", "filesystem.yaml"), "utf8")) as Any;
    filesystem.spec.image = image("mcp-bastion.local/filesystem:dev");
    // This node has no storage provisioner: the read-only documents come from a ConfigMap instead of the PVC.
    filesystem.spec.volumes = [{ name: "docs", mountPath: "/data", configMap: { name: "team-docs" }, readOnly: true }];
    await apply([
      { apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: RESTRICTED } },
      { apiVersion: "v1", kind: "Secret", metadata: { name: "everything-api-keys", namespace: NS }, stringData: keys },
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "filesystem-api-keys", namespace: NS },
        stringData: { "docs-agent": randomBytes(16).toString("hex"), "search-agent": randomBytes(16).toString("hex") },
      },
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "team-docs", namespace: NS }, data: { "hello.txt": "hello from a ConfigMap\n" } },
    ]);
    // The CRD comes with the chart; the operator must be serving it before the examples mean anything.
    await waitUntil("the operator to run", 600_000, async () => {
      checkpoint();
      const d = await getJson(["-n", RELEASE_NS, "get", "deploy", "bastion-mcp-bastion"]);
      return (d?.status?.availableReplicas ?? 0) >= 1 ? true : `operator Deployment: ${JSON.stringify(d?.status ?? "absent")}`;
    });
    await apply([everything, filesystem]);
    out("waiting for both McpServers to be Ready (pods started, gateway and server answering)...");
    await waitUntil("every McpServer Ready=True", 900_000, async () => {
      checkpoint();
      const list = ((await getJson(["get", "mcpservers", "-A"]))?.items ?? []) as Any[];
      const notReady = list.filter((s) => !(s.status?.conditions ?? []).some((x: Any) => x.type === "Ready" && x.status === "True"));
      return list.length === 2 && notReady.length === 0
        ? true
        : `not Ready: ${notReady.map((s) => `${s.metadata.name} ${JSON.stringify((s.status?.conditions ?? []).find((x: Any) => x.type === "Ready") ?? "no status yet")}`).join("; ")}`;
    });

    out();
    out("$ kubectl get mcpservers -A");
    out((await kubectl(["get", "mcpservers", "-A"])).trimEnd());
    out();

    out(
      `MCP calls from a pod labelled mcp.bastion.dev/client=true, through the Service everything.${NS}.svc:8443 with the key of "support-bot" (allowed: echo, get-sum):`,
    );
    const pod = "demo-client";
    await apply([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: pod, namespace: NS, labels: { "mcp.bastion.dev/client": "true" } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "client",
              image: image("mcp-bastion.local/mcp-bastion:dev"),
              imagePullPolicy: "IfNotPresent",
              command: ["node", "--input-type=module", "-e", CLIENT],
              env: [
                { name: "URL", value: `http://everything.${NS}.svc.cluster.local:8443/mcp` },
                { name: "KEY", value: keys["support-bot"] },
              ],
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
            },
          ],
        },
      },
    ]);
    let phase = "";
    await waitUntil("the client pod to finish", 300_000, async () => {
      checkpoint();
      phase = (await getJson(["-n", NS, "get", "pod", pod]))?.status?.phase ?? "";
      return phase === "Succeeded" || phase === "Failed" ? true : `client pod phase ${phase || "unknown"}`;
    });
    const log = (await kubectl(["-n", NS, "logs", pod])).trimEnd();
    for (const line of log.split("\n")) out(`  ${line}`);
    if (phase !== "Succeeded") throw new Error(`the client pod failed:\n${log}`);
    out();

    const kubectlBin = join(c.cp.binDir, "kubectl");
    out("Look around (as root, in another terminal, while this runs):");
    out(`  export KUBECONFIG=${c.kubeconfigPath}     # the API server, through a loopback relay into the namespace`);
    out(`  ${kubectlBin} get pods -A -o wide`);
    out(`  ${kubectlBin} -n ${NS} get mcpserver everything -o yaml        # conditions and the security checklist`);
    out(`  ${kubectlBin} -n ${NS} logs deploy/everything -c gateway      # the gateway's audit log`);
    out(`  ${kubectlBin} -n ${NS} get networkpolicy,service,deploy`);
    out(`  ip netns exec ${c.netns} ip -4 addr                 # every node, pod and Service address lives only in this namespace`);
    out(`  ip netns exec ${c.netns} iptables-save | grep -c KUBE-   # kube-proxy's and kube-router's rules, in the namespace only`);
    out(`  ls ${c.dir}/*.log                       # containerd, kubelet, kube-proxy, kube-router, kube-scheduler`);
    out();

    if (!values.once && !interrupted) {
      await new Promise<void>((done) => {
        const timer = exitAfter !== undefined ? setTimeout(done, exitAfter * 1000) : undefined;
        if (exitAfter === undefined) out("Running; Ctrl-C stops the cluster and removes everything it made.");
        wake = () => {
          clearTimeout(timer);
          done();
        };
      });
    }
    out("stopping the cluster");
    await cluster.stop();
    return interrupted ? 130 : 0;
  } catch (err) {
    await cluster?.stop().catch(() => {});
    if (err instanceof Interrupted) {
      out("interrupted: the cluster is stopped and removed");
      return 130;
    }
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

class Interrupted extends Error {}

process.exitCode = await main();
