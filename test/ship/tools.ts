// Shared helpers of the shipping tests: the independent tools (installed and cached by
// hack/tools/install.sh, so a test file also works on its own) and small process wrappers.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../../hack/tools/sync-chart.ts";

export { ROOT };
export const CHART_DIR = join(ROOT, "charts", "mcp-bastion");
/** The Kubernetes version of the local control plane (hack/controlplane/build.sh). */
export const KUBE_VERSION = "1.34.4";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && !stderr ? err.message : "") });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

const installed = new Map<string, Promise<string>>();
export type Tool = "helm" | "kube-score" | "checkov" | "luahealth";

/** Absolute path of a tool, installing it on first use (cached under ~/.cache/mcp-bastion/tools). */
export function tool(name: Tool): Promise<string> {
  let p = installed.get(name);
  if (!p) {
    p = run(join(ROOT, "hack", "tools", "install.sh"), [name]).then((r) => {
      if (r.code !== 0) throw new Error(`hack/tools/install.sh ${name} failed:\n${r.stderr}`);
      return r.stdout.trim().split("\n").pop()!;
    });
    installed.set(name, p);
  }
  return p;
}

/** `node cli/bin/mcp-bastion.js ARGS` from the source tree. */
export function cli(args: string[], input?: string): Promise<RunResult> {
  return run(process.execPath, [join(ROOT, "cli", "bin", "mcp-bastion.js"), ...args], input === undefined ? {} : { input });
}
