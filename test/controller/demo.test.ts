// `mcp-bastion demo` (what `make demo` runs), end to end: without KUBECONFIG it brings up its own
// control plane and tears it down; with KUBECONFIG it uses that cluster and installs no
// third-party CRD there.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { getJson, ROOT } from "./helpers.ts";
import { mcpServerExampleFiles } from "../support/examples.ts";

function demo(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // The timeout only bounds a hung demo: on a loaded machine starting the control plane alone takes minutes.
    execFile(process.execPath, [join(ROOT, "cli", "bin", "mcp-bastion.js"), "demo", ...args], { env, timeout: 10 * 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Every McpServer of examples/ (the demo applies them all; examples/ also holds an Argo CD Application). */
const exampleServers = mcpServerExampleFiles().flatMap((e) => e.docs);
let cp: ControlPlane | undefined;
after(async () => {
  await cp?.stop();
});

test("without KUBECONFIG: a local control plane, the examples with their printer columns and a checklist, then a clean stop", async () => {
  // Its own TMPDIR, so what it leaves behind (if anything) is told apart from other tests' control planes.
  const scratch = mkdtempSync(join(tmpdir(), "demo-test-"));
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: scratch };
  delete env.KUBECONFIG;
  const r = await demo(["--once", "--server", "everything"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAMESPACE\s+NAME\s+READY\s+TRANSPORT\s+AUTH\s+MTLS\s+URL\s+AGE$/m);
  for (const name of ["everything", "github", "postgres"]) assert.match(r.stdout, new RegExp(`^\\S+\\s+${name}\\s+(True|False)\\s`, "m"));
  assert.match(r.stdout, /installing the Istio, External Secrets and cert-manager CRDs/, "the local demo installs the real third-party CRDs");
  assert.match(r.stdout, /McpServer agents\/everything/);
  assert.match(r.stdout, /Reconciled=True \(Applied\)/);
  assert.match(r.stdout, /\[x\] Authentication enforced/);
  assert.match(r.stdout, /\[ \] Image pinned by digest/);
  assert.deepEqual(
    readdirSync(scratch).filter((d) => d.startsWith("mcp-bastion-cp-")),
    [],
    "the demo's control plane is gone after it stops",
  );
  rmSync(scratch, { recursive: true, force: true });
});

test("with KUBECONFIG: uses that cluster and installs no Istio or External Secrets CRD into it", async () => {
  cp = await startControlPlane();
  const r = await demo(["--once"], { ...process.env, KUBECONFIG: cp.kubeconfigPath });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /using the cluster of KUBECONFIG=/);
  const servers = await getJson(cp, ["mcpservers", "-A"]);
  assert.equal(servers?.items.length, exampleServers.length, "every example McpServer is applied");
  const crds = await getJson(cp, ["crds"]);
  assert.deepEqual(
    crds?.items.map((c: { metadata: { name: string } }) => c.metadata.name),
    ["mcpservers.mcp.bastion.dev"],
  );
  // Without the Istio CRDs, the examples that use Istio say so.
  type S = { metadata: { name: string }; spec: { mesh?: { istio?: { enabled?: boolean } } }; status?: { conditions?: { type: string; reason: string }[] } };
  const meshed = ((servers?.items ?? []) as S[]).filter((s) => s.spec.mesh?.istio?.enabled);
  assert.ok(meshed.length > 0, "some example uses Istio");
  for (const s of meshed) {
    const degraded = s.status?.conditions?.find((c) => c.type === "Degraded");
    assert.ok(degraded && ["MissingCRD", "ClusterSecretStoreNotAllowed"].includes(degraded.reason), `${s.metadata.name}: ${JSON.stringify(degraded)}`);
  }
  assert.ok(existsSync(cp.kubeconfigPath));
});
