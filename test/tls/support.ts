// Shared by test/tls: the cert-manager controller built from its Go module (hack/certmanager/build.sh)
// running as a local process against a control plane.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ControlPlane } from "../../dev/controlplane/index.ts";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The directory with bin/cert-manager-controller and crds/: $MCP_BASTION_CERT_MANAGER, else what build.sh prints (cached). */
export async function certManagerDir(): Promise<string> {
  if (process.env.MCP_BASTION_CERT_MANAGER) return process.env.MCP_BASTION_CERT_MANAGER;
  const script = join(ROOT, "hack", "certmanager", "build.sh");
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((r) =>
    execFile(script, [], { timeout: 90 * 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) =>
      r({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(out), stderr: String(errOut) }),
    ),
  );
  if (code !== 0) throw new Error(`hack/certmanager/build.sh failed (exit ${code}): ${stderr.trim().split("\n").slice(-5).join("\n")}`);
  const dir = stdout.trim().split("\n").pop();
  if (!dir) throw new Error("hack/certmanager/build.sh printed no directory");
  return dir;
}

/** cert-manager's own CRDs (deploy/crds of the same module version), as one YAML stream. */
export function certManagerCrds(dir: string): string {
  const crds = join(dir, "crds");
  return readdirSync(crds)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => readFileSync(join(crds, f), "utf8"))
    .join("\n---\n");
}

export interface CertManager {
  /** Everything the controller wrote to stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/** Runs the controller as a local process with the control plane's admin kubeconfig. */
export function startCertManager(cp: ControlPlane, dir: string): CertManager {
  let log = "";
  const proc: ChildProcess = spawn(
    join(dir, "bin", "cert-manager-controller"),
    ["--kubeconfig", cp.kubeconfigPath, "--cluster-resource-namespace", "cert-manager", "--v=2"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  proc.stderr?.on("data", (d: Buffer) => {
    log = (log + d.toString()).slice(-200_000);
  });
  return {
    log: () => log,
    stop: () =>
      new Promise<void>((r) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return r();
        proc.once("exit", () => r());
        proc.kill("SIGTERM");
      }),
  };
}
