// `mcp-bastion demo` (`make demo`): without KUBECONFIG it starts the local control plane (etcd,
// kube-apiserver, kube-controller-manager; built by hack/controlplane/build.sh), installs the CRDs,
// runs the operator, applies examples/, shows the McpServers with their printer columns and one
// server's security checklist, and keeps running until Ctrl-C (or --exit-after-seconds N / --once).
// With KUBECONFIG set it does the same against that cluster (kind, k3d, ...), without installing
// any third-party CRD there.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { API_VERSION, PLURAL } from "../../../operator/src/api/v1alpha1.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { ApiError, KubeClient } from "../../../operator/src/runtime/kube.ts";
import { defaultConfig, Operator } from "../../../operator/src/controller/operator.ts";
import { makeLogger } from "./operator.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const DEMO_MANAGER = "mcp-bastion-demo";

const USAGE = `usage: mcp-bastion demo [--exit-after-seconds N | --once] [--examples DIR] [--server NAME]
  Without KUBECONFIG: starts a local control plane (needs a checkout: make demo). With KUBECONFIG: uses that cluster.
  --exit-after-seconds N  stop by itself after N seconds (default: run until Ctrl-C)
  --once                  stop as soon as everything is shown
  --examples DIR          McpServer YAML files to apply (default: examples/)
  --server NAME           whose checklist to show (default: the first example)`;

interface ControlPlaneLike {
  kubeconfigPath: string;
  binDir: string;
  stop(): Promise<void>;
}

const out = (s = "") => process.stdout.write(`${s}\n`);

function readDocs(path: string): KubeObject[] {
  return parseAllDocuments(readFileSync(path, "utf8"))
    .map((d) => d.toJSON() as KubeObject | null)
    .filter((d): d is KubeObject => d !== null && typeof d === "object");
}

/** Resource path segments of the few kinds the demo applies itself. */
function plural(obj: KubeObject): string {
  if (obj.kind === "CustomResourceDefinition") return "customresourcedefinitions";
  if (obj.kind === "Namespace") return "namespaces";
  if (obj.kind === "McpServer") return PLURAL;
  throw new Error(`demo cannot apply ${obj.kind}`);
}

/** Server-side apply of independent objects, in parallel. */
async function applyAll(client: KubeClient, docs: KubeObject[]): Promise<void> {
  await Promise.all(
    docs.map((d) =>
      client.apply(
        { apiVersion: d.apiVersion, plural: plural(d), ...(d.metadata.namespace ? { namespace: d.metadata.namespace } : {}), name: d.metadata.name },
        d,
        DEMO_MANAGER,
      ),
    ),
  );
}

async function waitEstablished(client: KubeClient, names: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const crd = await client
        .request<{ status?: { conditions?: { type: string; status: string }[] } }>("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)
        .catch(() => undefined);
      if (crd?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} was not established within ${timeoutMs / 1000}s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

interface Table {
  columnDefinitions: { name: string; priority?: number }[];
  rows: { cells: unknown[]; object?: { metadata?: { namespace?: string } } }[];
}

/** `kubectl get mcpservers -A` through the API server's Table output (the CRD's printer columns). */
async function printTable(client: KubeClient): Promise<void> {
  const res = await client.request<Table>("GET", `/apis/${API_VERSION}/${PLURAL}`, {
    query: { includeObject: "Metadata" },
    headers: { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io" },
  });
  const cols = res.columnDefinitions.map((c, i) => ({ ...c, i })).filter((c) => !c.priority);
  const header = ["NAMESPACE", ...cols.map((c) => c.name.toUpperCase())];
  const rows = res.rows.map((r) => [r.object?.metadata?.namespace ?? "", ...cols.map((c) => String(r.cells[c.i] ?? ""))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("   ")
      .trimEnd();
  out(line(header));
  for (const r of rows) out(line(r));
}

interface Status {
  conditions?: { type: string; status: string; reason: string; message: string }[];
  checklist?: { id: string; title: string; satisfied: boolean; detail: string }[];
  url?: string;
}

function printServer(server: KubeObject): void {
  const status = (server.status ?? {}) as Status;
  out(`McpServer ${server.metadata.namespace}/${server.metadata.name}${status.url ? `  ${status.url}` : ""}`);
  for (const c of status.conditions ?? []) out(`  ${c.type}=${c.status} (${c.reason}): ${c.message}`);
  out("  security checklist:");
  for (const item of status.checklist ?? []) out(`    [${item.satisfied ? "x" : " "}] ${item.title}: ${item.detail}`);
}

/** The real upstream CRD files from the checkout's dev/crds.ts (it fails naming `make crds-upstream` when they are absent). */
async function upstreamCrdFiles(): Promise<string[]> {
  const helper = join(ROOT, "dev", "crds.ts");
  const mod = (await import(pathToFileURL(helper).href)) as { upstreamCrdFiles(): string[] };
  return mod.upstreamCrdFiles();
}

async function startLocal(): Promise<ControlPlaneLike> {
  const helper = join(ROOT, "dev", "controlplane", "index.ts");
  if (!existsSync(helper)) throw new Error("the local control plane needs a checkout of the repository (make demo); or set KUBECONFIG to use a cluster");
  const mod = (await import(pathToFileURL(helper).href)) as { startControlPlane(o: { controllerManager?: boolean }): Promise<ControlPlaneLike> };
  return mod.startControlPlane({ controllerManager: true });
}

export async function run(args: string[]): Promise<number> {
  let values: { "exit-after-seconds"?: string; once?: boolean; examples?: string; server?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "exit-after-seconds": { type: "string" },
        once: { type: "boolean" },
        examples: { type: "string" },
        server: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`mcp-bastion demo: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const exitAfter = values["exit-after-seconds"] === undefined ? undefined : Number(values["exit-after-seconds"]);
  if (exitAfter !== undefined && (!Number.isFinite(exitAfter) || exitAfter < 0)) {
    process.stderr.write(`mcp-bastion demo: --exit-after-seconds: "${values["exit-after-seconds"]}" must be a number of seconds\n`);
    return 2;
  }
  const examplesDir = resolve(values.examples ?? join(ROOT, "examples"));
  if (!existsSync(examplesDir)) {
    process.stderr.write(`mcp-bastion demo: --examples: ${examplesDir} does not exist\n`);
    return 2;
  }
  const examples = readdirSync(examplesDir)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
    .sort()
    .flatMap((f) => readDocs(join(examplesDir, f)))
    .filter((d) => d.kind === "McpServer");
  if (examples.length === 0) {
    process.stderr.write(`mcp-bastion demo: no McpServer in ${examplesDir}\n`);
    return 2;
  }

  const local = !process.env.KUBECONFIG;
  let cp: ControlPlaneLike | undefined;
  let op: Operator | undefined;
  const stopAll = async () => {
    await op?.stop();
    await cp?.stop();
  };
  // Ctrl-C at any point: finish the current step, then stop the operator and the control plane
  // cleanly (installed first, so the control plane's own last-resort signal handler stays out of the way).
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
    if (local) {
      out("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)...");
      cp = await startLocal();
      checkpoint();
    } else {
      out(`using the cluster of KUBECONFIG=${process.env.KUBECONFIG}`);
    }
    const kubeconfigPath = cp?.kubeconfigPath ?? process.env.KUBECONFIG;
    const client = await KubeClient.create({ ...(kubeconfigPath ? { kubeconfigPath } : {}), userAgent: "mcp-bastion-demo" });

    out("installing the McpServer CRD");
    await applyAll(client, readDocs(join(ROOT, "crds", "mcp.bastion.dev_mcpservers.yaml")));
    await waitEstablished(client, ["mcpservers.mcp.bastion.dev"]);
    if (local) {
      out("installing the Istio, External Secrets and cert-manager CRDs (make crds-upstream)");
      const docs = (await upstreamCrdFiles()).flatMap((f) => readDocs(f)).filter((d) => d.kind === "CustomResourceDefinition");
      await applyAll(client, docs);
      await waitEstablished(
        client,
        docs.map((d) => d.metadata.name),
      );
    }

    const namespaces = [...new Set(examples.map((e) => e.metadata.namespace ?? "default"))];
    for (const ns of namespaces) {
      try {
        await client.get({ apiVersion: "v1", plural: "namespaces", name: ns });
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
        // Pod Security "restricted" on the demo's namespaces: the operator's pods pass it.
        await applyAll(client, [
          { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { "pod-security.kubernetes.io/enforce": "restricted" } } },
        ]);
      }
    }

    checkpoint();
    out("starting the operator");
    const base = defaultConfig();
    op = new Operator(
      defaultConfig({
        ...(kubeconfigPath ? { kubeconfigPath } : {}),
        concurrency: 4,
        leaderElection: { ...base.leaderElection, enabled: !local, name: "mcp-bastion-demo" },
        log: makeLogger("warn"),
      }),
    );
    await op.start();

    checkpoint();
    out(`applying ${examples.length} examples from ${examplesDir}`);
    await applyAll(client, examples);
    // Every example gets a verdict (Reconciled True or False) for its current generation.
    const deadline = Date.now() + 90_000;
    const verdict = async () => {
      const list = await client.list<KubeObject>({ apiVersion: API_VERSION, plural: PLURAL });
      return list.items.filter(
        (s) =>
          (s.status as Status | undefined)?.conditions?.some((c) => c.type === "Reconciled") &&
          (s.status as { observedGeneration?: number }).observedGeneration === s.metadata.generation,
      );
    };
    let done = await verdict();
    while (done.length < examples.length && Date.now() < deadline && !interrupted) {
      await new Promise((r) => setTimeout(r, 500));
      done = await verdict();
    }
    out();
    out("$ kubectl get mcpservers -A");
    await printTable(client);
    out();
    const wanted = values.server ?? examples[0]?.metadata.name;
    const shown = done.find((s) => s.metadata.name === wanted) ?? done[0];
    if (shown) printServer(shown);
    out();
    if (local) out("No kubelet runs here: Pods are created but stay Pending, so Ready stays False (DeploymentUnavailable).");
    if (cp && !values.once) out(`Try it: export KUBECONFIG=${cp.kubeconfigPath}; ${join(cp.binDir, "kubectl")} get mcpservers -A`);
    client.close();

    if (!values.once && !interrupted) {
      await new Promise<void>((resolveWait) => {
        const timer = exitAfter !== undefined ? setTimeout(resolveWait, exitAfter * 1000) : undefined;
        if (exitAfter === undefined) out("Running; Ctrl-C stops the operator and the control plane.");
        wake = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
    }
    out("stopping");
    await stopAll();
    return interrupted ? 130 : 0;
  } catch (err) {
    await stopAll().catch(() => {});
    if (err instanceof Interrupted) {
      out("interrupted: stopped");
      return 130;
    }
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

class Interrupted extends Error {}
