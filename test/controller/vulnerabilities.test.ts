// issue 14: Trivy Operator's VulnerabilityReports for the server's image reach the McpServer's status and
// checklist, against a real kube-apiserver + kube-controller-manager (Deployments get real ReplicaSets)
// with Trivy Operator's own CRD (from its Go module, hack/trivy/crd.sh) and reports shaped exactly as its
// scanner writes them (labels, owner reference, name, report fields: trivy-operator v0.29.0's
// ReportBuilder). The scanner itself does not run here: it downloads its vulnerability database from the
// internet, which this machine cannot reach. The operator runs under exactly the RBAC of rbac.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Operator } from "../../operator/src/controller/operator.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor, waitUntil } from "../support/index.ts";
import {
  conditionsOf,
  getJson,
  grantOperatorRbac,
  installCrd,
  mcpServer,
  must,
  ROOT,
  startInProcessOperator,
  waitCondition,
  waitEstablished,
} from "./helpers.ts";

const NS = "scanned";
const DIGEST = "sha256:4c5e3a1f0f3b6a8e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a0f9e8d7c6";
const OLD_DIGEST = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const IMAGE = `ghcr.io/example/mcp-everything@${DIGEST}`;
let cp: ControlPlane;
let op: Operator;

const apply = (obj: unknown) => must(cp, ["apply", "--server-side", "--field-manager=trivy-operator", "-f", "-"], JSON.stringify(obj));

before(async () => {
  cp = await startControlPlane({ controllerManager: true });
  await installCrd(cp);
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  op = await startInProcessOperator(cp, { concurrency: 4 });
});

after(async () => {
  await op?.stop();
  await cp?.stop();
});

/** The Deployment's current ReplicaSet, as Trivy Operator resolves it (same revision annotation). */
async function currentReplicaSet(server: string): Promise<{ name: string; uid: string }> {
  return await waitFor(`the current ReplicaSet of ${server}`, async () => {
    const d = await getJson(cp, ["deployment", "-n", NS, server]);
    const rs = await getJson(cp, ["replicasets", "-n", NS, "-l", `mcp.bastion.dev/server=${server}`]);
    const revision = d?.metadata.annotations?.["deployment.kubernetes.io/revision"];
    const cur = rs?.items.find(
      (r: { metadata: { annotations?: Record<string, string> } }) => revision && r.metadata.annotations?.["deployment.kubernetes.io/revision"] === revision,
    );
    return cur ? { name: cur.metadata.name as string, uid: cur.metadata.uid as string } : undefined;
  });
}

/**
 * A VulnerabilityReport as Trivy Operator's ReportBuilder writes it for a Deployment's pods: named
 * replicaset-<ReplicaSet>-<container>, labelled with the ReplicaSet and the container, controlled by the
 * ReplicaSet (blockOwnerDeletion false), the image split into registry server and artifact, the summary.
 */
function report(
  rs: { name: string; uid: string },
  counts: { critical: number; high: number; medium?: number; low?: number },
  digest = DIGEST,
  container = "server",
  updated = new Date(),
) {
  const vulns = [
    ...Array.from({ length: counts.critical }, (_, i) => ({ severity: "CRITICAL", id: `CVE-2026-10${i}` })),
    ...Array.from({ length: counts.high }, (_, i) => ({ severity: "HIGH", id: `CVE-2026-20${i}` })),
  ].map((v) => ({
    vulnerabilityID: v.id,
    resource: "openssl",
    installedVersion: "3.0.11-1",
    fixedVersion: "3.0.15-1",
    publishedDate: "2026-01-10T00:00:00Z",
    lastModifiedDate: "2026-02-01T00:00:00Z",
    severity: v.severity,
    title: "openssl: example",
    primaryLink: `https://avd.aquasec.com/nvd/${v.id.toLowerCase()}`,
    links: [],
    score: 9.8,
    target: `ghcr.io/example/mcp-everything@${digest} (debian 12.8)`,
    class: "os-pkgs",
    packageType: "debian",
  }));
  return {
    apiVersion: "aquasecurity.github.io/v1alpha1",
    kind: "VulnerabilityReport",
    metadata: {
      name: `replicaset-${rs.name}-${container}`,
      namespace: NS,
      labels: {
        "app.kubernetes.io/managed-by": "trivy-operator",
        "resource-spec-hash": "7f9c6b8d5",
        "trivy-operator.container.name": container,
        "trivy-operator.resource.kind": "ReplicaSet",
        "trivy-operator.resource.name": rs.name,
        "trivy-operator.resource.namespace": NS,
      },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: rs.name, uid: rs.uid, controller: true, blockOwnerDeletion: false }],
    },
    report: {
      updateTimestamp: updated.toISOString().replace(/\.\d{3}Z$/, "Z"),
      scanner: { name: "Trivy", vendor: "Aqua Security", version: "0.67.2" },
      registry: { server: "ghcr.io" },
      artifact: { repository: "example/mcp-everything", digest },
      os: { family: "debian", name: "12.8" },
      summary: { criticalCount: counts.critical, highCount: counts.high, mediumCount: counts.medium ?? 0, lowCount: counts.low ?? 0, unknownCount: 0 },
      vulnerabilities: vulns,
    },
  };
}

type Status = {
  conditions?: { type: string; status: string; reason: string; message: string }[];
  checklist?: { id: string; satisfied: boolean; detail: string }[];
  vulnerabilities?: Record<string, unknown>;
  optOuts?: string[];
};
const statusOf = async (name: string) => ((await getJson(cp, ["mcpserver", "-n", NS, name]))?.status ?? {}) as Status;
const item = (s: Status) => s.checklist?.find((c) => c.id === "image-vulnerabilities");

test("without Trivy Operator's CRD the checklist says the image is not scanned", async () => {
  await apply(mcpServer("early", NS, { image: IMAGE }));
  await waitCondition(cp, NS, "early", "Reconciled", "True");
  const s = await waitUntil(
    "the vulnerability item of early",
    () => statusOf("early"),
    (v) => item(v) !== undefined,
  );
  assert.deepEqual(
    [item(s)?.satisfied, item(s)?.detail],
    [false, "not scanned: Trivy Operator's VulnerabilityReport CRD (aquasecurity.github.io/v1alpha1) is not installed"],
  );
});

test("a report for the server's image: counts in status and checklist, Degraded when criticals appear, cleared when they go", async () => {
  // Trivy Operator's real CRD, installed while the operator runs (discovery picks it up and starts the watch).
  const crd = execFileSync(join(ROOT, "hack/trivy/crd.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  await must(cp, ["apply", "--server-side", "-f", crd]);
  await waitEstablished(cp, ["vulnerabilityreports.aquasecurity.github.io"]);
  // Read access to those reports only: list and watch yes, write no, and nothing else of Trivy's (nor ReplicaSets).
  const can = async (verb: string, what: string) => (await cp.kubectl(["auth", "can-i", verb, what, "-n", NS, "--as", "mcp-bastion-operator"])).stdout.trim();
  const reports = "vulnerabilityreports.aquasecurity.github.io";
  assert.deepEqual(
    [
      await can("list", reports),
      await can("watch", reports),
      await can("create", reports),
      await can("delete", reports),
      await can("list", "configauditreports.aquasecurity.github.io"),
      await can("list", "replicasets.apps"),
    ],
    ["yes", "yes", "no", "no", "no", "no"],
  );
  await waitUntil(
    "early's item to see the CRD",
    () => statusOf("early").then((s) => item(s)?.detail ?? ""),
    (d) => d.startsWith("no VulnerabilityReport for"),
  );

  await apply(mcpServer("web", NS, { image: IMAGE }));
  await waitCondition(cp, NS, "web", "Reconciled", "True");
  const rs = await currentReplicaSet("web");
  assert.equal(
    item(await statusOf("web"))?.detail,
    `no VulnerabilityReport for ${IMAGE} yet (Trivy Operator scans the server's ReplicaSet after each rollout)`,
  );

  // The scanner writes its report: the status follows without anyone touching the McpServer.
  await apply(report(rs, { critical: 2, high: 5, medium: 1 }));
  const degraded = await waitCondition(cp, NS, "web", "Degraded", "True", "CriticalVulnerabilities");
  const status = degraded.status as Status;
  assert.deepEqual(status.vulnerabilities, {
    report: `replicaset-${rs.name}-server`,
    image: `ghcr.io/example/mcp-everything@${DIGEST}`,
    scanner: "Trivy 0.67.2",
    updateTimestamp: (status.vulnerabilities as { updateTimestamp: string }).updateTimestamp,
    critical: 2,
    high: 5,
    medium: 1,
    low: 0,
    unknown: 0,
  });
  assert.match(
    conditionsOf(degraded).Degraded!.message,
    /^2 critical vulnerabilities in ghcr\.io\/example\/mcp-everything@sha256:4c5e.* update the image, or accept them with spec\.vulnerabilities\.onCritical: Report$/,
  );
  assert.equal(item(status)?.satisfied, false);
  assert.match(item(status)!.detail, /^2 critical, 5 high, 1 medium, 0 low, 0 unknown in ghcr\.io\/example\/mcp-everything@sha256:4c5e/);

  // A rescan after the base image was patched: no critical left.
  await apply(report(rs, { critical: 0, high: 1 }));
  const fixed = await waitCondition(cp, NS, "web", "Degraded", "False", "AsExpected");
  assert.equal((fixed.status as Status).vulnerabilities?.critical, 0);
  assert.equal(item(fixed.status as Status)?.satisfied, true);
});

test("after a rollout to a new image, the old ReplicaSet's report no longer counts; nor does another container's", async () => {
  // The server first runs an older image, and the scanner reports on it (3 critical).
  await apply(mcpServer("api", NS, { image: `ghcr.io/example/mcp-everything@${OLD_DIGEST}` }));
  await waitCondition(cp, NS, "api", "Reconciled", "True");
  const old = await currentReplicaSet("api");
  await apply(report(old, { critical: 3, high: 0 }, OLD_DIGEST));
  await waitCondition(cp, NS, "api", "Degraded", "True", "CriticalVulnerabilities");

  // The image is updated: a new ReplicaSet; the old one (and its report) stays, as Deployments keep history.
  await apply(mcpServer("api", NS, { image: IMAGE }));
  const rs = await waitUntil(
    "a new ReplicaSet for the new image",
    () => currentReplicaSet("api"),
    (r) => r.name !== old.name,
  );
  // Reports an hour newer than the one that matters, which would win were they counted: the old
  // ReplicaSet's rescan of the old image, and the new ReplicaSet's gateway container.
  const later = new Date(Date.now() + 3_600_000);
  await apply(report(old, { critical: 3, high: 1 }, OLD_DIGEST, "server", later));
  await apply(report(rs, { critical: 7, high: 0 }, DIGEST, "gateway", later));
  await apply(report(rs, { critical: 0, high: 6 }));
  // Between the rollout and the new report nothing describes the running image (no vulnerabilities in status).
  const s = await waitUntil(
    "api's status to count a report again",
    () => statusOf("api"),
    (v) => v.vulnerabilities !== undefined && v.vulnerabilities.report !== `replicaset-${old.name}-server`,
  );
  assert.deepEqual([s.vulnerabilities?.report, s.vulnerabilities?.critical, s.vulnerabilities?.high], [`replicaset-${rs.name}-server`, 0, 6]);
  assert.deepEqual([conditionsOf({ status: s } as never).Degraded?.status, conditionsOf({ status: s } as never).Degraded?.reason], ["False", "AsExpected"]);
  assert.ok(await getJson(cp, ["vulnerabilityreports", "-n", NS, `replicaset-${old.name}-server`]), "the old ReplicaSet's report is still there");
});

test("spec.vulnerabilities.onCritical: Report keeps the server un-degraded, visibly: opt-out and checklist say so", async () => {
  await apply(mcpServer("legacy", NS, { image: IMAGE, vulnerabilities: { onCritical: "Report" } }));
  await waitCondition(cp, NS, "legacy", "Reconciled", "True");
  const rs = await currentReplicaSet("legacy");
  await apply(report(rs, { critical: 1, high: 0 }));
  const s = await waitUntil(
    "legacy's status to count the critical",
    () => statusOf("legacy"),
    (v) => v.vulnerabilities?.critical === 1,
  );
  assert.equal(conditionsOf({ status: s } as never).Degraded?.status, "False");
  assert.ok(
    s.optOuts?.includes("spec.vulnerabilities.onCritical: Report (critical vulnerabilities in the image do not degrade the server)"),
    JSON.stringify(s.optOuts),
  );
  assert.equal(item(s)?.satisfied, false);
  assert.match(item(s)!.detail, /^1 critical, .*; accepted by spec\.vulnerabilities\.onCritical: Report$/);
});

test("the API server refuses a bad spec.vulnerabilities.onCritical or spec.audit.otlp.endpoint, naming the field", async () => {
  const refused = async (spec: Record<string, unknown>) => {
    const r = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: JSON.stringify(mcpServer("bad", NS, spec)) });
    assert.notEqual(r.code, 0, "accepted");
    return r.stderr;
  };
  assert.match(
    await refused({ vulnerabilities: { onCritical: "Ignore" } }),
    /spec\.vulnerabilities\.onCritical: Unsupported value: "Ignore": supported values: "Degrade", "Report"/,
  );
  assert.match(await refused({ audit: { otlp: { endpoint: "http://user:pw@collector:4318" } } }), /spec\.audit\.otlp\.endpoint: Invalid value: .*should match/);
  assert.match(
    await refused({ audit: { otlp: { endpoint: "http://collector:4318", bufferLines: 5 } } }),
    /spec\.audit\.otlp\.bufferLines: Invalid value: 5: spec\.audit\.otlp\.bufferLines in body should be greater than or equal to 100/,
  );
});
