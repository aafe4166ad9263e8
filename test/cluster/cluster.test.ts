// The real single-node cluster itself (dev/cluster/index.ts): it starts, pods run, Services and DNS work,
// nothing of it is reachable or routed from the host namespace, and stop() leaves nothing behind
// (processes, cgroups, mounts, network namespaces, iptables rules, files).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CLUSTER_RANGE, type Cluster, conflictingRoutes, NODE_IP, POD_CIDR, run, SERVICE_CIDR, startCluster, waitUntil } from "../../dev/cluster/index.ts";

describe("the host-route guard", () => {
  test("finds host routes into the cluster's ranges and ignores the default route", () => {
    const routes = [
      { dst: "default", dev: "eth0" },
      { dst: "192.0.2.0/24", dev: "eth0" },
      { dst: "198.18.4.0/24", dev: "br-lab" },
      { dst: "198.19.0.7", dev: "tun0", table: "local" },
    ];
    assert.deepEqual(conflictingRoutes(routes, [POD_CIDR, SERVICE_CIDR]), [
      "198.18.4.0/24 dev br-lab table main overlaps 198.18.0.0/17",
      "198.19.0.7 dev tun0 table local overlaps 198.19.0.0/16",
    ]);
    assert.deepEqual(conflictingRoutes([{ dst: "198.0.0.0/8", dev: "x" }], [POD_CIDR]).length, 1, "a wider route covering the range counts");
  });

  test("startCluster's guard refuses a namespace that routes a cluster range", async () => {
    // A scratch namespace stands in for a host that routes 198.18.0.0/24 (the host itself is never changed).
    const ns = `mcpb-guard-${process.pid}`;
    await run("ip", ["netns", "add", ns]);
    try {
      for (const cmd of [
        ["ip", "link", "add", "lab0", "type", "bridge"],
        ["ip", "link", "set", "lab0", "up"],
        ["ip", "addr", "add", "198.18.0.9/24", "dev", "lab0"],
      ]) {
        const r = await run("ip", ["netns", "exec", ns, ...cmd]);
        assert.equal(r.code, 0, r.stderr);
      }
      const script = `import { guardHostRoutes } from ${JSON.stringify(join(import.meta.dirname, "..", "..", "dev", "cluster", "index.ts"))}; await guardHostRoutes();`;
      const r = await run("ip", ["netns", "exec", ns, process.execPath, "--input-type=module", "-e", script]);
      assert.notEqual(r.code, 0, "the guard must refuse");
      assert.match(r.stderr, /refusing to start the cluster: .*198\.18\.0\.0\/24 dev lab0 table main overlaps 198\.18\.0\.0\/15/s);
    } finally {
      await run("ip", ["netns", "delete", ns]);
    }
  });
});

describe("a real single-node cluster", { timeout: 45 * 60_000 }, () => {
  let cluster: Cluster;
  let hostIptablesBefore = "";

  before(async () => {
    hostIptablesBefore = (await run("iptables-save", [])).stdout;
    const t0 = Date.now();
    cluster = await startCluster();
    console.log(`cluster started in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
  after(async () => {
    await cluster?.stop();
  });

  async function kubectl(args: string[], input?: string): Promise<string> {
    const r = await cluster.kubectl(args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }

  test("a pod runs, resolves names through kube-dns and reaches the API server through its Service", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "probe", namespace: "default" },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "probe",
            image: "mcp-bastion.local/busybox:1",
            imagePullPolicy: "Never",
            command: [
              "sh",
              "-c",
              "nslookup kubernetes.default.svc.cluster.local && echo | nc -w 5 kubernetes.default.svc.cluster.local 443 >/dev/null && echo reached-api",
            ],
          },
        ],
      },
    };
    await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
    await waitUntil("the probe pod to finish", 180_000, async () => {
      const r = await cluster.kubectl(["get", "pod", "probe", "-o", "jsonpath={.status.phase}"]);
      if (r.stdout === "Succeeded") return true;
      if (r.stdout === "Failed") throw new Error(`the probe pod failed: ${(await cluster.kubectl(["logs", "probe"])).stdout}`);
      return `phase ${r.stdout || r.stderr.trim()}`;
    });
    const logs = await kubectl(["logs", "probe"]);
    assert.match(logs, /Address:? +198\.19\.0\.1\b/, `kubernetes.default resolved to the Service address:\n${logs}`);
    assert.match(logs, /reached-api/);
  });

  test("the host namespace has no address or route of the cluster; the node address exists only in its namespace", async () => {
    const hostAddrs = (await run("ip", ["-4", "-o", "addr"])).stdout;
    assert.doesNotMatch(hostAddrs, /198\.1[89]\./, "no cluster address in the host namespace");
    const hostRoutes = JSON.parse((await run("ip", ["-j", "-4", "route", "show", "table", "all"])).stdout);
    assert.deepEqual(conflictingRoutes(hostRoutes, [CLUSTER_RANGE]), []);
    const inside = await cluster.inNetns(["ip", "-4", "-o", "addr"]);
    assert.match(inside.stdout, new RegExp(`inet ${NODE_IP.replaceAll(".", "\\.")}/24`));
    const iptables = (await run("iptables-save", [])).stdout;
    assert.doesNotMatch(iptables, /KUBE-|KUBE-ROUTER|198\.1[89]\./, "kube-proxy and kube-router rules stay in the cluster's namespace");
    const insideRules = (await cluster.inNetns(["iptables-save"])).stdout;
    assert.match(insideRules, /KUBE-SERVICES/, "kube-proxy programs the namespace");
  });

  test("stop() leaves nothing behind", async () => {
    const { id, netns, dir } = cluster;
    const netnsIno = statSync(`/run/netns/${netns}`).ino;
    await cluster.stop();
    const left: string[] = [];
    if (existsSync(`/run/netns/${netns}`)) left.push(`network namespace ${netns}`);
    for (const h of readdirSync("/sys/fs/cgroup")) if (existsSync(`/sys/fs/cgroup/${h}/mcpb-${id}`)) left.push(`cgroup /sys/fs/cgroup/${h}/mcpb-${id}`);
    for (const p of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      try {
        if (statSync(`/proc/${p}/ns/net`).ino === netnsIno) left.push(`process ${p} (${readFileSync(`/proc/${p}/comm`, "utf8").trim()}) in the namespace`);
      } catch {
        // exited meanwhile
      }
    }
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    if (mounts.includes(dir) || mounts.includes(netns))
      left.push(
        `mounts: ${mounts
          .split("\n")
          .filter((l) => l.includes(dir) || l.includes(netns))
          .join("; ")}`,
      );
    if (existsSync(dir)) left.push(`directory ${dir}`);
    const ps = (await run("ps", ["-eo", "pid,args"])).stdout.split("\n").filter((l) => l.includes(dir));
    if (ps.length) left.push(`processes naming ${dir}: ${ps.join("; ")}`);
    assert.deepEqual(left, [], "everything of the cluster is gone");
    assert.equal((await run("iptables-save", [])).stdout.replace(/^#.*\n/gm, ""), hostIptablesBefore.replace(/^#.*\n/gm, ""), "host iptables unchanged");
  });
});
