// The ways users install and run mcp-bastion, against one real local control plane (etcd,
// kube-apiserver, kube-controller-manager; no scheduler or kubelet, so no pod ever runs):
//   - `kubectl apply -f crds/` then the examples, `kubectl explain`, printer columns;
//   - `helm install` into a namespace that enforces Pod Security "restricted";
//   - the chart's RBAC, proven with `kubectl auth can-i --list` as the chart's ServiceAccount, in
//     cluster and namespaced mode;
//   - the operator started with the chart's own args and the chart's ServiceAccount token, so a
//     permission it needs but the chart lacks fails the reconcile (the chart's Deployment itself
//     never runs here: there is no kubelet);
//   - server-side dry run with strict field validation of every rendered example and of the helm
//     template output, with the upstream Istio and External Secrets CRDs installed.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { freePort, scratchDir, waitFor, waitUntil } from "../support/index.ts";
import { operatorRbac } from "../../hack/tools/sync-chart.ts";
import { CHART_DIR, ROOT, run, tool } from "./tools.ts";
import { type KubeDoc, mcpServerExamples, parseManifests, renderExample } from "./manifests.ts";
import { upstreamCrdFiles } from "../../dev/crds.ts";

// biome-ignore lint/suspicious/noExplicitAny: API objects are navigated loosely in assertions
type Any = any;

const RELEASE = "bastion";
const RELEASE_NS = "mcp-system";
const SA = "bastion-mcp-bastion";
const SA_USER = `system:serviceaccount:${RELEASE_NS}:${SA}`;
const GATEWAY_IMAGE = "registry.example/mcp-bastion:test";

let cp: ControlPlane;
let helm: string;
let operator: ChildProcess | undefined;
let operatorLog = "";

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  assert.equal(r.code, 0, `kubectl ${args.join(" ")}\n${r.stderr}`);
  return r.stdout;
}
async function helmRun(args: string[]): Promise<string> {
  const r = await run(helm, [...args, "--kubeconfig", cp.kubeconfigPath]);
  assert.equal(r.code, 0, `helm ${args.join(" ")}\n${r.stderr}`);
  return r.stdout;
}
async function ensureNamespace(name: string, restricted = true): Promise<void> {
  const ns = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: restricted ? { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" } : {} },
  };
  await kubectl(["apply", "-f", "-"], JSON.stringify(ns));
}

/** `kubectl auth can-i --list` as the chart's ServiceAccount: "resource.group" -> verbs. */
async function canList(namespace: string): Promise<Map<string, Set<string>>> {
  const out = await kubectl([
    "auth",
    "can-i",
    "--list",
    "-n",
    namespace,
    "--as",
    SA_USER,
    "--as-group",
    "system:serviceaccounts",
    "--as-group",
    `system:serviceaccounts:${RELEASE_NS}`,
  ]);
  const perms = new Map<string, Set<string>>();
  for (const line of out.split("\n").slice(1)) {
    const m = line.match(/^(\S+)\s+.*\[(.*)\]\s*$/);
    if (!m || m[1]!.startsWith("/") || line.trimStart().startsWith("[")) continue;
    const verbs = perms.get(m[1]!) ?? new Set<string>();
    for (const v of m[2]!.split(/\s+/).filter(Boolean)) verbs.add(v);
    perms.set(m[1]!, verbs);
  }
  return perms;
}
async function can(verb: string, resource: string, namespace?: string): Promise<boolean> {
  const r = await cp.kubectl(["auth", "can-i", verb, resource, "--as", SA_USER, ...(namespace ? ["-n", namespace] : ["--all-namespaces"])]);
  return r.stdout.trim() === "yes";
}

/** A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest), nothing more. */
async function serviceAccountKubeconfig(): Promise<string> {
  const token = (await kubectl(["create", "token", SA, "-n", RELEASE_NS, "--duration=1h"])).trim();
  const admin = parse(readFileSync(cp.kubeconfigPath, "utf8")) as Any;
  const cfg = {
    apiVersion: "v1",
    kind: "Config",
    clusters: admin.clusters,
    users: [{ name: SA, user: { token } }],
    contexts: [{ name: SA, context: { cluster: admin.clusters[0].name, user: SA } }],
    "current-context": SA,
  };
  const path = join(scratchDir("mcp-bastion-sa-"), "kubeconfig");
  writeFileSync(path, stringify(cfg), { mode: 0o600 });
  return path;
}

// Kubernetes' built-in permissions every authenticated user has (system:basic-user, system:discovery).
const BUILTIN = new Set([
  "selfsubjectaccessreviews.authorization.k8s.io",
  "selfsubjectrulesreviews.authorization.k8s.io",
  "selfsubjectreviews.authentication.k8s.io",
]);

function granted(rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const r of rules)
    for (const g of r.apiGroups)
      for (const res of r.resources) {
        // kubectl prints a subresource after the group: mcpservers.mcp.bastion.dev/status
        const [plural, sub] = res.split("/");
        const key = (g ? `${plural}.${g}` : plural!) + (sub ? `/${sub}` : "");
        const s = m.get(key) ?? new Set<string>();
        for (const v of r.verbs) s.add(v);
        m.set(key, s);
      }
  return m;
}

describe("shipping paths against a real control plane", { timeout: 15 * 60_000 }, () => {
  before(async () => {
    [cp, helm] = await Promise.all([startControlPlane({ controllerManager: true }), tool("helm")]);
  });
  after(async () => {
    if (operator && operator.exitCode === null) operator.kill("SIGTERM");
    await cp?.stop();
  });

  test("kubectl apply -f crds/ and then the examples work on a fresh cluster; explain and printer columns read well", async () => {
    const crdFiles = readdirSync(join(ROOT, "crds")).filter((f) => f.endsWith(".yaml"));
    assert.ok(crdFiles.length > 0, "crds/ holds no CRD (make crds)");
    await kubectl(["apply", "-f", join(ROOT, "crds")]);
    await waitUntil(
      "the McpServer CRD to be Established",
      async () => {
        const r = await cp.kubectl(["get", "crd", "mcpservers.mcp.bastion.dev", "-o", "jsonpath={.status.conditions}"]);
        if (r.code !== 0) throw new Error(r.stderr.trim());
        return (r.stdout ? JSON.parse(r.stdout) : []) as { type: string; status: string }[];
      },
      (conditions) => conditions.some((c) => c.type === "Established" && c.status === "True"),
      60_000,
      500,
    );
    for (const ex of mcpServerExamples()) {
      for (const ns of new Set(ex.docs.map((d) => d.metadata.namespace ?? "default"))) await ensureNamespace(ns, false);
      const r = await cp.kubectl(["apply", "--validate=strict", "-f", ex.path]);
      assert.equal(r.code, 0, `kubectl apply -f ${ex.file}\n${r.stderr}`);
    }
    const crd = parse(readFileSync(join(ROOT, "crds", crdFiles[0]!), "utf8")) as Any;
    const columns: string[] = (crd.spec.versions.find((v: Any) => v.served).additionalPrinterColumns ?? []).map((c: Any) => c.name.toUpperCase());
    assert.ok(columns.length >= 2, "the CRD defines fewer than two printer columns");
    const header = (await kubectl(["get", "mcpservers", "-A"])).split("\n")[0]!;
    for (const c of columns) assert.ok(header.includes(c), `column ${c} missing in: ${header}`);

    const explain = await kubectl(["explain", "mcpserver.spec.auth"]);
    assert.match(explain, /DESCRIPTION:\n\s+\S/, "spec.auth has no description");
    assert.match(explain, /FIELDS:/);
    const fields = [...explain.matchAll(/^ {2}(\w+)\s+<[^>]+>\n((?: {4}.*\n)*)/gm)];
    assert.ok(fields.length > 0, explain);
    const undocumented = fields.filter((f) => !/\S/.test(f[2] ?? "")).map((f) => f[1]);
    assert.deepEqual(undocumented, [], "fields of spec.auth without a description in kubectl explain");
  });

  test("helm install into a namespace enforcing Pod Security restricted: pod admitted, NOTES shown", async () => {
    await ensureNamespace(RELEASE_NS);
    const out = await helmRun(["install", RELEASE, CHART_DIR, "-n", RELEASE_NS, "--set", `gateway.image=${GATEWAY_IMAGE}`, "--set", "replicaCount=2"]);
    assert.match(out, /STATUS: deployed/);
    assert.match(out, /rollout status deployment\/bastion-mcp-bastion/);
    assert.match(out, /kubectl explain mcpserver/);
    for (const m of out.matchAll(/examples\/[\w./-]+\.yaml/g)) assert.ok(existsSync(join(ROOT, m[0])), `NOTES names ${m[0]}, which does not exist`);
    if (readdirSync(join(ROOT, "crds")).some((f) => f.endsWith(".yaml"))) await kubectl(["get", "crd", "mcpservers.mcp.bastion.dev"]);
    // kube-controller-manager creates the ReplicaSet and its Pods; PodSecurity admission would
    // refuse them (FailedCreate) if the operator's pod were not "restricted".
    const pods = await waitUntil(
      "the 2 operator pods",
      async () =>
        (JSON.parse(await kubectl(["get", "pods", "-n", RELEASE_NS, "-l", "app.kubernetes.io/name=mcp-bastion", "-o", "json"])) as Any).items as Any[],
      (items) => items.length === 2,
      120_000,
      500,
    );
    const events = JSON.parse(await kubectl(["get", "events", "-n", RELEASE_NS, "-o", "json"])) as Any;
    const refused = events.items.filter((e: Any) => e.reason === "FailedCreate").map((e: Any) => e.message);
    assert.deepEqual(refused, []);
    assert.equal(pods[0].spec.securityContext.runAsUser, 65532);
    assert.equal(pods[0].status.phase, "Pending", "no kubelet here: the pod is admitted but never runs");
  });

  test("cluster mode: the ServiceAccount holds exactly the controller's rules, nothing else", async () => {
    const rbac = operatorRbac();
    const perms = await canList("team-a");
    assert.ok(perms.get("mcpservers.mcp.bastion.dev")?.has("watch"), "cannot watch McpServers");
    for (const [verb, resource] of [
      ["create", "pods/exec"],
      ["get", "secrets"],
      ["impersonate", "serviceaccounts"],
      ["escalate", "clusterroles"],
      ["bind", "clusterroles"],
      ["delete", "nodes"],
      ["create", "clusterrolebindings"],
    ] as const) {
      if (granted(rbac.namespaced).get(resource)?.has(verb)) continue;
      assert.equal(await can(verb, resource), false, `the operator may ${verb} ${resource}`);
    }
    const want = granted([...rbac.namespaced, ...rbac.cluster]);
    for (const [resource, verbs] of perms) {
      if (BUILTIN.has(resource)) continue;
      const allowed = want.get(resource) ?? new Set();
      assert.deepEqual(
        [...verbs].filter((v) => !allowed.has(v)),
        [],
        `${resource}: more than the controller asks for`,
      );
    }
    for (const [resource, verbs] of want) {
      const have = perms.get(resource) ?? new Set();
      assert.deepEqual(
        [...verbs].filter((v) => !have.has(v)),
        [],
        `${resource}: the controller needs it, the chart does not grant it`,
      );
    }
  });

  test("namespaced mode: Roles only in the watched namespaces", async () => {
    for (const ns of ["team-a", "team-b"]) await ensureNamespace(ns);
    await helmRun(["upgrade", RELEASE, CHART_DIR, "-n", RELEASE_NS, "--reuse-values", "--set", "watchNamespaces={team-a}", "--set", "replicaCount=1"]);
    assert.ok(await can("watch", "mcpservers.mcp.bastion.dev", "team-a"), "cannot watch McpServers in team-a");
    assert.equal(await can("watch", "mcpservers.mcp.bastion.dev", "team-b"), false, "can watch McpServers in an unwatched namespace");
    assert.equal(await can("list", "mcpservers.mcp.bastion.dev"), false, "can list McpServers cluster-wide");
    const teamB = await canList("team-b");
    // Cluster-scoped reads (rbac.cluster: ClusterIssuers) show up in every namespace's list; nothing namespaced may.
    const clusterScoped = granted(operatorRbac().cluster);
    assert.deepEqual(
      [...teamB.keys()].filter((k) => !BUILTIN.has(k) && !k.startsWith("customresourcedefinitions") && !clusterScoped.has(k)),
      [],
      "permissions in an unwatched namespace",
    );
    const manifest = await helmRun(["get", "manifest", RELEASE, "-n", RELEASE_NS]);
    const dep = parseManifests(manifest).find((d) => d.kind === "Deployment") as Any;
    assert.ok(dep.spec.template.spec.containers[0].args.includes("--namespaces=team-a"));
  });

  test("the operator, with the chart's args and ServiceAccount, reconciles an example", async () => {
    const example = mcpServerExamples()[0];
    assert.ok(example, "no McpServer example in examples/");
    const manifest = await helmRun(["get", "manifest", RELEASE, "-n", RELEASE_NS]);
    const dep = parseManifests(manifest).find((d) => d.kind === "Deployment") as Any;
    const chartArgs: string[] = dep.spec.template.spec.containers[0].args;

    // Every flag the chart passes must be one the operator documents.
    const help = await run(process.execPath, [join(ROOT, "cli", "bin", "mcp-bastion.js"), "operator", "--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const a of chartArgs.filter((a) => a.startsWith("--"))) {
      const flag = a.split("=")[0]!;
      assert.ok(help.stdout.includes(flag), `the chart passes ${flag}, which \`mcp-bastion operator --help\` does not list`);
    }

    // The same args, with free local ports, as the chart's ServiceAccount.
    const [metrics, health] = [await freePort(), await freePort()];
    const args = chartArgs.map((a) =>
      a.startsWith("--metrics-bind-address=") ? `--metrics-bind-address=127.0.0.1:${metrics}` : a.startsWith("--health-port=") ? `--health-port=${health}` : a,
    );
    const kubeconfig = await serviceAccountKubeconfig();
    // The chart's plain env too (NODE_OPTIONS heap sizing, TMPDIR); POD_NAMESPACE comes from the downward API there.
    const chartEnv: Record<string, string> = {};
    for (const e of dep.spec.template.spec.containers[0].env ?? []) if (typeof e.value === "string") chartEnv[e.name] = e.value;
    const env = { ...process.env, ...chartEnv, TMPDIR: tmpdir(), POD_NAMESPACE: RELEASE_NS };
    operator = spawn(process.execPath, [join(ROOT, "cli", "bin", "mcp-bastion.js"), ...args, `--kubeconfig=${kubeconfig}`], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
    });
    operator.stdout?.on("data", (b: Buffer) => (operatorLog += b));
    operator.stderr?.on("data", (b: Buffer) => (operatorLog += b));

    const server = structuredClone(example.docs[0]!) as Any;
    server.metadata.namespace = "team-a";
    await kubectl(["apply", "-f", "-"], JSON.stringify(server));
    const name = server.metadata.name;
    let lastStatus = "";
    const obj = await waitFor(
      () => `McpServer ${name} Reconciled; last status: ${lastStatus}\noperator output:\n${operatorLog.slice(-3000)}`,
      async () => {
        if (operator?.exitCode !== null) throw new Error(`operator exited ${operator?.exitCode}:\n${operatorLog.slice(-3000)}`);
        const o = JSON.parse(await kubectl(["get", "mcpserver", name, "-n", "team-a", "-o", "json"])) as Any;
        lastStatus = JSON.stringify(o.status?.conditions ?? []);
        const c = (o.status?.conditions ?? []).find((x: Any) => x.type === "Reconciled");
        return c?.status === "True" && o.status.observedGeneration === o.metadata.generation ? o : undefined;
      },
      120_000,
      500,
    );
    // Its children exist, owned by the McpServer, running the gateway image the chart passed.
    const deps = JSON.parse(await kubectl(["get", "deployments", "-n", "team-a", "-l", `mcp.bastion.dev/server=${name}`, "-o", "json"])) as Any;
    assert.equal(deps.items.length, 1, "no Deployment for the McpServer");
    const d = deps.items[0];
    assert.equal(d.metadata.ownerReferences?.[0]?.uid, obj.metadata.uid);
    const images = [...d.spec.template.spec.containers, ...(d.spec.template.spec.initContainers ?? [])].map((c: Any) => c.image);
    assert.ok(images.includes(GATEWAY_IMAGE), `gateway image ${GATEWAY_IMAGE} not used: ${images.join(", ")}`);
    // Argo CD must see no diff: the operator owns status only, never spec.
    const mine = (obj.metadata.managedFields ?? []).filter(
      (f: Any) => f.manager !== "kubectl-client-side-apply" && f.manager !== "kubectl" && f.manager !== "before-first-apply",
    );
    for (const f of mine) {
      assert.equal(f.subresource, "status", `field manager ${f.manager} owns ${JSON.stringify(f.fieldsV1).slice(0, 200)} outside status`);
    }
    // And Argo CD's health check, on the live object: reconciled but no pod runs here -> Progressing.
    const lua = await run(await tool("luahealth"), [join(CHART_DIR, "argocd", "health.lua")], { input: JSON.stringify([obj]) });
    const [health1] = JSON.parse(lua.stdout) as { status: string }[];
    assert.equal(health1?.status, "Progressing", lua.stdout);
  });

  test("server-side dry run (strict) of every rendered example and of helm template output", async (t) => {
    // The real Istio, External Secrets and cert-manager CRDs (make crds-upstream), so their objects are dry-run too.
    for (const f of upstreamCrdFiles()) await kubectl(["apply", "--server-side", "--force-conflicts", "-f", f]);
    await waitUntil(
      "the upstream CRDs to be Established (not yet: the names seen last)",
      async () => {
        const list = JSON.parse(await kubectl(["get", "crd", "-o", "json"])) as Any;
        return list.items
          .filter((c: Any) => !(c.status?.conditions ?? []).some((x: Any) => x.type === "Established" && x.status === "True"))
          .map((c: Any) => c.metadata.name) as string[];
      },
      (pending) => pending.length === 0,
      60_000,
      500,
    );
    const objects: KubeDoc[] = [];
    for (const ex of mcpServerExamples()) objects.push(...(await renderExample(ex.path)));
    for (const values of [[], ["--set", "watchNamespaces={team-a,team-b}", "--set", "replicaCount=2"]]) {
      const r = await run(helm, ["template", RELEASE, CHART_DIR, "-n", RELEASE_NS, "--include-crds", "--kube-version", "1.34.4", ...values]);
      assert.equal(r.code, 0, r.stderr);
      objects.push(...parseManifests(r.stdout));
    }
    for (const ns of new Set(objects.map((o) => o.metadata.namespace).filter((n): n is string => !!n))) await ensureNamespace(ns);
    const failures: string[] = [];
    for (const o of objects) {
      const r = await cp.kubectl(
        ["apply", "--dry-run=server", "--validate=strict", "--server-side", "--force-conflicts", "--field-manager=ship-test", "-f", "-"],
        { input: JSON.stringify(o) },
      );
      const where = `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
      if (r.code !== 0) failures.push(`${where}: ${r.stderr.trim()}`);
      else if (/Warning:/.test(r.stderr)) failures.push(`${where} warns: ${r.stderr.trim()}`);
    }
    assert.deepEqual(failures, []);
    t.diagnostic(`${objects.length} objects accepted by the API server (strict, dry run)`);
    assert.ok(objects.length > 10);
    // The third-party kinds the examples render are among them (validated, not skipped).
    for (const group of ["security.istio.io", "networking.istio.io", "external-secrets.io"]) {
      assert.ok(
        objects.some((o) => o.apiVersion.startsWith(`${group}/`)),
        `the examples render no ${group} object to dry-run`,
      );
    }
  });
});
