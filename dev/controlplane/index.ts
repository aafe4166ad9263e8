// A real, local Kubernetes control plane for tests, benchmarks and `mcp-bastion demo`: etcd and
// kube-apiserver (and kube-controller-manager when asked) started as processes on free loopback
// ports, the way controller-runtime's envtest does it. Binaries come from hack/controlplane/build.sh
// (cached under ~/.cache/mcp-bastion/bin). Certificates are generated per start with openssl.
//
// Every process runs in its own process group; stop() kills the groups, an exit handler kills them
// if the caller forgets, and a small watchdog shell kills them if this Node process dies by SIGKILL,
// so no etcd or kube-apiserver ever outlives the test run.
//
// With `netns`, every process runs inside that network namespace (test/cluster: the API server must reach
// the kubelet and the pods, which live only there). The host reaches the API server through a relay:
// 127.0.0.1:<port> in this process -> a unix socket -> a relay process inside the namespace -> its own
// loopback. No route and no address of the namespace is ever used from the host namespace.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { request } from "node:https";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../test/support/index.ts";
import { splice } from "./splice.ts";

export interface ControlPlane {
  kubeconfigPath: string;
  /** The API server as this (host-side) process reaches it: always https://127.0.0.1:<port>. */
  server: string;
  /** Port the API server listens on (inside `netns` when one was given; then != the port of `server`). */
  apiPort: number;
  /**
   * A kubeconfig for processes inside `netns` (https://127.0.0.1:apiPort there); equal to kubeconfigPath
   * without a netns.
   */
  innerKubeconfigPath: string;
  binDir: string;
  dir: string;
  /** Path of the API server's audit log (JSON lines), when started with auditLog. */
  auditLogPath?: string;
  kubectl(args: string[], opts?: { input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * A kubeconfig for a non-admin user (client certificate signed by the cluster CA with CN=user and
   * O=each group): for running something with exactly the RBAC it is granted.
   */
  userKubeconfig(user: string, groups?: string[]): Promise<string>;
  /** Kills kube-apiserver (SIGKILL) and starts it again on the same port; resolves when it is ready. */
  restartApiServer(): Promise<void>;
  /**
   * Stops the API server process (SIGSTOP): connections stay open and nothing is answered, as with a hung
   * or partitioned API server. Returns the function that lets it run again.
   */
  freezeApiServer(): () => void;
  /** Kills etcd (SIGKILL) and starts it again with the same data; resolves when the API server is ready again. */
  restartEtcd(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Also run kube-controller-manager (ReplicaSets, Pods, garbage collection, namespace deletion). */
  controllerManager?: boolean;
  /** Write an audit log of every write (Metadata level) to `<dir>/audit.log`, for counting writes. */
  auditLog?: boolean;
  /** Keep the temporary directory after stop() (logs, certs) for debugging. Also: MCP_BASTION_KEEP_CP=1. */
  keepDir?: boolean;
  /**
   * Name of an existing network namespace (`ip netns add`) to run every process in; the host reaches the
   * API server through a loopback relay (see the top of this file).
   */
  netns?: string;
  /** The Services' ClusterIP range; default 10.96.0.0/12. Its first address goes into the serving certificate. */
  serviceClusterIpRange?: string;
  /** Address the API server advertises (the `kubernetes` Service's endpoint); default 127.0.0.1. */
  advertiseAddress?: string;
  /** Address the API server listens on; default 127.0.0.1. */
  bindAddress?: string;
  /** Enable the ServiceAccount admission plugin (token volumes in pods); off by default (no pods run). */
  serviceAccountAdmission?: boolean;
  /** Extra flags for kube-apiserver / kube-controller-manager. */
  apiServerArgs?: string[];
  controllerManagerArgs?: string[];
  /**
   * The API server's port; default: a free one. Inside a namespace a fixed port is free and lets pods'
   * NetworkPolicies allow "the API server" by its usual port (6443).
   */
  apiPort?: number;
  /** Give kube-apiserver the admin client certificate for kubelets (exec, logs, port-forward). */
  kubeletClientCert?: boolean;
  /** Extra IP subject alternative names of the serving certificate. */
  extraSans?: string[];
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Only bounds a broken start: on a machine loaded several times over, kube-apiserver alone can take a minute. */
const READY_TIMEOUT_MS = 180_000;

/** Processes started by any control plane in this Node process, keyed by pid (= process group id). */
const live = new Set<number>();
let exitHookInstalled = false;

function installExitHooks(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const pid of live) killGroup(pid, "SIGKILL");
    live.clear();
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // Only take over the signal when nobody else handles it, then re-raise it so the default
    // behaviour (exit) still happens.
    if (process.listenerCount(sig) > 0) continue;
    process.once(sig, () => {
      killAll();
      process.kill(process.pid, sig);
    });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** The directory with the control-plane binaries: $MCP_BASTION_CP_BIN, else what build.sh prints (cached). */
export async function controlPlaneBinDir(): Promise<string> {
  if (process.env.MCP_BASTION_UNIT === "1")
    throw new Error(
      "`make unit` runs only tests that need nothing outside npm, but this test starts the local control plane: test/unit.ts misjudged it (run it with `make test`)",
    );
  if (process.env.MCP_BASTION_CP_BIN) return process.env.MCP_BASTION_CP_BIN;
  const script = join(repoRoot, "hack", "controlplane", "build.sh");
  const { code, stdout, stderr } = await run(script, [], { timeoutMs: 90 * 60_000 });
  if (code !== 0) throw new Error(`hack/controlplane/build.sh failed (exit ${code}): ${stderr.trim().split("\n").slice(-5).join("\n")}`);
  const lines = stdout.trim().split("\n");
  const dir = lines[lines.length - 1];
  if (!dir) throw new Error("hack/controlplane/build.sh printed no directory");
  return dir;
}

function run(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = execFile(
      file,
      args,
      { maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
        resolvePromise({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === 1 ? err.message : "") });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await run(
    "openssl",
    args.map((a) => a.replaceAll("{dir}", cwd)),
  );
  if (code !== 0) throw new Error(`openssl ${args[0]} failed: ${stderr.trim()}`);
}

/** CA, API server serving cert (127.0.0.1, localhost), admin client cert (O=system:masters), SA key pair. */
async function makeCerts(dir: string, extraIpSans: string[] = []): Promise<void> {
  const days = "30";
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "{dir}/ca.key",
      "-out",
      "{dir}/ca.crt",
      "-days",
      days,
      "-subj",
      "/CN=mcp-bastion-test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ],
    dir,
  );
  const sign = async (name: string, subj: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `{dir}/${name}.key`, "-out", `{dir}/${name}.csr`, "-subj", subj], dir);
    await openssl(
      [
        "x509",
        "-req",
        "-in",
        `{dir}/${name}.csr`,
        "-CA",
        "{dir}/ca.crt",
        "-CAkey",
        "{dir}/ca.key",
        "-CAcreateserial",
        "-out",
        `{dir}/${name}.crt`,
        "-days",
        days,
        "-extfile",
        `{dir}/${name}.ext`,
      ],
      dir,
    );
  };
  const sans = [
    "IP:127.0.0.1",
    "DNS:localhost",
    ...[...new Set(extraIpSans)].filter((ip) => ip !== "127.0.0.1").map((ip) => `IP:${ip}`),
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ];
  await sign(
    "serving",
    "/CN=kube-apiserver",
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(",")}\n`,
  );
  await sign(
    "admin",
    "/O=system:masters/CN=admin",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
  );
  await openssl(["genrsa", "-out", "{dir}/sa.key", "2048"], dir);
  await openssl(["rsa", "-in", "{dir}/sa.key", "-pubout", "-out", "{dir}/sa.pub"], dir);
}

function kubeconfigYaml(dir: string, server: string, certName = "admin"): string {
  const b64 = (f: string) => readFileSync(join(dir, f)).toString("base64");
  // Inline data, so the file stays usable when copied elsewhere (the demo prints its path).
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64("ca.crt")}
users:
- name: admin
  user:
    client-certificate-data: ${b64(`${certName}.crt`)}
    client-key-data: ${b64(`${certName}.key`)}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
`;
}

// Metadata for writes only: enough to count and attribute them (user agent, user, verb, resource),
// while reads (the bulk) are not logged at all.
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  verbs: ["get", "list", "watch"]
- level: Metadata
`;

interface Proc {
  name: string;
  args: string[];
  /** Executable; default: `name` in the control plane's bin directory. */
  file?: string;
  child?: ChildProcess;
}

/** The first address of a CIDR (the `kubernetes` Service's ClusterIP): 10.96.0.0/12 -> 10.96.0.1. */
export function firstServiceIp(cidr: string): string {
  const [base] = cidr.split("/");
  const octets = (base ?? "").split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const n = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]! + 1;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Host side of the relay to an API server inside a network namespace: accepts on 127.0.0.1 and pipes each
 * connection to a unix socket served by netns-relay.ts inside the namespace.
 */
async function startHostRelay(socketPath: string): Promise<{ server: Server; port: number }> {
  const server = createServer((client) => {
    splice(client, connect(socketPath));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  server.unref(); // never keeps a test process alive on its own
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("relay: no port");
  return { server, port: addr.port };
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  installExitHooks();
  const binDir = await controlPlaneBinDir();
  const dir = mkdtempSync(join(tmpdir(), "mcp-bastion-cp-"));
  const keep = opts.keepDir || process.env.MCP_BASTION_KEEP_CP === "1";
  const procs: Proc[] = [];
  const pgidFile = join(dir, "pgids");
  let stopped = false;
  let userCount = 0;

  const recordPgids = () =>
    writeFileSync(
      pgidFile,
      procs
        .map((p) => p.child?.pid)
        .filter((p) => p !== undefined)
        .join(" "),
    );

  const startProc = (p: Proc) => {
    const log = openSync(join(dir, `${p.name}.log`), "a");
    const file = p.file ?? join(binDir, p.name);
    // nsenter enters the namespace and execs the binary (same pid, so the process group is unchanged).
    const [cmd, args] = opts.netns ? ["nsenter", [`--net=/run/netns/${opts.netns}`, "--", file, ...p.args]] : [file, p.args];
    // detached: a new process group, so killing -pid also takes any children with it.
    const child = spawn(cmd, args, { cwd: dir, detached: true, stdio: ["ignore", log, log] });
    closeSync(log);
    p.child = child;
    if (child.pid !== undefined) live.add(child.pid);
    child.once("exit", () => {
      if (child.pid !== undefined) live.delete(child.pid);
    });
    child.unref();
    recordPgids();
  };

  const killProc = async (p: Proc, signal: NodeJS.Signals, graceMs: number) => {
    const child = p.child;
    if (!child || child.pid === undefined) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      killGroup(child.pid, "SIGKILL"); // leftovers in the group, if any
      return;
    }
    const exited = once(child, "exit");
    // The children are unref'd (a forgotten stop() must not keep the process alive); hold the
    // event loop open while we wait for this one to exit.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      killGroup(child.pid, signal);
      const timer = new Promise((r) => setTimeout(r, graceMs, "timeout"));
      if ((await Promise.race([exited, timer])) === "timeout") {
        killGroup(child.pid, "SIGKILL");
        await exited;
      }
      killGroup(child.pid, "SIGKILL");
    } finally {
      clearInterval(keepAlive);
    }
  };

  let relay: Server | undefined;
  try {
    const serviceRange = opts.serviceClusterIpRange ?? "10.96.0.0/12";
    const advertise = opts.advertiseAddress ?? "127.0.0.1";
    await makeCerts(dir, [firstServiceIp(serviceRange), advertise, ...(opts.extraSans ?? [])]);
    const [etcdPort, etcdPeerPort, freeApiPort, kcmPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const apiPort = opts.apiPort ?? freeApiPort;
    const innerServer = `https://127.0.0.1:${apiPort}`;
    let server = innerServer;
    const innerKubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(innerKubeconfigPath, kubeconfigYaml(dir, innerServer), { mode: 0o600 });
    let kubeconfigPath = innerKubeconfigPath;
    if (opts.netns) {
      const socketPath = join(dir, "apiserver.sock");
      const r = await startHostRelay(socketPath);
      relay = r.server;
      server = `https://127.0.0.1:${r.port}`;
      kubeconfigPath = join(dir, "host.kubeconfig");
      writeFileSync(kubeconfigPath, kubeconfigYaml(dir, server), { mode: 0o600 });
      const relayProc: Proc = {
        name: "netns-relay",
        file: process.execPath,
        args: [join(dirname(fileURLToPath(import.meta.url)), "netns-relay.ts"), socketPath, String(apiPort)],
      };
      procs.push(relayProc);
      startProc(relayProc);
    }

    recordPgids(); // the watchdog runs while this file exists
    // Watchdog: if this Node process disappears without cleaning up (SIGKILL, crash), kill the groups.
    const watchdog = spawn(
      "bash",
      [
        "-c",
        `while kill -0 ${process.pid} 2>/dev/null && [ -f "$1" ]; do sleep 2; done
         if [ -f "$1" ]; then for g in $(cat "$1"); do kill -KILL -- -$g 2>/dev/null; done; [ "$2" = keep ] || rm -rf "$3"; fi; exit 0`,
        "watchdog",
        pgidFile,
        keep ? "keep" : "remove",
        dir,
      ],
      { detached: true, stdio: "ignore" },
    );
    watchdog.unref();

    const etcd: Proc = {
      name: "etcd",
      args: [
        `--data-dir=${join(dir, "etcd-data")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
        // Test data is thrown away: fsync only costs time (envtest does the same).
        "--unsafe-no-fsync=true",
        "--log-level=warn",
      ],
    };
    const auditLogPath = opts.auditLog ? join(dir, "audit.log") : undefined;
    if (opts.auditLog) writeFileSync(join(dir, "audit-policy.yaml"), AUDIT_POLICY);
    const apiserver: Proc = {
      name: "kube-apiserver",
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        `--cert-dir=${dir}`,
        `--tls-cert-file=${join(dir, "serving.crt")}`,
        `--tls-private-key-file=${join(dir, "serving.key")}`,
        `--secure-port=${apiPort}`,
        `--bind-address=${opts.bindAddress ?? "127.0.0.1"}`,
        `--advertise-address=${advertise}`,
        // A /12 like kubeadm's default: the benchmark creates 1,000 Services.
        `--service-cluster-ip-range=${serviceRange}`,
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        ...(opts.serviceAccountAdmission ? [] : ["--disable-admission-plugins=ServiceAccount"]),
        `--service-account-issuer=${server}/`,
        `--service-account-key-file=${join(dir, "sa.pub")}`,
        `--service-account-signing-key-file=${join(dir, "sa.key")}`,
        `--client-ca-file=${join(dir, "ca.crt")}`,
        "--shutdown-delay-duration=0s",
        ...(auditLogPath
          ? [
              `--audit-log-path=${auditLogPath}`,
              `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
              "--audit-log-mode=blocking",
              "--audit-log-format=json",
            ]
          : []),
        ...(opts.kubeletClientCert ? [`--kubelet-client-certificate=${join(dir, "admin.crt")}`, `--kubelet-client-key=${join(dir, "admin.key")}`] : []),
        ...(opts.apiServerArgs ?? []),
        "-v=0",
      ],
    };
    procs.push(etcd, apiserver);
    startProc(etcd);
    startProc(apiserver);
    await waitReady(dir, server, apiserver, READY_TIMEOUT_MS);

    if (opts.controllerManager) {
      const kcm: Proc = {
        name: "kube-controller-manager",
        args: [
          `--kubeconfig=${innerKubeconfigPath}`,
          `--authentication-kubeconfig=${innerKubeconfigPath}`,
          `--authorization-kubeconfig=${innerKubeconfigPath}`,
          `--service-account-private-key-file=${join(dir, "sa.key")}`,
          `--root-ca-file=${join(dir, "ca.crt")}`,
          `--cluster-signing-cert-file=${join(dir, "ca.crt")}`,
          `--cluster-signing-key-file=${join(dir, "ca.key")}`,
          "--controllers=*",
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          `--secure-port=${kcmPort}`,
          `--cert-dir=${join(dir, "kcm-certs")}`,
          ...(opts.controllerManagerArgs ?? []),
          "-v=0",
        ],
      };
      procs.push(kcm);
      startProc(kcm);
    }

    const cp: ControlPlane = {
      kubeconfigPath,
      innerKubeconfigPath,
      apiPort,
      server,
      binDir,
      dir,
      ...(auditLogPath ? { auditLogPath } : {}),
      kubectl: (args, o = {}) => run(join(binDir, "kubectl"), ["--kubeconfig", kubeconfigPath, ...args], o),
      async userKubeconfig(user, groups = []) {
        const id = `user-${userCount++}`;
        const subj = `${groups.map((g) => `/O=${g}`).join("")}/CN=${user}`;
        writeFileSync(join(dir, `${id}.ext`), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
        await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `{dir}/${id}.key`, "-out", `{dir}/${id}.csr`, "-subj", subj], dir);
        await openssl(
          [
            "x509",
            "-req",
            "-in",
            `{dir}/${id}.csr`,
            "-CA",
            "{dir}/ca.crt",
            "-CAkey",
            "{dir}/ca.key",
            "-CAcreateserial",
            "-out",
            `{dir}/${id}.crt`,
            "-days",
            "30",
            "-extfile",
            `{dir}/${id}.ext`,
          ],
          dir,
        );
        const path = join(dir, `${id}.kubeconfig`);
        writeFileSync(path, kubeconfigYaml(dir, server, id), { mode: 0o600 });
        return path;
      },
      async restartApiServer() {
        await killProc(apiserver, "SIGKILL", 0);
        startProc(apiserver);
        await waitReady(dir, server, apiserver, READY_TIMEOUT_MS);
      },
      freezeApiServer() {
        const pid = apiserver.child?.pid;
        if (pid === undefined) throw new Error("the API server is not running");
        process.kill(pid, "SIGSTOP");
        let thawed = false;
        return () => {
          if (thawed) return;
          thawed = true;
          try {
            process.kill(pid, "SIGCONT");
          } catch {
            // gone already (stopped or restarted meanwhile)
          }
        };
      },
      async restartEtcd() {
        await killProc(etcd, "SIGKILL", 0);
        startProc(etcd);
        // Inside a namespace etcd is not reachable from here; /readyz below includes etcd's health.
        if (!opts.netns) await waitEtcd(etcdPort, READY_TIMEOUT_MS);
        await waitReady(dir, server, apiserver, READY_TIMEOUT_MS);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // Reverse order: controller-manager, API server, then etcd.
        for (const p of [...procs].reverse()) await killProc(p, "SIGTERM", 3_000);
        relay?.close();
        rmSync(pgidFile, { force: true }); // tells the watchdog to exit
        if (!keep) rmSync(dir, { recursive: true, force: true });
      },
    };
    return cp;
  } catch (err) {
    for (const p of [...procs].reverse()) await killProc(p, "SIGKILL", 0);
    relay?.close();
    rmSync(pgidFile, { force: true });
    const logs = procs.map((p) => tail(join(dir, `${p.name}.log`), 15)).join("\n");
    if (!keep) rmSync(dir, { recursive: true, force: true });
    throw new Error(`control plane did not start: ${err instanceof Error ? err.message : String(err)}\n${logs}`);
  }
}

function tail(file: string, lines: number): string {
  try {
    const text = readFileSync(file, "utf8").trimEnd().split("\n");
    return `--- ${file.split("/").pop()} (last ${lines} lines)\n${text.slice(-lines).join("\n")}`;
  } catch {
    return "";
  }
}

/** Polls etcd's /health until it reports healthy (the API server's /readyz can lag behind). */
async function waitEtcd(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      last = `HTTP ${res.status} ${body.slice(0, 200)}`;
      if (res.ok && (JSON.parse(body) as { health?: string }).health === "true") return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err); // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`etcd not healthy after ${timeoutMs / 1000}s (last: ${last})`);
}

/** Polls /readyz with the admin certificate until it answers 200. */
async function waitReady(dir: string, server: string, apiserver: Proc, timeoutMs: number): Promise<void> {
  const ca = readFileSync(join(dir, "ca.crt"));
  const cert = readFileSync(join(dir, "admin.crt"));
  const key = readFileSync(join(dir, "admin.key"));
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const child = apiserver.child;
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`kube-apiserver exited (${child.exitCode ?? child.signalCode})`);
    last = await new Promise<string>((res) => {
      const req = request(`${server}/readyz`, { ca, cert, key, timeout: 2_000, agent: false }, (resp) => {
        resp.resume();
        res(resp.statusCode === 200 ? "ok" : `HTTP ${resp.statusCode}`);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => res(e.message));
      req.end();
    });
    if (last === "ok") return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kube-apiserver not ready after ${timeoutMs / 1000}s (last: ${last})`);
}

/** Parses the audit log into events (one JSON object per line); tolerates a partially written last line. */
export function readAuditEvents(path: string): AuditEvent[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const out: AuditEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as AuditEvent);
    } catch {
      // partial line at the end
    }
  }
  return out;
}

export interface AuditEvent {
  verb: string;
  requestURI: string;
  userAgent?: string;
  user?: { username?: string };
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  stage?: string;
  requestReceivedTimestamp?: string;
}
