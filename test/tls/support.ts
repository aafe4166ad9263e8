// Shared by test/tls: the cert-manager controller built from its Go module (hack/certmanager/build.sh)
// running as a local process against a control plane, and a Secret volume laid out the way the kubelet
// writes one (so the gateway sees exactly what it sees in a pod, including the atomic swap on update).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ControlPlane } from "../controlplane/index.ts";

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
  const proc: ChildProcess = spawn(join(dir, "bin", "cert-manager-controller"), ["--kubeconfig", cp.kubeconfigPath, "--cluster-resource-namespace", "cert-manager", "--v=2"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
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

/**
 * A Secret volume as the kubelet keeps it (its AtomicWriter): the files live in a `..<timestamp>`
 * directory, `..data` is a symlink to it, and each key is a symlink `KEY -> ..data/KEY`. An update
 * writes a new timestamped directory, points `..data_tmp` at it, renames that over `..data` (atomic)
 * and removes the old directory.
 */
export class KubeletSecretVolume {
  readonly dir: string;
  #version = 0;
  #current: string | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  write(data: Record<string, Buffer | string>): void {
    const name = `..${new Date().toISOString().replace(/[-:.TZ]/g, "_")}${++this.#version}`;
    mkdirSync(join(this.dir, name), { mode: 0o755 });
    for (const [key, value] of Object.entries(data)) writeFileSync(join(this.dir, name, key), value, { mode: 0o644 });
    symlinkSync(name, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    for (const key of Object.keys(data)) {
      try {
        symlinkSync(join("..data", key), join(this.dir, key));
      } catch {
        // the key's link exists since the first version: it follows ..data
      }
    }
    if (this.#current) rmSync(join(this.dir, this.#current), { recursive: true, force: true });
    this.#current = name;
  }
}
