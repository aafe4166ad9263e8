// The Helm chart without a cluster: lint, render (default and namespaced), schema errors a user
// would see, and the generated copies (CRDs, RBAC, Argo CD snippets) never drifting from their sources.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import { drift, expectedFiles, operatorRbac, staleCrds } from "../../hack/tools/sync-chart.ts";
import { CHART_DIR, KUBE_VERSION, ROOT, run, tool } from "./tools.ts";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

let helm: string;
async function template(args: string[] = []): Promise<Obj[]> {
  const r = await run(helm, ["template", "bastion", CHART_DIR, "-n", "mcp-system", "--kube-version", KUBE_VERSION, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}
const find = (objs: Obj[], kind: string, name?: string) => objs.filter((o) => o.kind === kind && (!name || o.metadata.name === name));

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are navigated loosely in assertions
type Any = any;

describe("helm chart", () => {
  before(async () => {
    helm = await tool("helm");
  });

  test("helm lint passes in strict mode, for default and namespaced values", async () => {
    for (const extra of [[], ["--set", "watchNamespaces={team-a,team-b}", "--set", "replicaCount=2"]]) {
      const r = await run(helm, ["lint", "--strict", CHART_DIR, "--kube-version", KUBE_VERSION, ...extra]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test("default values: cluster-wide RBAC, hardened operator pod, metrics Service, CRDs", async () => {
    const objs = await template(["--include-crds"]);
    const kinds = objs.map((o) => o.kind);
    const crdSources = readdirSync(join(ROOT, "crds")).filter((n) => n.endsWith(".yaml"));
    assert.equal(kinds.filter((k) => k === "CustomResourceDefinition").length, crdSources.length, "the chart installs every CRD in crds/");
    for (const k of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "NetworkPolicy"]) {
      assert.ok(kinds.includes(k), `no ${k} rendered`);
    }
    assert.equal(find(objs, "Role").filter((r) => r.metadata.namespace !== "mcp-system").length, 0, "Roles outside the release namespace in cluster mode");
    assert.equal(find(objs, "ServiceMonitor").length + find(objs, "PrometheusRule").length, 0, "monitoring objects must be opt-in");
    for (const o of objs.filter((o) => !o.kind.startsWith("Cluster") && o.kind !== "CustomResourceDefinition")) {
      assert.equal(o.metadata.namespace, "mcp-system", `${o.kind}/${o.metadata.name} without explicit namespace`);
    }

    const [dep] = find(objs, "Deployment") as Any[];
    const pod = dep.spec.template.spec;
    const [c] = pod.containers;
    // Pod Security "restricted" plus read-only root filesystem and a numeric non-root user.
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
    assert.ok(c.resources.limits.cpu && c.resources.limits.memory, "limits missing");
    // V8 sized for the memory limit, so the heap does not grow into the OOM killer.
    assert.ok(c.env.some((e: Any) => e.name === "NODE_OPTIONS" && /--max-old-space-size=\d+/.test(e.value)));
    assert.equal(c.livenessProbe.httpGet.path, "/healthz");
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.deepEqual(
      c.ports.map((p: Any) => p.name),
      ["metrics", "health"],
    );
    assert.equal(c.image, "ghcr.io/mcp-bastion/mcp-bastion:0.1.0");
    assert.ok(c.args.includes("--gateway-image=ghcr.io/mcp-bastion/mcp-bastion:0.1.0"), c.args.join(" "));
    assert.ok(!c.args.some((a: string) => a.startsWith("--namespaces")), "cluster mode must not restrict namespaces");

    const [svc] = find(objs, "Service") as Any[];
    assert.equal(svc.spec.ports[0].targetPort, "metrics");
    assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  });

  test("namespaced values: a Role and RoleBinding per watched namespace, no cluster-wide write access", async () => {
    const objs = await template(["--set", "watchNamespaces={team-a,team-b}"]);
    const roles = find(objs, "Role").filter((r) => r.metadata.namespace !== "mcp-system");
    assert.deepEqual(roles.map((r) => r.metadata.namespace).sort(), ["team-a", "team-b"]);
    const bindings = find(objs, "RoleBinding").filter((r) => r.metadata.namespace !== "mcp-system") as Any[];
    assert.deepEqual(bindings.map((b) => b.metadata.namespace).sort(), ["team-a", "team-b"]);
    for (const b of bindings) assert.deepEqual(b.subjects, [{ kind: "ServiceAccount", name: "bastion-mcp-bastion", namespace: "mcp-system" }]);
    // Cluster roles left: the aggregated user-facing view/edit roles and cluster-scoped reads only.
    const writeVerbs = new Set(["create", "update", "patch", "delete", "deletecollection"]);
    const bound = new Set((find(objs, "ClusterRoleBinding") as Any[]).map((b) => b.roleRef.name));
    for (const cr of find(objs, "ClusterRole") as Any[]) {
      if (!bound.has(cr.metadata.name)) continue;
      for (const rule of cr.rules)
        assert.ok(!rule.verbs.some((v: string) => writeVerbs.has(v)), `bound ClusterRole ${cr.metadata.name} can write: ${JSON.stringify(rule)}`);
    }
    const [dep] = find(objs, "Deployment") as Any[];
    assert.ok(dep.spec.template.spec.containers[0].args.includes("--namespaces=team-a,team-b"));
  });

  test("RBAC rules in the chart are exactly the controller's (operator/src/controller/rbac.ts)", async () => {
    const rbac = operatorRbac();
    const objs = await template(["--set", "watchNamespaces={team-a}"]);
    const [role] = find(objs, "Role").filter((r) => r.metadata.namespace === "team-a") as Any[];
    assert.deepEqual(role.rules, rbac.namespaced);
    const cluster = await template();
    const [cr] = find(cluster, "ClusterRole", "bastion-mcp-bastion") as Any[];
    assert.deepEqual(cr.rules, rbac.namespaced);
    // The cluster-scoped reads (ClusterIssuers) in both modes.
    for (const objs2 of [objs, cluster]) assert.deepEqual((find(objs2, "ClusterRole", "bastion-mcp-bastion-cluster") as Any[])[0]?.rules, rbac.cluster);
  });

  test("two replicas (the default) get a PodDisruptionBudget and node anti-affinity; one does not", async () => {
    const objs = (await template(["--set", "replicaCount=2"])) as Any[];
    assert.equal(find(objs, "PodDisruptionBudget").length, 1);
    const [dep] = find(objs, "Deployment") as Any[];
    assert.ok(dep.spec.template.spec.affinity.podAntiAffinity);
    assert.equal(
      find(await template(["--set", "replicaCount=1"]), "PodDisruptionBudget").length,
      0,
      "a PDB with minAvailable 1 on one replica would block every drain",
    );
  });

  test("cluster domain and allowed ClusterSecretStores reach the operator's flags; none by default", async () => {
    const [dep] = find(await template(["--set", "clusterDomain=corp.local", "--set", "allowClusterSecretStores.team-a={vault,aws}"]), "Deployment") as Any[];
    const args: string[] = dep.spec.template.spec.containers[0].args;
    assert.ok(args.includes("--cluster-domain=corp.local"));
    assert.ok(args.includes("--allow-cluster-secret-store=team-a=vault,aws"));
    const [plain] = find(await template(), "Deployment") as Any[];
    assert.ok(
      !plain.spec.template.spec.containers[0].args.some((a: string) => a.startsWith("--allow-cluster-secret-store")),
      "a shared secret store is allowed by default",
    );
  });

  test("defaultImagePolicy reaches the operator as its default for servers without spec.imagePolicy (issue 14)", async () => {
    const [plain] = find(await template(), "Deployment") as Any[];
    assert.ok(plain.spec.template.spec.containers[0].args.includes("--default-image-policy=AllowTags"));
    const [strict] = find(await template(["--set", "defaultImagePolicy=RequireDigest"]), "Deployment") as Any[];
    assert.ok(strict.spec.template.spec.containers[0].args.includes("--default-image-policy=RequireDigest"));
  });

  test("image digest wins over the tag, and the gateway image follows unless set", async () => {
    const digest = `sha256:${"a".repeat(64)}`;
    const [dep] = find(await template(["--set", `image.digest=${digest}`]), "Deployment") as Any[];
    const c = dep.spec.template.spec.containers[0];
    assert.equal(c.image, `ghcr.io/mcp-bastion/mcp-bastion@${digest}`);
    assert.ok(c.args.includes(`--gateway-image=ghcr.io/mcp-bastion/mcp-bastion@${digest}`));
    const [dep2] = find(await template(["--set", "gateway.image=registry.example/gw:1"]), "Deployment") as Any[];
    assert.ok(dep2.spec.template.spec.containers[0].args.includes("--gateway-image=registry.example/gw:1"));
  });

  test("values.schema.json rejects wrong values with the field named", async () => {
    const cases: [string[], RegExp][] = [
      [["--set", "logLevel=verbose"], /\/logLevel.*'debug', 'info', 'warn', 'error'/],
      [["--set", "watchNamespaces={Team_A}"], /\/watchNamespaces\/0.*Team_A/],
      [["--set", "replicaCount=0"], /\/replicaCount/],
      [["--set", "replicaCont=2"], /replicaCont.*not allowed/],
      [["--set", "resources.limits=null"], /\/resources.*limits/],
      [["--set", "image.digest=latest"], /\/image\/digest/],
      [["--set", "allowClusterSecretStores.Team_A={vault}"], /\/allowClusterSecretStores.*Team_A/],
      [["--set", "leaderElection.enabled=false"], /replicaCount > 1 needs leaderElection\.enabled=true/],
      [["--set", "nodeOptions=--require=/tmp/x.js"], /\/nodeOptions/],
      [["--set", "defaultImagePolicy=Strict"], /\/defaultImagePolicy.*'RequireDigest', 'AllowTags'/],
    ];
    for (const [args, message] of cases) {
      const r = await run(helm, ["template", "bastion", CHART_DIR, ...args]);
      assert.notEqual(r.code, 0, `accepted ${args.join(" ")}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /goroutine|panic/);
    }
  });

  test("ServiceMonitor, PodMonitor and PrometheusRule render when enabled", async () => {
    const objs = (await template([
      "--set",
      "metrics.serviceMonitor.enabled=true",
      "--set",
      "metrics.podMonitor.enabled=true",
      "--set",
      "metrics.prometheusRule.enabled=true",
    ])) as Any[];
    const [rule] = find(objs, "PrometheusRule") as Any[];
    const alerts = rule.spec.groups.flatMap((g: Any) => g.rules.map((r: Any) => r.alert));
    assert.deepEqual(alerts.sort(), [
      "McpBastionApiKeyEntriesInvalid",
      "McpBastionApiKeyExpired",
      "McpBastionApiKeyExpiringSoon",
      "McpBastionAuditExportDropping",
      "McpBastionAuthFailureSpike",
      "McpBastionRateLimitNotShared",
      "McpBastionRateLimitSpike",
      "McpBastionReconcileErrors",
      "McpBastionToolDescriptionDrift",
    ]);
    assert.equal(find(objs, "ServiceMonitor").length, 1);
    assert.equal(find(objs, "PodMonitor").length, 1);
  });

  test("every metric the alerts use is exported by the gateway or the operator", async (t) => {
    const objs = (await template(["--set", "metrics.prometheusRule.enabled=true"])) as Any[];
    const [rule] = find(objs, "PrometheusRule") as Any[];
    const used = new Set<string>();
    // Counters (..._total) and gauges alike: every mcp_gateway_* / mcp_bastion_* series name.
    const METRIC = /mcp_(?:gateway|bastion)_[a-z_]+/g;
    for (const g of rule.spec.groups) for (const r of g.rules) for (const m of String(r.expr).matchAll(METRIC)) used.add(m[0]);
    assert.ok(used.size >= 4, "alerts reference no metrics");
    for (const [component, prefix] of [
      ["gateway", "mcp_gateway_"],
      ["operator", "mcp_bastion_"],
    ] as const) {
      const source = listTs(join(ROOT, component, "src"))
        .map((f) => readFileSync(f, "utf8"))
        .join("\n");
      const mine = [...used].filter((m) => m.startsWith(prefix));
      if (!source.includes("prom-client")) {
        t.diagnostic(`${component} exports no metrics yet: not checked: ${mine.join(", ")}`);
        continue;
      }
      // prom-client metrics are declared with their full name (counters with _total included).
      assert.deepEqual(
        mine.filter((m) => !source.includes(`"${m}"`)),
        [],
        `alerts on ${component} metrics nobody exports`,
      );
      // Labels grouped or matched on must be the metric's own labelNames, the default labels the code
      // puts on every series (new Metrics({ key: ... })), or target labels Prometheus adds.
      const defaults = new Set<string>();
      for (const m of source.matchAll(/(?:new Metrics|setDefaultLabels)\(\s*\{([^}]*)\}/g)) for (const k of m[1]!.matchAll(/(\w+)\s*:/g)) defaults.add(k[1]!);
      const targetLabels = ["namespace", "pod", "service", "job", "instance"];
      for (const g of rule.spec.groups as Any[]) {
        for (const r of g.rules as Any[]) {
          const expr = String(r.expr);
          const metric = expr.match(/mcp_(?:gateway|bastion)_[a-z_]+/)?.[0];
          if (!metric?.startsWith(prefix)) continue;
          const at = source.indexOf(`"${metric}"`);
          const decl = source.slice(at, source.indexOf("}", at));
          const own = [...(decl.match(/labelNames:\s*\[([^\]]*)\]/)?.[1] ?? "").matchAll(/"(\w+)"/g)].map((m) => m[1]!);
          const used = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()));
          used.push(...[...expr.matchAll(/\{(\w+)=/g)].map((m) => m[1]!));
          const unknown = used.filter((l) => !own.includes(l) && !defaults.has(l) && !targetLabels.includes(l));
          assert.deepEqual(unknown, [], `${r.alert}: ${metric} has no such label (it has ${[...own, ...defaults].join(", ")})`);
        }
      }
    }
  });

  test("the chart's generated files (CRDs, RBAC, Argo CD snippets) match their sources", async () => {
    const expected = await expectedFiles();
    assert.ok(Object.keys(expected).some((p) => p.startsWith("crds/")) || readdirSync(join(ROOT, "crds")).length === 0);
    assert.deepEqual([...drift(expected), ...staleCrds(expected)], [], "run `make chart`");
  });
});

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}
