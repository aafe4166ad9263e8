// Faults against the real local control plane, with the real operator (`mcp-bastion operator`, child
// processes): kube-apiserver killed during a batch of 200 reconciles, etcd restarted, watches closed
// by the server, 410 Gone on a stale resourceVersion, update conflicts with another writer, and the
// leader SIGKILLed mid-batch while a second replica waits for the Lease. After each: every object
// converges (Reconciled=True for its generation), every child exists once, owned, no orphan, and the
// time to converge is printed. The controller engineer's test/controller/resilience.test.ts covers
// the basic restart and leader cases; this file adds the rest of the fault list, at batch size.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { after, before, test } from "node:test";
import { parse } from "yaml";
import { Informer } from "../../operator/src/runtime/informer.ts";
import type { KubeObject } from "../../contract/kube-object.ts";
import { KubeClient } from "../../operator/src/runtime/kube.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { mcpServer, type OperatorProcess, spawnOperator } from "../controller/helpers.ts";
import { Figures } from "./figures.ts";
import { fleetProblems, waitConverged } from "./fleet.ts";
import { waitFor, waitUntil } from "../support/index.ts";
import { CRD_FILE, ensureNamespace, installCrd, type Kube, kubeClient, MCP_PATH } from "./kube.ts";

const figures = new Figures(import.meta.url);
after(() => figures.flush());

const LONG = process.env.RELIABILITY_LONG === "1";
const BIG = 200;
const SMALL = LONG ? 200 : 40;
const NS = "faults";
const LEADER_NS = "faults-leader";
const CONVERGE_MS = 180_000;
/** How long a write may keep being refused while the API server (or etcd) restarts under it. */
const RESTART_MS = 180_000;

let cp: ControlPlane;
let kube: Kube;
let op: OperatorProcess | undefined;
const operators: OperatorProcess[] = [];
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function operator(args: string[]): Promise<OperatorProcess> {
  const p = await spawnOperator(cp.kubeconfigPath, ["--leader-election-namespace=default", "--concurrency=16", ...args]);
  operators.push(p);
  return p;
}

/** Creates servers through the API (16 at a time), as a batch a user or GitOps tool would apply. */
async function createServers(names: string[], ns = NS): Promise<void> {
  const queue = [...names];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        const deadline = Date.now() + RESTART_MS;
        for (;;) {
          const r = await kube.req("POST", `${MCP_PATH}/namespaces/${ns}/mcpservers`, mcpServer(n, ns));
          if (r.status === 201 || r.status === 409) break;
          // The API server may be restarting under us: retry like kubectl would.
          if (Date.now() > deadline) throw new Error(`create ${n}: still refused after ${RESTART_MS / 1000} s: HTTP ${r.status} ${r.text.slice(0, 200)}`);
          await new Promise((res) => setTimeout(res, 500));
        }
      }
    }),
  );
}

/** Changes each server's spec (a new env value), bumping its generation. */
async function updateServers(names: string[], value: string): Promise<void> {
  await Promise.all(
    names.map(async (n) => {
      const deadline = Date.now() + RESTART_MS;
      for (;;) {
        const r = await kube.req(
          "PATCH",
          `${MCP_PATH}/namespaces/${NS}/mcpservers/${n}`,
          { spec: { env: [{ name: "ROUND", value }] } },
          "application/merge-patch+json",
        );
        if (r.status === 200) return;
        if (Date.now() > deadline) throw new Error(`update ${n}: still refused after ${RESTART_MS / 1000} s: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        await new Promise((res) => setTimeout(res, 500));
      }
    }),
  );
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/**
 * Runs one scenario: records pass/fail and its figure. A failure records its reason and prints the
 * operator's exit code and last log lines: the cluster is torn down after the file, so this is all
 * that is left to tell why.
 */
async function scenario(name: string, body: () => Promise<string>): Promise<void> {
  let figure: string | undefined;
  try {
    figure = await body();
    assert.ok(op === undefined || op.child.exitCode === null, `the operator exited (${op?.child.exitCode})`);
    figures.scenario(name, true, figure);
  } catch (err) {
    // The operator's state first: the error's line may be cut.
    const state = op === undefined ? "" : op.child.exitCode === null ? "[operator running] " : `[operator exited ${op.child.exitCode}] `;
    figures.failed(name, `${state}${err instanceof Error ? err.message : String(err)}`, figure);
    if (op)
      console.error(
        `operator's last log lines:\n${op.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join("\n")}`,
      );
    throw err;
  } finally {
    if (figure) figures.figure(name, figure);
  }
}

before(async () => {
  cp = await startControlPlane();
  kube = kubeClient(cp.kubeconfigPath);
  await installCrd(kube, parse(readFileSync(CRD_FILE, "utf8")));
  await ensureNamespace(kube, NS);
  // A long lease: an operator alone must not give up leadership because the API server it renews
  // through is the thing being killed (a lost Lease ends the process, as in controller-runtime).
  op = await operator(["--lease-duration=60"]);
});

after(async () => {
  for (const p of operators) await p.stop("SIGKILL");
  kube?.close();
  await cp?.stop();
});

test(`kube-apiserver killed and restarted during a batch of ${BIG} reconciles`, async () => {
  await scenario(`apiserver restart during ${BIG} reconciles`, async () => {
    const batch = names("a", BIG);
    const t0 = performance.now();
    await createServers(batch);
    await waitFor("the batch to be under way (10 reconciles)", async () => (await op!.metric("mcp_bastion_reconcile_total")) >= 10, 60_000, 50);
    const done = await op!.metric("mcp_bastion_reconcile_total");
    const tKill = performance.now();
    await cp.restartApiServer();
    const outage = performance.now() - tKill;
    await waitConverged(kube, NS, CONVERGE_MS);
    const tEnd = performance.now();
    return `${secs(tEnd - tKill)} from kill to converged (outage ${secs(outage)}, ${done} reconciles done before it), ${secs(tEnd - t0)} for the whole batch`;
  });
});

test("etcd killed and restarted while specs change", async () => {
  await scenario(`etcd restart during ${SMALL} updates`, async () => {
    const batch = names("a", SMALL);
    const before = await op!.metric("mcp_bastion_reconcile_total");
    await updateServers(batch, "etcd");
    await waitFor("updates under way (3 reconciles)", async () => (await op!.metric("mcp_bastion_reconcile_total")) > before + 2, 60_000, 50);
    const t0 = performance.now();
    await cp.restartEtcd();
    const outage = performance.now() - t0;
    await waitConverged(kube, NS, CONVERGE_MS);
    return `${secs(performance.now() - t0)} from kill to converged (outage ${secs(outage)})`;
  });
});

/** Opens a watch on McpServers with our own client; resolves with how it ended. */
function rawWatch(resourceVersion: string): { ended: Promise<string>; firstEvent: Promise<string> } {
  const kc = parse(readFileSync(cp.kubeconfigPath, "utf8")) as {
    clusters: { cluster: { "certificate-authority-data": string } }[];
    users: { user: { "client-certificate-data": string; "client-key-data": string } }[];
  };
  const b64 = (s: string) => Buffer.from(s, "base64");
  let first: (s: string) => void = () => {};
  const firstEvent = new Promise<string>((r) => {
    first = r;
  });
  const ended = new Promise<string>((resolve) => {
    const r = request(
      `${cp.server}${MCP_PATH}/namespaces/${NS}/mcpservers?watch=1&allowWatchBookmarks=false&resourceVersion=${resourceVersion}&timeoutSeconds=120`,
      {
        ca: b64(kc.clusters[0]!.cluster["certificate-authority-data"]),
        cert: b64(kc.users[0]!.user["client-certificate-data"]),
        key: b64(kc.users[0]!.user["client-key-data"]),
        agent: false,
      },
      (res) => {
        if (res.statusCode !== 200) first(`HTTP ${res.statusCode}`);
        let buf = "";
        res.on("data", (c: Buffer) => {
          buf += c.toString();
          const nl = buf.indexOf("\n");
          if (nl > 0) first(buf.slice(0, nl));
        });
        res.on("end", () => resolve("closed by the server"));
        res.on("error", (e) => resolve(`error: ${e.message}`));
      },
    );
    r.on("error", (e) => resolve(`error: ${e.message}`));
    r.end();
  });
  return { ended, firstEvent };
}

async function listResourceVersion(): Promise<string> {
  const r = await kube.req("GET", `${MCP_PATH}/namespaces/${NS}/mcpservers?limit=1`);
  return (r.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
}

test("watches closed by the server (CRD updated) mid-change", async () => {
  await scenario(`watch closed by the server during ${SMALL} updates`, async () => {
    const w = rawWatch(await listResourceVersion());
    // Any change to a CRD's schema makes the API server rebuild its storage and end every watch on it.
    const crd = parse(readFileSync(CRD_FILE, "utf8")) as { spec: { versions: { schema: { openAPIV3Schema: { description?: string } } }[] } };
    crd.spec.versions[0]!.schema.openAPIV3Schema.description = `McpServer (reliability suite, ${Date.now()})`;
    const t0 = performance.now();
    await installCrd(kube, crd);
    const how = await Promise.race([w.ended, new Promise<string>((r) => setTimeout(r, 60_000, "still open after 60 s"))]);
    assert.equal(how, "closed by the server", "the API server did not close watches on the CRD update");
    await updateServers(names("a", SMALL), "rewatch");
    await waitConverged(kube, NS, CONVERGE_MS);
    return `${secs(performance.now() - t0)} from the watch closing to converged`;
  });
});

test("410 Gone: the operator comes back with a resourceVersion the API server no longer has", async () => {
  await scenario(`410 Gone after a freeze, ${SMALL} changes missed`, async () => {
    const stale = await listResourceVersion();
    // The operator relists for the 410, or (when its first reconnects meet the restarting API
    // server) after repeated watch failures; either way it must not trust its stale cache.
    const relists = async () => ({
      gone: await op!.metric("mcp_bastion_informer_lists_total", { kind: "McpServer", reason: "gone" }),
      errors: await op!.metric("mcp_bastion_informer_lists_total", { kind: "McpServer", reason: "errors" }),
    });
    const relistsBefore = await relists();
    const pid = op!.child.pid!;
    // Freeze the operator (its watches hold the RV above), change things it will miss, restart the
    // API server (its watch cache starts again at the current revision), then let it run again.
    process.kill(pid, "SIGSTOP");
    let proof = "";
    try {
      await updateServers(names("a", SMALL), "missed");
      await cp.restartApiServer();
      // Right after a restart the API server answers 429 until its watch cache is ready: ask again.
      proof = await waitUntil(
        "a watch from the stale resourceVersion to get an answer other than 429",
        () => {
          const w = rawWatch(stale);
          return Promise.race([w.firstEvent, new Promise<string>((r) => setTimeout(r, 30_000, "no event within 30 s"))]);
        },
        (first) => first !== "HTTP 429",
        RESTART_MS,
        500,
      );
    } finally {
      process.kill(pid, "SIGCONT");
    }
    assert.match(proof, /"code":410|HTTP 410|Expired|Gone|too old/, `a watch from the stale resourceVersion was not refused: ${proof.slice(0, 200)}`);
    const t0 = performance.now();
    await waitConverged(kube, NS, CONVERGE_MS);
    const after = await relists();
    const gone = after.gone - relistsBefore.gone;
    const errors = after.errors - relistsBefore.errors;
    assert.ok(gone + errors >= 1, "the operator did not relist McpServers after coming back with a stale resourceVersion");
    return `${secs(performance.now() - t0)} from resume to converged (a watch from the stale RV gets 410; the operator relisted: ${gone} for 410, ${errors} after watch errors)`;
  });
});

test("update conflicts: another writer fights over the children and the specs", async () => {
  await scenario(`update conflicts on ${SMALL} servers`, async () => {
    const batch = names("a", SMALL);
    let stop = false;
    let conflicts = 0;
    let intruderWrites = 0;
    let rounds = 0;
    // The intruder: scales Deployments by server-side apply (force) and patches specs with a stale
    // resourceVersion precondition, as a careless controller or a human with an old copy would.
    const intruder = (async () => {
      for (let round = 0; !stop; round++, rounds++) {
        await Promise.all(
          batch.slice(0, 20).map(async (n) => {
            const d = await kube.req(
              "PATCH",
              `/apis/apps/v1/namespaces/${NS}/deployments/${n}?fieldManager=intruder&force=true`,
              { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: n, namespace: NS }, spec: { replicas: 3 } },
              "application/apply-patch+yaml",
            );
            if (d.status === 200) intruderWrites++;
            const s = await kube.req("GET", `${MCP_PATH}/namespaces/${NS}/mcpservers/${n}`);
            const rv = (s.body as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
            await new Promise((r) => setTimeout(r, 5));
            const p = await kube.req(
              "PATCH",
              `${MCP_PATH}/namespaces/${NS}/mcpservers/${n}`,
              { metadata: { resourceVersion: rv }, spec: { env: [{ name: "ROUND", value: `intruder-${round}` }] } },
              "application/merge-patch+json",
            );
            if (p.status === 409) conflicts++;
            else if (p.status === 200) intruderWrites++;
          }),
        );
      }
    })();
    await updateServers(batch, "owner");
    // The fight lasts a while (a duration, not a synchronisation), and at least a few intruder rounds
    // however slow the machine, so the scenario always has something to converge from.
    await new Promise((r) => setTimeout(r, LONG ? 30_000 : 5_000));
    await waitFor(
      () => `3 intruder rounds (${rounds} done)`,
      () => rounds >= 3,
    );
    stop = true;
    await intruder;
    const t0 = performance.now();
    await waitConverged(kube, NS, CONVERGE_MS);
    const ms = performance.now() - t0;
    // Converged means settled: no child is still being fought over a little later.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.deepEqual((await fleetProblems(kube, NS)).slice(0, 5), [], "not stable after converging");
    return `${secs(ms)} from the intruder stopping to converged (${intruderWrites} intruder writes, ${conflicts} 409 Conflicts)`;
  });
});

test(`the leader SIGKILLed mid-batch of ${BIG} while a second replica waits for the Lease`, async () => {
  await scenario(`leader SIGKILL mid-batch of ${BIG}`, async () => {
    // A fresh pair with a short Lease (10 s), the first one alone so it is the leader. Not shorter: a
    // leader busy with 200 reconciles on a loaded machine must not miss its renew deadline (2/3 of it).
    const lease = ["--lease-duration=10", "--leader-election-id=reliability-pair"];
    await op!.stop("SIGTERM");
    // The test cluster's Service range is a /24: free the first batch's Service IPs (there is no
    // garbage collector without kube-controller-manager) and use a namespace of its own.
    await Promise.all(
      names("a", BIG).map(async (n) => {
        await kube.req("DELETE", `${MCP_PATH}/namespaces/${NS}/mcpservers/${n}`);
        await kube.req("DELETE", `/api/v1/namespaces/${NS}/services/${n}`);
      }),
    );
    await ensureNamespace(kube, LEADER_NS);
    const leader = await operator(lease);
    await leader.waitLog("leader elected", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"), 60_000);
    const standby = await operator(lease);
    op = standby;
    const batch = names("k", BIG);
    const t0 = performance.now();
    await createServers(batch, LEADER_NS);
    await waitFor(
      "the batch to be under way (10 reconciles by the leader)",
      async () => (await leader.metric("mcp_bastion_reconcile_total")) >= 10,
      60_000,
      50,
    );
    const done = await leader.metric("mcp_bastion_reconcile_total");
    const tKill = performance.now();
    await leader.stop("SIGKILL");
    await standby.waitLog("standby took over", (l) => typeof l.msg === "string" && l.msg.startsWith("became leader"), 90_000);
    const takeover = performance.now() - tKill;
    await waitConverged(kube, LEADER_NS, CONVERGE_MS);
    const tEnd = performance.now();
    return `${secs(tEnd - tKill)} from kill to converged (Lease taken over after ${secs(takeover)}, ${done} reconciles done by the old leader), ${secs(tEnd - t0)} for the batch`;
  });
});

test("a write answered just before a delete does not bring the deleted McpServer back into the operator's cache", async () => {
  await scenario("no resurrection of a deleted McpServer in the informer cache", async () => {
    // The race the soak found: reconcile writes status, the object is deleted, the DELETED event is
    // handled, then the write's answer is stored. The real informer against the real API server.
    const client = await KubeClient.create({ kubeconfigPath: cp.kubeconfigPath });
    const inf = new Informer(client, { apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", plural: "mcpservers", namespace: NS });
    inf.start();
    try {
      await inf.synced;
      const name = "resurrect-me";
      await createServers([name]);
      await waitFor("the informer sees the server", () => inf.get(NS, name) !== undefined);
      const answer = await kube.req(
        "PATCH",
        `${MCP_PATH}/namespaces/${NS}/mcpservers/${name}`,
        { metadata: { labels: { touched: "yes" } } },
        "application/merge-patch+json",
      );
      assert.equal(answer.status, 200);
      await kube.req("DELETE", `${MCP_PATH}/namespaces/${NS}/mcpservers/${name}`);
      await waitFor("the informer drops the server", () => inf.get(NS, name) === undefined);
      inf.store(answer.body as KubeObject);
      assert.equal(inf.get(NS, name), undefined, "store() brought a deleted object back");
      return "a late write answer is ignored after the DELETED event";
    } finally {
      await inf.stop();
    }
  });
});
