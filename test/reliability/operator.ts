// Runs the real operator (`mcp-bastion operator`) as a child process against a test control plane,
// so the suite can watch it survive hostile input and kill it with SIGKILL.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type ControlPlane, freePort } from "../controlplane/index.ts";
import { REPO } from "./kube.ts";

export const OPERATOR_COMMAND = join(REPO, "operator", "src", "cli", "commands", "operator.ts");
const BIN = join(REPO, "operator", "bin", "mcp-bastion.js");

/** Why the operator cannot run yet (its command is not in the tree), or undefined. */
export function operatorAvailable(): string | undefined {
  return existsSync(OPERATOR_COMMAND) ? undefined : "the operator command (operator/src/cli/commands/operator.ts) is not in the tree yet";
}

export interface OperatorProcess {
  pid: number;
  /** /metrics on 127.0.0.1 */
  metricsPort: number;
  /** /healthz, /readyz on 127.0.0.1 */
  healthPort: number;
  alive(): boolean;
  exitInfo(): string;
  /** The last lines of its combined stdout/stderr. */
  logTail(lines?: number): string;
  log(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface OperatorOptions {
  namespaces?: string[];
  /** Extra flags, e.g. an identity for leader election. */
  args?: string[];
  env?: Record<string, string>;
}

export async function startOperator(cp: ControlPlane, opts: OperatorOptions = {}): Promise<OperatorProcess> {
  // Own ports: several operators (and other test files) run at once on this machine.
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const args = [
    BIN,
    "operator",
    `--kubeconfig=${cp.kubeconfigPath}`,
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    `--health-port=${healthPort}`,
    ...(opts.namespaces ? [`--namespaces=${opts.namespaces.join(",")}`] : []),
    ...(opts.args ?? []),
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO,
    env: { ...process.env, KUBECONFIG: cp.kubeconfigPath, ...(opts.env ?? {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (c: Buffer) => {
    out += c.toString("utf8");
    // Bounded: a long soak must not grow the test process because the operator is chatty.
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = once(child, "exit");
  const alive = () => child.exitCode === null && child.signalCode === null;
  // A process that dies at once (bad flags) is reported now, not as a timeout later.
  await new Promise((r) => setTimeout(r, 300));
  const proc: OperatorProcess = {
    pid: child.pid ?? -1,
    metricsPort,
    healthPort,
    alive,
    exitInfo: () => `exit ${child.exitCode ?? child.signalCode}`,
    logTail: (lines = 40) => out.trimEnd().split("\n").slice(-lines).join("\n"),
    log: () => out,
    async kill(signal = "SIGKILL") {
      if (!alive()) return;
      child.kill(signal);
      await exited;
    },
    async stop() {
      if (!alive()) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
  if (!alive()) throw new Error(`the operator exited at start (${proc.exitInfo()}): ${proc.logTail()}`);
  return proc;
}
