// A real single-node Kubernetes cluster for tests: the control plane of dev/controlplane/index.ts plus
// containerd, kubelet, kube-proxy, kube-scheduler, kube-router (NetworkPolicy) and CoreDNS (kube-dns), on
// which pods actually run. Binaries and images come from hack/cluster/*.sh (cached in ~/.cache/mcp-bastion).
//
// The network rule: every node, pod and Service address lives in a network namespace made for this cluster
// (`ip netns add mcpb-<id>`); the host namespace has no route and no address of the cluster's ranges, and
// startCluster refuses to start when the host namespace already routes any of them (guardHostRoutes). The
// API server runs inside the namespace too (it must reach the kubelet for exec/logs, and webhooks); this
// process reaches it through the loopback relay of dev/controlplane/index.ts. Anything else the tests do
// in the cluster goes through the namespace (`inNetns`, `kubectl exec`).
//
// Leaving nothing behind: the node's processes run in a private mount namespace (every container mount,
// secret tmpfs and pod network namespace lives only there) and in the cgroup tree /mcpb-<id> (kubelet's
// cgroupRoot, so every container is under it too). stop() runs hack/cluster/cleanup.sh, which kills every
// process of those cgroups and of the network namespace, removes the cgroups, the namespace (with all its
// iptables rules, ipsets and links) and the directory; a watchdog runs the same script if this Node process
// dies first. Kubelet's kernel tunables (vm.overcommit_memory, kernel.panic...) are host-wide: they are
// shown to it already set, through bind mounts in its private mount namespace, so it never changes them.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const hack = join(repoRoot, "hack", "cluster");

/**
 * The cluster's address ranges: RFC 2544's benchmarking range 198.18.0.0/15, which no real network routes to
 * a host (so it is unlikely to collide with the machine's own routes; guardHostRoutes checks anyway).
 */
export const CLUSTER_RANGE = "198.18.0.0/15";
export const POD_CIDR = "198.18.0.0/17";
export const NODE_POD_CIDR = "198.18.0.0/24";
/** The node's own address: the pods' gateway on the cni0 bridge (the kernel here has no dummy links). */
export const NODE_IP = "198.18.0.1";
export const SERVICE_CIDR = "198.19.0.0/16";
export const DNS_IP = "198.19.0.10";
/**
 * Addresses on the node outside the pod and Service ranges (on an empty bridge of the namespace), for tests
 * that need a destination "outside the cluster" to connect to.
 */
export const OUTSIDE_IPS = ["198.18.128.1", "198.18.128.2"];
export const NODE_NAME = "mcpb-node";

export interface Cluster {
  cp: ControlPlane;
  id: string;
  /** Name of the network namespace (`ip netns exec <netns> ...`). */
  netns: string;
  dir: string;
  kubeconfigPath: string;
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<Result>;
  /** Runs a command inside the cluster's network namespace (nothing else of the node's). */
  inNetns(cmd: string[], opts?: { input?: string; timeoutMs?: number }): Promise<Result>;
  /**
   * Imports image archives (`docker save` format) into the node's containerd; returns each image's
   * digest-pinned reference (repo@sha256:...), also usable in pods (the operator pulls digest-pinned
   * images only IfNotPresent; tags are pulled Always, and there is no registry).
   */
  importImages(archives: string[]): Promise<Record<string, string>>;
  /** Digest-pinned references of the images imported at start (tag reference -> repo@sha256:...). */
  images: Record<string, string>;
  /**
   * Starts one more process on the node (its namespaces and cgroups, so stop() removes it too), with the
   * cluster-admin kubeconfig of the namespace in $KUBECONFIG; its log is logTail(name).
   */
  startProcess(name: string, file: string, args: string[]): { pid: number | undefined; exited(): boolean };
  /** Runs `ctr` against the node's containerd, namespace k8s.io (to act on containers as a crash would). */
  ctr(args: string[]): Promise<Result>;
  /** Last lines of a node component's log (containerd, kubelet, kube-proxy, kube-router, kube-scheduler). */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ClusterOptions {
  /** Keep the directory (logs, configs) after stop(). Also: MCP_BASTION_KEEP_CLUSTER=1. */
  keepDir?: boolean;
  /** Extra image archives to import before the node reports Ready. */
  images?: string[];
}

/**
 * `helm install bastion charts/mcp-bastion` into `namespace` with the operator image `image` (a digest-pinned
 * reference already imported into the node, never pulled), plus `sets` (`key=value`). The one Helm install of
 * the operator that `make demo` and the cluster tests share; callers check the result and wait as they need.
 */
export function helmInstallOperator(c: Pick<Cluster, "kubeconfigPath">, helm: string, image: string, namespace: string, sets: string[] = []): Promise<Result> {
  const [repo, digest] = image.split("@");
  const chart = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "charts", "mcp-bastion");
  const values = [`image.repository=${repo}`, `image.digest=${digest}`, "image.pullPolicy=IfNotPresent", ...sets];
  return run(helm, ["install", "bastion", chart, "-n", namespace, "--kubeconfig", c.kubeconfigPath, ...values.flatMap((v) => ["--set", v])], {
    timeoutMs: 300_000,
  });
}

export function run(file: string, args: string[], opts: { input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<Result> {
  return new Promise((res) => {
    const child = execFile(file, args, { maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, cwd: opts.cwd }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === 1 ? err.message : "") });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

async function must(file: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Runs a hack/cluster script and returns its last output line (the scripts print what they made). */
async function hackScript(name: string, args: string[] = [], timeoutMs = 60 * 60_000): Promise<string> {
  const r = await run(join(hack, name), args, { timeoutMs });
  if (r.code !== 0) throw new Error(`hack/cluster/${name} failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-8).join("\n")}`);
  return r.stdout.trim();
}

/** Builds (or finds cached) the named image archives of hack/cluster/images.sh: name -> archive path. */
export async function imageArchives(...names: string[]): Promise<Record<string, string>> {
  const out = await hackScript("images.sh", names);
  const map: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) map[line.slice(0, i)] = line.slice(i + 1);
  }
  for (const n of names) if (!map[n]) throw new Error(`hack/cluster/images.sh printed no archive for ${n}`);
  return map;
}

// ---- the host-route guard ------------------------------------------------------------------------------

function ipToInt(ip: string): number {
  const o = ip.split(".").map(Number);
  return (((o[0] ?? 0) << 24) >>> 0) + ((o[1] ?? 0) << 16) + ((o[2] ?? 0) << 8) + (o[3] ?? 0);
}
function cidrRange(cidr: string): [number, number] {
  const [ip, bits] = cidr.split("/");
  const n = Number(bits ?? 32);
  const size = 2 ** (32 - n);
  const start = Math.floor(ipToInt(ip ?? "0.0.0.0") / size) * size;
  return [start, start + size - 1];
}
export function cidrsOverlap(a: string, b: string): boolean {
  const [a0, a1] = cidrRange(a);
  const [b0, b1] = cidrRange(b);
  return a0 <= b1 && b0 <= a1;
}

/**
 * Routes of the host namespace (`ip -j route show table all` output) that lead into one of `ranges`, except
 * the default route (which covers everything and is how the machine reaches its registries). Pure, for tests.
 */
export function conflictingRoutes(routes: Array<{ dst?: string; dev?: string; table?: string }>, ranges: string[]): string[] {
  const found: string[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === "default") continue;
    const dst = r.dst.includes("/") ? r.dst : `${r.dst}/32`;
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(dst)) continue;
    for (const range of ranges) if (cidrsOverlap(dst, range)) found.push(`${r.dst} dev ${r.dev ?? "?"} table ${r.table ?? "main"} overlaps ${range}`);
  }
  return found;
}

/** Refuses to go on if the host namespace routes any cluster range through one of its interfaces. */
export async function guardHostRoutes(ranges: string[] = [CLUSTER_RANGE]): Promise<void> {
  const routes = JSON.parse(await must("ip", ["-j", "-4", "route", "show", "table", "all"])) as Array<{ dst?: string; dev?: string; table?: string }>;
  const bad = conflictingRoutes(routes, ranges);
  if (bad.length > 0) {
    throw new Error(
      `refusing to start the cluster: the host network namespace routes the cluster's ranges (${ranges.join(", ")}) through its own interfaces, so cluster traffic could leave the machine:\n  ${bad.join("\n  ")}`,
    );
  }
}

// ---- configuration files -------------------------------------------------------------------------------

export function containerdConfig(dir: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${dir}/containerd/containerd.sock"
[ttrpc]
  address = "${dir}/containerd/containerd.ttrpc.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mcp-bastion.local/pause:1"
  # The VM's capability bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
`;
}

export function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "mcpb",
    plugins: [
      {
        type: "bridge",
        bridge: "cni0",
        isGateway: true,
        ipMasq: false,
        // A pod reaching its own Service is sent back over the bridge port it came from.
        hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet: NODE_POD_CIDR, gateway: NODE_IP }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "cni-ipam") },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
}

function kubeletConfig(dir: string, id: string, clientCa: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /mcpb-${id}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${dir}/containerd/containerd.sock
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${clientCa}}
authorization: {mode: Webhook}
clusterDNS: [${DNS_IP}]
clusterDomain: cluster.local
resolvConf: ${dir}/resolv.conf
podLogsDir: ${dir}/pod-logs
staticPodPath: ""
# Secrets and ConfigMaps in volumes are refreshed at this period (API key rotation without restart).
syncFrequency: 10s
serializeImagePulls: false
# Every image is imported, none can be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 60
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
`;
}

function kubeProxyConfig(kubeconfig: string): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${kubeconfig}}
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${POD_CIDR}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# In a non-initial network namespace the conntrack table size is the host's: leave it alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {syncPeriod: 10s, minSyncPeriod: 0s}
`;
}

// The holder of the node's private mount namespace: mounts what the node components write to so that it
// vanishes with the namespace, shows kubelet the kernel tunables it wants (without changing the host's),
// then sleeps until killed by cleanup.sh.
const HOLDER = `set -e
dir=$1
mount -t tmpfs -o mode=0755 mcpb-run /run
mkdir -p /run/netns /var/lib/cni
mount -t tmpfs -o mode=0755 mcpb-cni /var/lib/cni
for t in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  f=$dir/sysctl/$(echo "\${t%%=*}" | tr / _); echo "\${t#*=}" > "$f"; mount --bind "$f" "/proc/sys/\${t%%=*}"
done
touch "$dir/holder-ready"
exec sleep infinity
`;

// ---- the cluster ---------------------------------------------------------------------------------------

interface Component {
  name: string;
  file: string;
  args: string[];
  child?: ChildProcess;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  if (process.getuid?.() !== 0) throw new Error("test/cluster needs root (network namespaces, mounts, cgroups, containerd)");
  await guardHostRoutes([CLUSTER_RANGE]);
  await hackScript("packages.sh", [], 20 * 60_000);
  const [nodeBin, archives] = await Promise.all([hackScript("build.sh"), imageArchives("pause", "busybox", "coredns")]);

  const id = Math.random().toString(16).slice(2, 8);
  const netns = `mcpb-${id}`;
  const dir = mkdtempSync(join(tmpdir(), "mcpb-cluster-"));
  const keep = opts.keepDir || process.env.MCP_BASTION_KEEP_CLUSTER === "1";
  const components: Component[] = [];
  let cp: ControlPlane | undefined;
  let stopped = false;
  const trackingCgroup = `/sys/fs/cgroup/pids/mcpb-${id}/node`;

  // Watchdog: if this Node process dies without stop(), remove everything (it polls every 2 s).
  const alive = join(dir, "alive");
  writeFileSync(alive, "");
  const watchdog = spawn(
    "bash",
    [
      "-c",
      `while kill -0 ${process.pid} 2>/dev/null && [ -f "$1" ]; do sleep 2; done; [ -f "$1" ] && "$2" "$3" "$4"; exit 0`,
      "watchdog",
      alive,
      join(hack, "cleanup.sh"),
      id,
      keep ? "" : dir,
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();

  const cleanup = async () => {
    for (const c of [...components].reverse()) c.child?.kill("SIGTERM");
    await cp?.stop().catch(() => {});
    await run(join(hack, "cleanup.sh"), [id, keep ? "" : dir], { timeoutMs: 120_000 });
    rmSync(alive, { force: true }); // tells the watchdog to exit; it may be sleeping: end it now
    try {
      if (watchdog.pid !== undefined) process.kill(watchdog.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };

  // Starts a node component in the cluster's namespaces and in the tracking cgroup (so cleanup.sh finds
  // it and everything it forks, such as containerd's shims).
  let holderPid = 0;
  const startComponent = (c: Component, env: Record<string, string> = {}) => {
    const log = openSync(join(dir, `${c.name}.log`), "a");
    const ns = holderPid ? [`--mount=/proc/${holderPid}/ns/mnt`] : [];
    c.child = spawn(
      "sh",
      ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', trackingCgroup, "nsenter", `--net=/run/netns/${netns}`, ...ns, "--", c.file, ...c.args],
      {
        cwd: dir,
        detached: true,
        stdio: ["ignore", log, log],
        env: { ...process.env, ...env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
      },
    );
    closeSync(log);
    c.child.unref();
    components.push(c);
  };
  const exited = (c: Component) => c.child !== undefined && (c.child.exitCode !== null || c.child.signalCode !== null);
  const logTail = (name: string, lines = 20) => {
    try {
      return readFileSync(join(dir, `${name}.log`), "utf8")
        .trimEnd()
        .split("\n")
        .slice(-lines)
        .join("\n");
    } catch {
      return "";
    }
  };
  const inNs = (cmd: string[], o: { input?: string; timeoutMs?: number } = {}) => run("ip", ["netns", "exec", netns, ...cmd], o);
  const ctr = (args: string[], timeoutMs = 300_000) =>
    run("ctr", ["--address", join(dir, "containerd", "containerd.sock"), "-n", "k8s.io", ...args], { timeoutMs });

  try {
    // Network namespace: loopback, the cni0 bridge carrying the node address, a route for Service
    // addresses (kube-proxy DNATs them; locally sent packets need a route first), forwarding on.
    await must("ip", ["netns", "add", netns]);
    for (const cmd of [
      ["ip", "link", "set", "lo", "up"],
      ["ip", "link", "add", "cni0", "type", "bridge"],
      ["ip", "addr", "add", `${NODE_IP}/24`, "dev", "cni0"],
      ["ip", "link", "set", "cni0", "up"],
      ["ip", "link", "add", "mcpb-outside", "type", "bridge"],
      ["ip", "link", "set", "mcpb-outside", "up"],
      ...OUTSIDE_IPS.map((ip) => ["ip", "addr", "add", `${ip}/32`, "dev", "mcpb-outside"]),
      ["ip", "route", "add", SERVICE_CIDR, "dev", "cni0", "src", NODE_IP],
      ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
      ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
    ]) {
      const r = await inNs(cmd);
      if (r.code !== 0) throw new Error(`in ${netns}: ${cmd.join(" ")}: ${r.stderr.trim()}`);
    }

    // cgroups: /mcpb-<id> in every v1 hierarchy (kubelet's cgroupRoot must exist), cpuset initialised.
    for (const h of [
      "cpu",
      "cpuacct",
      "cpuset",
      "memory",
      "devices",
      "freezer",
      "blkio",
      "pids",
      "systemd",
      "hugetlb",
      "net_cls",
      "net_prio",
      "perf_event",
      "rdma",
      "misc",
    ]) {
      const base = `/sys/fs/cgroup/${h}`;
      if (!existsSync(join(base, "cgroup.procs"))) continue;
      mkdirSync(join(base, `mcpb-${id}`, "node"), { recursive: true });
      if (h === "cpuset") {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) {
          const v = readFileSync(join(base, f), "utf8");
          writeFileSync(join(base, `mcpb-${id}`, f), v);
          writeFileSync(join(base, `mcpb-${id}`, "node", f), v);
        }
      }
    }
    if (!existsSync(trackingCgroup)) throw new Error("test/cluster needs the cgroup v1 pids hierarchy at /sys/fs/cgroup/pids");

    // The private mount namespace, then containerd in it.
    mkdirSync(join(dir, "sysctl"));
    mkdirSync(join(dir, "cni"));
    mkdirSync(join(dir, "containerd"));
    mkdirSync(join(dir, "pod-logs"));
    writeFileSync(join(dir, "holder.sh"), HOLDER);
    const holder: Component = { name: "holder", file: "unshare", args: ["--mount", "--propagation", "private", "sh", join(dir, "holder.sh"), dir] };
    startComponent(holder);
    await waitUntil("the node's mount namespace", 30_000, () => {
      if (existsSync(join(dir, "holder-ready"))) return true;
      if (exited(holder)) throw new Error(`the mount namespace holder exited: ${logTail("holder")}`);
      return undefined;
    });
    holderPid = holder.child?.pid ?? 0;

    writeFileSync(join(dir, "containerd.toml"), containerdConfig(dir));
    writeFileSync(join(dir, "cni", "10-mcpb.conflist"), cniConfig(dir));
    // Pods with dnsPolicy Default get this; ClusterFirst pods get the cluster DNS. No upstream: nothing
    // leaves the namespace.
    writeFileSync(join(dir, "resolv.conf"), `nameserver ${DNS_IP}\n`);
    const containerd: Component = { name: "containerd", file: "containerd", args: ["--config", join(dir, "containerd.toml")] };
    startComponent(containerd);

    // The control plane inside the namespace, while containerd starts.
    const cpStart = startControlPlane({
      controllerManager: true,
      netns,
      serviceClusterIpRange: SERVICE_CIDR,
      advertiseAddress: NODE_IP,
      apiPort: 6443,
      bindAddress: "0.0.0.0",
      serviceAccountAdmission: true,
      keepDir: keep,
      kubeletClientCert: true,
      // The node's name resolves nowhere (there is no DNS for nodes): reach the kubelet by its address.
      apiServerArgs: ["--kubelet-preferred-address-types=InternalIP"],
      controllerManagerArgs: [
        "--allocate-node-cidrs=true",
        `--cluster-cidr=${POD_CIDR}`,
        "--node-cidr-mask-size=24",
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
      ],
    });
    await waitUntil("containerd", 60_000, async () => {
      if (exited(containerd)) throw new Error(`containerd exited: ${logTail("containerd")}`);
      const r = await ctr(["version"], 10_000);
      return r.code === 0 ? true : undefined;
    });
    // Imports an archive; names its image also by digest, as a registry pull would.
    const importImages = async (list: string[]): Promise<Record<string, string>> => {
      const pinned: Record<string, string> = {};
      // One at a time: parallel unpacks of large images only compete for the disk.
      for (const a of list) {
        const r = await ctr(["images", "import", a]);
        if (r.code !== 0) throw new Error(`ctr images import ${a}: ${r.stderr.trim()}`);
        for (const m of r.stdout.matchAll(/unpacking (\S+) \((sha256:[0-9a-f]{64})\)/g)) {
          const [, ref, digest] = m;
          const repo = (ref ?? "").replace(/:[^:/]+$/, "");
          const byDigest = `${repo}@${digest}`;
          const t = await ctr(["images", "tag", "--force", ref ?? "", byDigest]);
          if (t.code !== 0) throw new Error(`ctr images tag ${ref} ${byDigest}: ${t.stderr.trim()}`);
          pinned[ref ?? ""] = byDigest;
        }
      }
      return pinned;
    };
    const imports = importImages([archives.pause ?? "", archives.busybox ?? "", archives.coredns ?? "", ...(opts.images ?? [])]);
    cp = await cpStart;
    const imported = await imports;
    const kc = cp.innerKubeconfigPath;

    writeFileSync(join(dir, "kubelet.yaml"), kubeletConfig(dir, id, join(cp.dir, "ca.crt")));
    writeFileSync(join(dir, "kube-proxy.yaml"), kubeProxyConfig(kc));
    startComponent({
      name: "kubelet",
      file: join(nodeBin, "kubelet"),
      args: [
        `--config=${join(dir, "kubelet.yaml")}`,
        `--kubeconfig=${kc}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${NODE_IP}`,
        `--root-dir=${join(dir, "kubelet")}`,
        `--cert-dir=${join(dir, "kubelet-pki")}`,
        "--v=1",
      ],
    });
    startComponent({ name: "kube-proxy", file: join(nodeBin, "kube-proxy"), args: [`--config=${join(dir, "kube-proxy.yaml")}`, "--v=1"] });
    startComponent({
      name: "kube-scheduler",
      file: join(nodeBin, "kube-scheduler"),
      args: [
        `--kubeconfig=${kc}`,
        `--authentication-kubeconfig=${kc}`,
        `--authorization-kubeconfig=${kc}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=10259",
        "--v=1",
      ],
    });

    const kubectl = (args: string[], o: { input?: string; timeoutMs?: number } = {}) => cp!.kubectl(args, o);
    const componentsAlive = () => {
      for (const c of components) if (exited(c)) throw new Error(`${c.name} exited:\n${logTail(c.name)}`);
    };
    await waitUntil("node Ready", 180_000, async () => {
      componentsAlive();
      const r = await kubectl([
        "get",
        "node",
        NODE_NAME,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status} {.status.conditions[?(@.type=='Ready')].message}",
      ]);
      return r.stdout.startsWith("True") ? true : `node: ${r.stdout || r.stderr.trim()}`;
    });
    // kube-router looks its node up once at start: only now does the Node object exist.
    startComponent({
      name: "kube-router",
      file: join(nodeBin, "kube-router"),
      args: [
        `--kubeconfig=${kc}`,
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        `--hostname-override=${NODE_NAME}`,
        "--metrics-port=0",
        "--health-port=0",
        "--v=1",
      ],
    });
    // Pods started before its first sync would run unpoliced for a moment: wait for its chains.
    await waitUntil("kube-router's network policy chains", 120_000, async () => {
      componentsAlive();
      const r = await inNs(["iptables-save", "-t", "filter"]);
      return /^:KUBE-ROUTER-FORWARD/m.test(r.stdout) ? true : `no KUBE-ROUTER-FORWARD chain yet; kube-router: ${logTail("kube-router", 3)}`;
    });
    await applyCoreDns(kubectl);
    await waitUntil("CoreDNS (kube-dns) ready", 180_000, async () => {
      componentsAlive();
      const r = await kubectl(["-n", "kube-system", "get", "deploy", "coredns", "-o", "jsonpath={.status.readyReplicas}"]);
      if (r.stdout === "1") return true;
      const pods = await kubectl(["-n", "kube-system", "get", "pods", "-o", "wide"]);
      return `coredns readyReplicas=${r.stdout || "0"}\n${pods.stdout}`;
    });

    const cluster: Cluster = {
      cp,
      id,
      netns,
      dir,
      kubeconfigPath: cp.kubeconfigPath,
      kubectl,
      inNetns: inNs,
      importImages,
      images: imported,
      ctr: (args) => ctr(args, 60_000),
      startProcess(name, file, args) {
        const c: Component = { name, file, args };
        startComponent(c, { KUBECONFIG: kc });
        return { pid: c.child?.pid, exited: () => exited(c) };
      },
      logTail,
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
    };
    return cluster;
  } catch (err) {
    const logs = ["containerd", "kubelet", "kube-proxy", "kube-router", "kube-scheduler"].map((n) => `--- ${n}\n${logTail(n, 12)}`).join("\n");
    stopped = true;
    await cleanup();
    throw new Error(`cluster did not start: ${err instanceof Error ? err.message : String(err)}\n${logs}`);
  }
}

/**
 * Polls `check` until it returns true; a string is what was last seen, reported when the deadline passes.
 * `check` throws when waiting longer cannot help (a process exited).
 */
export async function waitUntil(what: string, timeoutMs: number, check: () => Promise<true | string | undefined> | true | string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const v = await check();
    if (v === true) return;
    if (typeof v === "string") last = v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? `; last seen: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** CoreDNS as the cluster's kube-dns: the labels and namespace NetworkPolicies select DNS by. */
async function applyCoreDns(kubectl: Cluster["kubectl"]): Promise<void> {
  const manifest = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "coredns", namespace: "kube-system" } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: "kube-system" }],
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "coredns", namespace: "kube-system" },
      // No `forward`: names outside the cluster do not resolve (nothing leaves the namespace).
      data: {
        Corefile:
          ".:53 {\n  errors\n  health :8080\n  ready :8181\n  kubernetes cluster.local in-addr.arpa ip6.arpa {\n    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n  }\n  cache 30\n}\n",
      },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coredns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { "k8s-app": "kube-dns" } },
        template: {
          metadata: { labels: { "k8s-app": "kube-dns" } },
          spec: {
            serviceAccountName: "coredns",
            dnsPolicy: "Default",
            containers: [
              {
                name: "coredns",
                image: "mcp-bastion.local/coredns:1",
                imagePullPolicy: "Never",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: 53, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                ],
                readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 2 },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] } },
                volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
              },
            ],
            volumes: [{ name: "config", configMap: { name: "coredns" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
      spec: {
        clusterIP: DNS_IP,
        selector: { "k8s-app": "kube-dns" },
        ports: [
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
          { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
        ],
      },
    },
  ];
  const input = manifest.map((m) => JSON.stringify(m)).join("\n");
  const r = await kubectl(["apply", "-f", "-"], { input });
  if (r.code !== 0) throw new Error(`applying CoreDNS failed: ${r.stderr.trim()}`);
}
