// Shared by the controller tests and the reconcile benchmark: CRDs, RBAC, waiting, and running the
// operator as a child process (for kill/restart/leader tests) with its log parsed.
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { defaultConfig, Operator, type OperatorConfig } from "../../operator/src/controller/operator.ts";
import { CLUSTER_RULES, LEADER_ELECTION_RULES, NAMESPACED_RULES } from "../../operator/src/controller/rbac.ts";
import { OWNED_KINDS } from "../../operator/src/render/index.ts";
import type { ControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor, waitUntil } from "../support/index.ts";
import { mcpServerDoc } from "../support/mcpserver.ts";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function must(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

// biome-ignore lint/suspicious/noExplicitAny: tests read free-form API objects
export async function getJson<T = Record<string, any>>(cp: ControlPlane, args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(["get", ...args, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as T;
}

/** Installs the McpServer CRD and waits until it is served. */
export async function installCrd(cp: ControlPlane): Promise<void> {
  await must(cp, ["apply", "--server-side", "-f", join(ROOT, "crds", "mcp.bastion.dev_mcpservers.yaml")]);
  await waitEstablished(cp, ["mcpservers.mcp.bastion.dev"]);
}

/** Waits until the CRDs are Established (`kubectl wait` fails while a new CRD has no conditions yet). */
export async function waitEstablished(cp: ControlPlane, names: string[]): Promise<void> {
  for (const name of names) {
    await waitFor(
      `CRD ${name} Established`,
      async () => {
        const crd = await getJson(cp, ["crd", name]);
        return crd?.status?.conditions?.some((c: { type: string; status: string }) => c.type === "Established" && c.status === "True");
      },
      60_000,
    );
  }
}

/**
 * Installs the real Istio, External Secrets and cert-manager CRDs and waits until every kind the operator may own
 * is served, so the API server validates the third-party objects the operator applies against their real schemas
 * and CEL rules. `yaml`: dev/crds.ts's upstreamCrdsYaml() (from `make crds-upstream`; it fails naming that target
 * when they are absent), passed in by the caller so that this file, shared with unit tests, needs nothing installed.
 */
export async function installUpstreamCrds(cp: ControlPlane, yaml: string): Promise<void> {
  await must(cp, ["apply", "--server-side", "--force-conflicts", "-f", "-"], yaml);
  await waitEstablished(
    cp,
    OWNED_KINDS.filter((k) => k.requires).map((k) => `${k.plural}.${k.apiVersion.split("/")[0]}`),
  );
}

/** Grants `user` exactly the operator's RBAC (rbac.ts): cluster-wide, plus leader election in `leaseNamespace`. */
export async function grantOperatorRbac(cp: ControlPlane, user: string, leaseNamespace: string): Promise<void> {
  const docs = [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "mcp-bastion-operator" },
      rules: [...NAMESPACED_RULES, ...CLUSTER_RULES],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "mcp-bastion-operator" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "mcp-bastion-operator" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "mcp-bastion-leader-election", namespace: leaseNamespace },
      rules: LEADER_ELECTION_RULES,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "mcp-bastion-leader-election", namespace: leaseNamespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "mcp-bastion-leader-election" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    },
  ];
  await must(cp, ["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
}

/** test/support/mcpserver.ts's McpServer with the controller tests' own defaults (port 3001 at /mcp, API keys from NAME-keys, one rule); `spec` entries override them. */
export function mcpServer(name: string, namespace: string, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return mcpServerDoc(
    {
      transport: { type: "streamable-http", port: 3001, path: "/mcp" },
      auth: { apiKeys: { secretRef: { name: `${name}-keys` } } },
      authorization: { rules: [{ name: "ci", clients: { apiKeys: ["ci"] }, tools: { allow: ["*"] } }] },
      ...spec,
    },
    { name, namespace },
  );
}

export interface Conditions {
  [type: string]: { status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string } | undefined;
}

export function conditionsOf(obj: { status?: { conditions?: { type: string }[] } } | undefined): Conditions {
  const out: Conditions = {};
  for (const c of obj?.status?.conditions ?? []) out[c.type] = c as never;
  return out;
}

/** Waits until an McpServer has the condition with the given status (and reason, when given). */
export async function waitCondition(cp: ControlPlane, ns: string, name: string, type: string, status: string, reason?: string, timeoutMs = 60_000) {
  return waitUntil(
    `${ns}/${name} ${type}=${status}${reason ? ` (${reason})` : ""}`,
    async () => {
      const obj = await getJson(cp, ["mcpserver", "-n", ns, name]);
      // What the error shows when the deadline passes: the conditions and generations, not the whole object.
      return { conditions: obj?.status?.conditions, generation: obj?.metadata?.generation, observedGeneration: obj?.status?.observedGeneration, obj };
    },
    ({ obj }) => {
      const c = conditionsOf(obj)[type];
      return !!c && c.status === status && (!reason || c.reason === reason) && c.observedGeneration === obj?.metadata?.generation;
    },
    timeoutMs,
  ).then(({ obj }) => obj as NonNullable<typeof obj>); // done() saw it
}

export interface OperatorProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  identity: string;
  /** Port of /metrics, /healthz, /readyz. */
  port: number;
  waitLog(what: string, pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Sends the signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** Runs `mcp-bastion operator` as a child process against the control plane; resolves once it serves its endpoints. */
export async function spawnOperator(kubeconfig: string, args: string[] = [], nodeFlags: string[] = [], compiledMain?: string): Promise<OperatorProcess> {
  // From the sources through the `mcp-bastion` bin, or (compiledMain) from a tsc build as the image runs it.
  const entry = compiledMain
    ? ["--input-type=module", "-e", "const { main } = await import(process.argv[1]); process.exitCode = await main(process.argv.slice(2));", compiledMain]
    : [join(ROOT, "cli", "bin", "mcp-bastion.js")];
  const child = spawn(
    process.execPath,
    [...nodeFlags, ...entry, "operator", `--kubeconfig=${kubeconfig}`, "--metrics-bind-address=127.0.0.1:0", "--health-port=0", ...args],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KUBECONFIG: kubeconfig } },
  );
  children.add(child);
  const exited = new Promise<number | null>((r) =>
    child.once("exit", (code) => {
      children.delete(child);
      r(code);
    }),
  );
  const logs: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    buf += d;
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ level: "raw", msg: line });
      }
      nl = buf.indexOf("\n");
    }
    for (const w of waiters.splice(0)) w();
  });
  const waitLog = async (what: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (child.exitCode !== null)
        throw new Error(
          `operator exited (${child.exitCode}) before: ${what}\n${logs
            .map((l) => JSON.stringify(l))
            .slice(-10)
            .join("\n")}`,
        );
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for operator log: ${what}\n${logs
            .map((l) => JSON.stringify(l))
            .slice(-10)
            .join("\n")}`,
        );
      await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 200))]);
    }
  };
  const started = await waitLog("operator started", (l) => l.msg === "operator started");
  const port = (started.endpoints as number[])[0] as number;
  return {
    child,
    logs,
    identity: started.identity as string,
    port,
    waitLog,
    async metric(name, labels = {}) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const text = await res.text();
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      let total = 0;
      for (const line of text.split("\n")) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (want.every((w) => line.includes(w))) total += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      return total;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The operator in this process, as the operator user that grantOperatorRbac made (Lease in mcp-system), with
 * the default Lease timings (short ones are lost on a loaded machine and the operator stops mid-test) and its
 * warnings and errors on stderr. `config` adds to or overrides defaultConfig.
 */
export async function startInProcessOperator(cp: ControlPlane, config: Partial<OperatorConfig> = {}): Promise<Operator> {
  const kubeconfigPath = await cp.userKubeconfig("mcp-bastion-operator");
  const base = defaultConfig();
  const op = new Operator(
    defaultConfig({
      kubeconfigPath,
      gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:test",
      leaderElection: { ...base.leaderElection, namespace: "mcp-system" },
      discoveryIntervalMs: 1_000,
      log: (level, msg, fields) => {
        if (level === "warn" || level === "error") process.stderr.write(`operator ${level}: ${msg} ${JSON.stringify(fields ?? {})}\n`);
      },
      ...config,
    }),
  );
  await op.start();
  return op;
}
