// What happens to controllers in production, with the operator as real child processes
// (`mcp-bastion operator`) against a real kube-apiserver whose audit log counts every write:
// a restart with nothing changed sends no write, only the leader writes and a standby takes over
// when it dies, a kube-apiserver killed in the middle of a batch is survived, --namespaces
// limits what is watched, a leader that loses its Lease stops, a leader paused past its renew deadline
// while the API server restarts keeps its Lease, and a leader whose API server hangs stops in time.
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { type AuditEvent, type ControlPlane, readAuditEvents, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor } from "../support/index.ts";
import { conditionsOf, getJson, installCrd, mcpServer, must, type OperatorProcess, spawnOperator, waitCondition } from "./helpers.ts";

const NS = "fleet";
let cp: ControlPlane;
const running: OperatorProcess[] = [];

async function operator(args: string[] = []): Promise<OperatorProcess> {
  // A 10 s Lease (renew deadline 6.7 s): short enough for a quick takeover, long enough that a leader on a
  // loaded machine does not miss its renewals and hand over by accident in the middle of a test.
  const p = await spawnOperator(cp.kubeconfigPath, ["--leader-election-namespace=default", "--lease-duration=10", "--concurrency=8", ...args]);
  running.push(p);
  return p;
}

/** Writes (anything but get/list/watch) sent by one operator process, Lease renewals left out. */
function writesBy(p: OperatorProcess, opts: { withLeases?: boolean } = {}): AuditEvent[] {
  return readAuditEvents(cp.auditLogPath as string).filter(
    (e) => e.stage === "ResponseComplete" && e.userAgent === `mcp-bastion-operator/${p.identity}` && (opts.withLeases || e.objectRef?.resource !== "leases"),
  );
}

async function applyServers(names: string[], ns = NS): Promise<void> {
  const list = { apiVersion: "v1", kind: "List", items: names.map((n) => mcpServer(n, ns)) };
  await must(cp, ["apply", "--server-side", "-f", "-"], JSON.stringify(list));
}

async function allReconciled(names: string[], timeoutMs = 60_000, ns = NS): Promise<void> {
  const want = new Set(names);
  await waitFor(
    `${names.length} servers Reconciled`,
    async () => {
      const list = await getJson(cp, ["mcpservers", "-n", ns]);
      const done = (list?.items ?? []).filter((s: { metadata: { name: string; generation: number } }) => {
        const c = conditionsOf(s as never).Reconciled;
        return want.has(s.metadata.name) && c?.status === "True" && c.observedGeneration === s.metadata.generation;
      });
      return done.length === want.size;
    },
    timeoutMs,
    500,
  );
}

/** Waits until the operator has reconciled at least `n` times and has nothing queued or running. */
async function settled(p: OperatorProcess, n: number): Promise<void> {
  await waitFor(`operator settled after ${n} reconciles`, async () => {
    const done = await p.metric("mcp_bastion_reconcile_total");
    const depth = await p.metric("mcp_bastion_workqueue_depth");
    const inFlight = await p.metric("mcp_bastion_workqueue_in_flight");
    return done >= n && depth === 0 && inFlight === 0;
  });
}

const batch = Array.from({ length: 20 }, (_, i) => `server-${i}`);
let current: OperatorProcess;

before(async () => {
  cp = await startControlPlane({ auditLog: true });
  await installCrd(cp);
  await must(cp, ["create", "namespace", NS]);
  current = await operator();
  await applyServers(batch);
  await allReconciled(batch);
});

after(async () => {
  for (const p of running) await p.stop("SIGKILL");
  await cp?.stop();
});

test("a restarted operator with nothing changed sends zero writes", async () => {
  const before = writesBy(current).length;
  assert.ok(before >= batch.length * 5, `the first operator did write (${before} writes)`);
  assert.equal(await current.stop("SIGTERM"), 0, "SIGTERM is a clean exit");
  const next = await operator();
  await next.waitLog("caches synced", (l) => l.msg === "caches synced" && l.servers === batch.length);
  await settled(next, batch.length);
  assert.deepEqual(
    writesBy(next).map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`),
    [],
    "no write after a restart with nothing changed",
  );
  current = next;
});

test("with two replicas only the leader writes; when it is killed the standby takes over and converges", async () => {
  const standby = await operator();
  await applyServers(["late-1"]);
  await allReconciled(["late-1"]);
  assert.deepEqual(
    writesBy(standby, { withLeases: true }).map((e) => e.verb),
    [],
    "the standby writes nothing, not even the Lease",
  );
  assert.ok(
    writesBy(current).some((e) => e.objectRef?.name === "late-1"),
    "the leader applied late-1",
  );

  await current.stop("SIGKILL"); // no chance to release the Lease: the standby must wait for it to expire
  await applyServers(["late-2"]);
  await standby.waitLog("standby became leader", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"), 90_000);
  await allReconciled(["late-2"]);
  assert.ok(
    writesBy(standby).some((e) => e.objectRef?.name === "late-2"),
    "the new leader applied late-2",
  );
  current = standby;
});

test("kube-apiserver killed in the middle of a batch: the operator reconnects and every object converges", async () => {
  const storm = Array.from({ length: 30 }, (_, i) => `storm-${i}`);
  await applyServers(storm);
  await waitFor("the batch has started", async () => (await current.metric("mcp_bastion_reconcile_total")) > 0);
  await cp.restartApiServer();
  await allReconciled(storm, 90_000);
  assert.ok((await current.metric("mcp_bastion_watch_errors_total")) > 0, "the operator saw its watches break");
  // A new API server starts its watch cache at the current revision: resuming a watch from an
  // older resourceVersion is answered 410 Gone, and those informers relist.
  assert.ok((await current.metric("mcp_bastion_informer_lists_total", { reason: "gone" })) > 0, "informers relisted after 410 Gone");
  assert.equal(current.child.exitCode, null, "and it is still running");
  for (const path of ["/healthz", "/readyz"]) assert.equal((await fetch(`http://127.0.0.1:${current.port}${path}`)).status, 200, path);
  // Drift made during the outage's aftermath is still reverted: the watches really are back.
  await must(cp, ["scale", "deployment", "-n", NS, "storm-0", "--replicas=4"]);
  await waitFor("storm-0 reverted", async () => (await getJson(cp, ["deployment", "-n", NS, "storm-0"]))?.spec.replicas === 1);
});

test("--namespaces limits the operator to the listed namespaces", async () => {
  await current.stop("SIGTERM");
  await must(cp, ["create", "namespace", "watched"]);
  await must(cp, ["create", "namespace", "ignored"]);
  const scoped = await operator(["--namespaces=watched", "--leader-elect=false"]);
  await applyServers(["mine"], "watched");
  await applyServers(["not-mine"], "ignored");
  await waitCondition(cp, "watched", "mine", "Reconciled", "True");
  await settled(scoped, 1);
  const ignored = await getJson(cp, ["mcpserver", "-n", "ignored", "not-mine"]);
  assert.equal(ignored?.status, undefined, "a server outside --namespaces is left alone");
  assert.equal((await getJson(cp, ["deployments", "-n", "ignored"]))?.items.length, 0);
});

test("a leader that loses its Lease stops at once and exits non-zero (its pod restarts as a standby)", async () => {
  const leader = await operator(["--leader-election-id=takeover-test"]);
  await leader.waitLog("became leader", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"));
  const now = new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  await must(cp, [
    "patch",
    "lease",
    "-n",
    "default",
    "takeover-test",
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { holderIdentity: "someone-else", renewTime: now } }),
  ]);
  const code = await Promise.race([leader.stop("SIGCONT"), new Promise((r) => setTimeout(r, 60_000, "still running 60 s after its Lease was taken"))]);
  assert.equal(code, 1, JSON.stringify(leader.logs));
  assert.ok(leader.logs.some((l) => l.msg === "lost leadership: stopping all work"));
});

test("a leader paused longer than its renew deadline while the API server restarts keeps its Lease and goes on", async () => {
  await must(cp, ["create", "namespace", "paused"]);
  const leader = await operator(["--leader-election-id=pause-test", "--namespaces=paused"]);
  await leader.waitLog("became leader", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"));
  await applyServers(["p-1"], "paused");
  await waitCondition(cp, "paused", "p-1", "Reconciled", "True");
  // Paused (a stopped container, a long GC pause) with kept-alive sockets in its pool; the API server
  // restarts meanwhile, so the first requests after the pause go out on sockets that are already closed.
  const pid = leader.child.pid as number;
  const pausedAt = Date.now();
  process.kill(pid, "SIGSTOP");
  try {
    await cp.restartApiServer();
    await applyServers(["p-2"], "paused");
    // The length of the pause is the fault itself: past the renew deadline (6.7 s of the 10 s Lease)
    // and a retry period, up to the whole Lease, so nothing but its own renewal keeps it leader.
    await new Promise((r) => setTimeout(r, Math.max(0, pausedAt + 10_000 - Date.now())));
  } finally {
    process.kill(pid, "SIGCONT");
  }
  // Nobody else took the Lease: it renews it and reconciles what changed while it was paused.
  await waitCondition(cp, "paused", "p-2", "Reconciled", "True");
  assert.equal(leader.child.exitCode, null, `the leader exited: ${JSON.stringify(leader.logs.slice(-5))}`);
  assert.ok(!leader.logs.some((l) => l.msg === "lost leadership: stopping all work"), JSON.stringify(leader.logs.slice(-8)));
  await leader.stop("SIGTERM");
});

// Last: every leader of this file loses its Lease here.
test("a leader whose API server hangs stops before its Lease could pass to another", async () => {
  const leader = await operator(["--leader-election-id=hang-test", "--namespaces=paused"]);
  await leader.waitLog("became leader", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"));
  // A hung API server (stopped: connections open, nothing answered) must not hold a renewal past the
  // renew deadline: a standby takes the Lease 10 s after it last saw it renewed, and from then on two
  // leaders would write.
  const hungAt = Date.now();
  const thaw = cp.freezeApiServer();
  try {
    const code = await Promise.race([
      once(leader.child, "exit").then(() => leader.child.exitCode),
      new Promise((r) => setTimeout(r, 90_000, "still running 90 s later")),
    ]);
    assert.equal(code, 1, JSON.stringify(leader.logs.slice(-8)));
    const lost = leader.logs.find((l) => l.msg === "lost leadership: stopping all work");
    assert.ok(lost, JSON.stringify(leader.logs.slice(-8)));
    const stoppedAfter = Date.parse(String(lost.time)) - hungAt;
    assert.ok(stoppedAfter < 10_000, `stopped ${stoppedAfter} ms after the API server hung; its Lease lasts 10 s: ${JSON.stringify(leader.logs.slice(-8))}`);
  } finally {
    thaw();
  }
});
