// The controller's pure parts, without an API server: the write decision, conditions, the plan
// (validation, multi-tenancy, missing CRDs), status, the work queue and the operator's flags.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { configFromArgs } from "../../cli/src/commands/operator.ts";
import { applyReason, contains, HASH_ANNOTATION, verifiedMarker, withHash } from "../../operator/src/controller/compare.ts";
import { mergeConditions, transitions } from "../../operator/src/controller/conditions.ts";
import { bearer, inClusterCredentials } from "../../operator/src/runtime/credentials.ts";
import { backoffDelay, Informer } from "../../operator/src/runtime/informer.ts";
import type { KubeObject } from "../../contract/kube-object.ts";
import type { KubeClient } from "../../operator/src/runtime/kube.ts";
import {
  clusterStoreAllowed,
  desiredStatus,
  foreignHolder,
  type PlanEnv,
  parseClusterStorePolicy,
  planServer,
  statusEqual,
} from "../../operator/src/controller/plan.ts";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import { WorkQueue } from "../../operator/src/runtime/queue.ts";
import { SharedValues } from "../../operator/src/runtime/share.ts";
import { waitFor } from "../support/index.ts";
import { mcpServer } from "./helpers.ts";

const env = (over: Partial<PlanEnv> = {}): PlanEnv => ({ gatewayImage: "gw:1", servedKinds: new Set(), clusterStores: new Map(), ...over });
const server = (spec: Record<string, unknown> = {}) => {
  const s = mcpServer("demo", "team", spec) as KubeObject;
  s.metadata.uid = "uid-1";
  s.metadata.generation = 3;
  return s;
};

test("a child needs a write when missing, when its rendered content changed, or when a managed field drifted; not otherwise", () => {
  const cm = (data: Record<string, string>): KubeObject => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", namespace: "n" }, data });
  const desired = withHash(cm({ a: "1" }));
  assert.equal(applyReason(desired, undefined), "missing");
  const live = structuredClone(desired) as KubeObject;
  Object.assign(live.metadata, { resourceVersion: "7", uid: "x", creationTimestamp: "t" }); // server-added fields
  assert.equal(applyReason(desired, live), undefined);
  const drifted = structuredClone(live);
  (drifted.data as Record<string, string>).a = "2";
  assert.equal(applyReason(desired, drifted), "drifted");
  assert.equal(withHash(cm({ a: "1" })).metadata.annotations?.[HASH_ANNOTATION], desired.metadata.annotations?.[HASH_ANNOTATION], "hash is stable");
  const removedField = withHash(cm({}));
  assert.equal(applyReason(removedField, live), "changed", "a field that disappeared from the render is seen through the hash");
  // Once verified, the cache keeps only a marker: still equal for the same render, changed for another.
  const marker = verifiedMarker(live, desired.metadata.annotations?.[HASH_ANNOTATION] as string);
  assert.equal(marker.data, undefined, "the marker drops the body");
  assert.equal(applyReason(desired, marker), undefined);
  assert.equal(applyReason(removedField, marker), "changed");
});

test("containment ignores what the API server adds or drops, and sees real differences", () => {
  assert.ok(
    contains({ spec: { minReadySeconds: 0, hostNetwork: false, args: [], labels: {} } }, { spec: {} }),
    "zero values and empties are omitted by the server",
  );
  assert.ok(contains({ ports: [{ port: 80 }] }, { ports: [{ port: 80, protocol: "TCP" }] }), "server defaults inside list items");
  assert.ok(!contains({ ports: [{ port: 80 }] }, { ports: [{ port: 80 }, { port: 81 }] }), "an extra list item is drift");
  assert.ok(!contains({ hostNetwork: false }, { hostNetwork: true }));
  assert.ok(!contains({ replicas: 1 }, { replicas: 3 }));
});

test("lastTransitionTime moves only when a condition's status flips; Events only for real changes", () => {
  const t1 = mergeConditions(undefined, [{ type: "Ready", status: "False", reason: "A", message: "m" }], "T1");
  const t2 = mergeConditions(t1, [{ type: "Ready", status: "False", reason: "B", message: "other" }], "T2");
  assert.equal(t2[0]?.lastTransitionTime, "T1");
  const t3 = mergeConditions(t2, [{ type: "Ready", status: "True", reason: "B", message: "" }], "T3");
  assert.equal(t3[0]?.lastTransitionTime, "T3");
  assert.deepEqual(transitions(t1, t1), []);
  assert.deepEqual(
    transitions(t1, t2).map((t) => t.reason),
    ["B"],
  );
});

test("ClusterSecretStore policy: nothing allowed unless configured; per namespace, or * for all", () => {
  const p = parseClusterStorePolicy(["team=vault,aws", "*=shared"]);
  assert.ok(clusterStoreAllowed(p, "team", "vault"));
  assert.ok(clusterStoreAllowed(p, "other", "shared"));
  assert.ok(!clusterStoreAllowed(p, "other", "vault"));
  assert.ok(!clusterStoreAllowed(new Map(), "team", "vault"));
  assert.throws(() => parseClusterStorePolicy(["vault"]), /--allow-cluster-secret-store: "vault" must look like namespace=storeA,storeB/);
});

test("the plan refuses an invalid object with the field named, and a ClusterSecretStore the namespace may not use", () => {
  const invalid = planServer(server({ transport: { type: "pigeon" } }), env());
  assert.equal(invalid.ok, false);
  assert.ok(!invalid.ok && invalid.reason === "InvalidSpec" && /spec\.transport\.type/.test(invalid.message));
  const notAnObject = planServer({ apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", metadata: { name: "x" }, spec: "?" } as KubeObject, env());
  assert.ok(!notAnObject.ok && notAnObject.reason === "InvalidSpec");
  const secrets = { secrets: [{ name: "t", storeRef: { name: "vault", kind: "ClusterSecretStore" }, remoteRef: { key: "k" } }] };
  const refused = planServer(server(secrets), env());
  assert.ok(!refused.ok && refused.reason === "ClusterSecretStoreNotAllowed" && /"vault".*namespace "team"/.test(refused.message));
  const allowed = planServer(server(secrets), env({ clusterStores: parseClusterStorePolicy(["team=vault"]) }));
  assert.ok(allowed.ok);
});

test("missing CRDs: the plan keeps the rest, names each CRD and what to do; status says Degraded MissingCRD, Reconciled", () => {
  const plan = planServer(server({ mesh: { istio: { enabled: true } } }), env());
  assert.ok(plan.ok);
  assert.ok(plan.apply.some((o) => o.kind === "Deployment"));
  assert.ok(plan.apply.every((o) => !o.apiVersion.includes("istio")));
  assert.ok(plan.missing.length >= 2);
  const status = desiredStatus(server(), plan, { errors: [] }, undefined, "T");
  const byType = Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c]));
  assert.equal(byType.Degraded?.reason, "MissingCRD");
  assert.match(byType.Degraded?.message ?? "", /peerauthentications\.security\.istio\.io.*install Istio/);
  assert.equal(byType.Reconciled?.status, "True");
  assert.equal(byType.Ready?.reason, "DeploymentMissing");
  assert.equal(status.observedGeneration, 3);
  assert.ok(status.checklist && status.checklist.length > 0);
});

test("Ready follows the Deployment's Available condition; equal statuses compare equal", () => {
  const plan = planServer(server(), env());
  const dep = (available: string) =>
    ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "demo" },
      spec: { replicas: 2 },
      status: { availableReplicas: available === "True" ? 2 : 0, conditions: [{ type: "Available", status: available }] },
    }) as KubeObject;
  const down = desiredStatus(server(), plan, { errors: [], deployment: dep("False") }, undefined, "T1");
  assert.equal(down.conditions?.find((c) => c.type === "Ready")?.reason, "DeploymentUnavailable");
  const up = desiredStatus(server(), plan, { errors: [], deployment: dep("True") }, down, "T2");
  const ready = up.conditions?.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "True");
  assert.equal(ready?.lastTransitionTime, "T2");
  assert.ok(statusEqual(up, desiredStatus(server(), plan, { errors: [], deployment: dep("True") }, up, "T3")), "same inputs later: no status write");
});

test("the work queue never runs one key twice at once, runs keys in parallel, re-runs a key changed meanwhile, retries failures", async () => {
  const active = new Set<string>();
  let maxParallel = 0;
  const runs: string[] = [];
  let failOnce = true;
  const q = new WorkQueue(
    async (key) => {
      assert.ok(!active.has(key), `${key} ran twice at once`);
      active.add(key);
      maxParallel = Math.max(maxParallel, active.size);
      runs.push(key);
      await new Promise((r) => setTimeout(r, 20));
      active.delete(key);
      if (key === "flaky" && failOnce) {
        failOnce = false;
        throw new Error("transient");
      }
      return undefined;
    },
    { concurrency: 3, baseDelayMs: 10, maxDelayMs: 50 },
  );
  // add() starts work synchronously: a, b and c run now (concurrency 3) and flaky waits in the queue,
  // whatever the machine's speed (no timing involved).
  for (const k of ["a", "b", "c", "flaky"]) q.add(k);
  q.add("flaky"); // queued already: deduplicated
  q.add("a"); // running: marked dirty, runs again after
  await q.idle();
  // idle() does not count delayed retries: wait for the retry of "flaky" to start, then to finish.
  await waitFor("the retry of flaky to run", () => runs.filter((k) => k === "flaky").length >= 2, 30_000, 10);
  await q.idle();
  assert.equal(maxParallel, 3);
  assert.equal(runs.filter((k) => k === "a").length, 2);
  assert.equal(runs.filter((k) => k === "flaky").length, 2, "retried after the failure");
  await q.shutdown(1000);
});

test("backoff grows exponentially with jitter and is capped", () => {
  assert.equal(
    backoffDelay(0, 100, 10_000, () => 0),
    50,
  );
  assert.equal(
    backoffDelay(0, 100, 10_000, () => 1),
    100,
  );
  assert.equal(
    backoffDelay(3, 100, 10_000, () => 1),
    800,
  );
  assert.equal(
    backoffDelay(30, 100, 10_000, () => 1),
    10_000,
  );
});

test("operator flags: bad values are refused with the flag's name; defaults are the locked-down ones", () => {
  assert.throws(() => configFromArgs(["--leader-elect=maybe"]), /--leader-elect: "maybe" must be true or false/);
  assert.throws(() => configFromArgs(["--namespaces=Bad_NS"]), /--namespaces: "Bad_NS" is not a namespace name/);
  assert.throws(() => configFromArgs(["--concurrency=lots"]), /--concurrency: "lots" must be a whole number/);
  assert.throws(() => configFromArgs(["--metrics-bind-address=:http"]), /--metrics-bind-address/);
  const cfg = configFromArgs(["--namespaces=a,b", "--allow-cluster-secret-store=a=vault", "--gateway-image=reg/gw@sha256:abc"], {});
  assert.deepEqual(cfg.namespaces, ["a", "b"]);
  assert.equal(cfg.gatewayImage, "reg/gw@sha256:abc");
  assert.ok(clusterStoreAllowed(cfg.clusterStores, "a", "vault"));
  const defaults = configFromArgs([], {});
  assert.equal(defaults.clusterStores.size, 0, "no ClusterSecretStore allowed by default");
  assert.equal(defaults.leaderElection.enabled, true);
  assert.equal(defaults.gatewayImage, "ghcr.io/mcp-bastion/mcp-bastion:0.1.0");
  assert.equal(configFromArgs([], { MCP_BASTION_GATEWAY_IMAGE: "reg/gw:2" }).gatewayImage, "reg/gw:2");
  // issue 14: the chart's defaultImagePolicy arrives as a flag (or the environment); AllowTags unless set.
  assert.equal(defaults.defaultImagePolicy, "AllowTags");
  assert.equal(configFromArgs(["--default-image-policy=RequireDigest"], {}).defaultImagePolicy, "RequireDigest");
  assert.equal(configFromArgs([], { MCP_BASTION_DEFAULT_IMAGE_POLICY: "RequireDigest" }).defaultImagePolicy, "RequireDigest");
  assert.throws(
    () => configFromArgs(["--default-image-policy=requiredigest"], {}),
    /--default-image-policy: "requiredigest" must be RequireDigest or AllowTags/,
  );
});

test("issue 14: under RequireDigest a tag-only image is refused as ImageNotPinned naming it; spec.imagePolicy overrides the default", () => {
  const env: PlanEnv = { gatewayImage: "gw:1", servedKinds: new Set(), clusterStores: new Map(), defaultImagePolicy: "RequireDigest" };
  const tagged = (extra: Record<string, unknown> = {}) => ({
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: "t", namespace: "ns", uid: "u1", generation: 1 },
    spec: {
      image: "registry.example/team/mcp:1.4",
      transport: { type: "streamable-http", port: 3000 },
      auth: { apiKeys: { secretRef: { name: "k" } } },
      ...extra,
    },
  });
  const refused = planServer(tagged(), env);
  assert.equal(refused.ok, false);
  assert.ok(!refused.ok && refused.reason === "ImageNotPinned");
  assert.ok(!refused.ok && refused.message.includes('spec.image "registry.example/team/mcp:1.4" is not pinned by digest'));
  assert.ok(
    !refused.ok && /the operator's default.*use registry\.example\/team\/mcp@sha256:<digest>/.test(refused.message),
    !refused.ok ? refused.message : "",
  );
  const status = desiredStatus(tagged() as never, refused, { errors: [] }, undefined, "2026-11-30T12:00:00Z");
  const reconciled = status.conditions?.find((c) => c.type === "Reconciled");
  assert.equal(reconciled?.reason, "ImageNotPinned");
  assert.equal(status.checklist, undefined, "nothing deployed, no checklist");
  const explicit = planServer(tagged({ imagePolicy: "RequireDigest" }), { ...env, defaultImagePolicy: "AllowTags" });
  assert.ok(!explicit.ok && explicit.message.includes("(spec.imagePolicy)"));
  const allowed = planServer(tagged({ imagePolicy: "AllowTags" }), env);
  assert.ok(allowed.ok);
  assert.match(allowed.render.checklist.find((c) => c.id === "image-pinned-by-digest")!.detail, /imagePolicy AllowTags/);
  const pinned = planServer(tagged({ image: `registry.example/team/mcp@sha256:${"b".repeat(64)}` }), env);
  assert.ok(pinned.ok);
  assert.match(pinned.render.checklist.find((c) => c.id === "image-pinned-by-digest")!.detail, /RequireDigest: a tag-only image is refused/);
});

test("issue 14: API keys from a ClusterSecretStore the namespace may not use are refused like spec.secrets", () => {
  const env: PlanEnv = { gatewayImage: "gw:1", servedKinds: new Set(), clusterStores: parseClusterStorePolicy(["other=vault"]) };
  const raw = {
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: "t", namespace: "ns", uid: "u1", generation: 1 },
    spec: {
      image: `r/m@sha256:${"c".repeat(64)}`,
      transport: { type: "streamable-http", port: 3000 },
      auth: { apiKeys: { externalSecret: { storeRef: { name: "vault", kind: "ClusterSecretStore" }, key: "k" } } },
    },
  };
  const p = planServer(raw, env);
  assert.ok(!p.ok && p.reason === "ClusterSecretStoreNotAllowed");
  assert.ok(!p.ok && p.message.includes('spec.auth.apiKeys.externalSecret uses ClusterSecretStore "vault"'));
  assert.ok(planServer(raw, { ...env, clusterStores: parseClusterStorePolicy(["ns=vault"]) }).ok);
});

test("in a pod the service account token is read directly (and re-read), with the API server from the environment", () => {
  const dir = mkdtempSync(join(tmpdir(), "sa-"));
  try {
    assert.equal(inClusterCredentials({ KUBERNETES_SERVICE_HOST: "10.96.0.1" }, dir), undefined, "no token file: not in a pod");
    writeFileSync(join(dir, "token"), "first-token\n");
    writeFileSync(join(dir, "ca.crt"), "CA PEM");
    const creds = inClusterCredentials({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, dir);
    assert.equal(creds?.server, "https://10.96.0.1:443");
    assert.equal(creds?.headers.Authorization, "Bearer first-token");
    assert.equal(creds?.ca, "CA PEM");
    assert.equal(inClusterCredentials({ KUBERNETES_SERVICE_HOST: "fd00::1" }, dir)?.server, "https://[fd00::1]:443");
    writeFileSync(join(dir, "token"), "rotated-token");
    assert.equal(bearer(creds?.tokenFile as string).Authorization, "Bearer rotated-token");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ownership: only an object controlled by this McpServer's uid may be written; the holder is named otherwise", () => {
  const obj = (ownerReferences?: unknown[], managers: string[] = []): KubeObject => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "c", namespace: "n", ...(ownerReferences ? { ownerReferences } : {}), managedFields: managers.map((manager) => ({ manager })) },
  });
  const ref = (uid: string, name: string, controller = true) => ({ apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", name, uid, controller });
  assert.equal(foreignHolder(obj([ref("uid-1", "demo")]), "uid-1"), undefined);
  assert.equal(foreignHolder(obj([ref("uid-2", "other")]), "uid-1"), "McpServer other (uid uid-2)");
  assert.equal(
    foreignHolder(obj([ref("uid-1", "demo", false)]), "uid-1"),
    "no controller (not created by this McpServer)",
    "a non-controller reference does not make it ours",
  );
  assert.equal(foreignHolder(obj(undefined, ["kubectl", "kubectl"]), "uid-1"), "no controller (not created by this McpServer; written by kubectl)");
  assert.equal(foreignHolder(obj([ref("uid-1", "demo")]), undefined), "McpServer demo (uid uid-1)", "without a uid nothing is ours");

  const raw = server();
  const plan = planServer(raw, env());
  const status = desiredStatus(
    raw,
    plan,
    { errors: [], conflicts: [{ kind: "ExternalSecret", name: "demo.tok", holder: "McpServer other (uid uid-2)" }] },
    undefined,
    "2026-01-01T00:00:00Z",
  );
  const byType = new Map(status.conditions?.map((c) => [c.type, c]));
  assert.equal(byType.get("Reconciled")?.status, "False");
  assert.equal(byType.get("Reconciled")?.reason, "OwnershipConflict");
  assert.equal(byType.get("Degraded")?.status, "True");
  assert.match(byType.get("Degraded")?.message ?? "", /ExternalSecret demo\.tok is held by McpServer other \(uid uid-2\)/);
  // Degraded=True is a transition that the operator records as a Warning Event.
  assert.ok(transitions(undefined, status.conditions ?? []).some((t) => t.type === "Degraded" && t.status === "True" && t.reason === "OwnershipConflict"));
});

test("status.protocolVersions says which MCP revisions clients may use: every supported one by default, else the allowlist", () => {
  const all = desiredStatus(server(), planServer(server(), env()), { errors: [] }, undefined, "T");
  assert.deepEqual(all.protocolVersions, [...SUPPORTED_PROTOCOL_VERSIONS]);
  const narrowed = server({ protocol: { versions: ["2026-07-28"] } });
  const only2026 = desiredStatus(narrowed, planServer(narrowed, env()), { errors: [] }, undefined, "T");
  assert.deepEqual(only2026.protocolVersions, ["2026-07-28"]);
  assert.ok(!statusEqual(all, only2026), "narrowing the allowlist changes the status (a status write)");
  const item = only2026.checklist?.find((c) => c.id === "protocol-revisions");
  assert.equal(item?.satisfied, true, "one era only is a choice, not a failure");
  assert.match(item?.detail ?? "", /no 2025 revision/);
});

test("the informer's owner index finds an owner's children, and follows an owner change and a forget", () => {
  const inf = new Informer({} as KubeClient, {
    apiVersion: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    indexBy: (o) => (o.metadata.labels?.owner ? `${o.metadata.namespace}/${o.metadata.labels.owner}` : undefined),
  });
  const cm = (name: string, owner: string | undefined, rv: number) =>
    ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace: "ns", resourceVersion: String(rv), ...(owner ? { labels: { owner } } : {}) },
    }) as KubeObject;
  inf.store(cm("a-1", "a", 1));
  inf.store(cm("a-2", "a", 2));
  inf.store(cm("b-1", "b", 3));
  inf.store(cm("loose", undefined, 4));
  const names = (owner: string) => [...inf.byIndex(`ns/${owner}`)].map((o) => o.metadata.name).sort();
  assert.deepEqual(names("a"), ["a-1", "a-2"]);
  assert.deepEqual(names("b"), ["b-1"]);
  inf.store(cm("a-2", "b", 5)); // relabelled to another owner
  assert.deepEqual(names("a"), ["a-1"]);
  assert.deepEqual(names("b"), ["a-2", "b-1"]);
  inf.forget(cm("a-1", "a", 1));
  assert.deepEqual(names("a"), []);
  assert.equal(inf.cache.size, 3);
});

test("the echo of the controller's own write (an event of the resourceVersion it already cached) keeps the cached stand-in and re-runs no one, on a watch and on a relist", async () => {
  const cm = (name: string, rv: number, data: Record<string, string> = { big: "x".repeat(100) }) =>
    ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "ns", resourceVersion: String(rv) }, data }) as KubeObject;
  const events: { type: string; object: unknown }[] = [];
  let wake: (() => void) | undefined;
  let listed = [cm("a", 10)];
  const client = {
    list: async () => ({ metadata: { resourceVersion: "10" }, items: listed }),
    async *watch(_path: string, _query: unknown, signal: AbortSignal) {
      while (!signal.aborted) {
        const ev = events.shift();
        if (ev) yield ev;
        else
          await new Promise<void>((r) => {
            wake = r;
            signal.addEventListener("abort", () => r(), { once: true });
          });
      }
    },
  } as unknown as KubeClient;
  const seen: string[] = [];
  const inf = new Informer(client, { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps", namespace: "ns" });
  inf.on((type, obj) => seen.push(`${type} ${obj.metadata.name}@${obj.metadata.resourceVersion}`));
  const send = (...evs: { type: string; object: unknown }[]) => {
    events.push(...evs);
    wake?.();
  };
  inf.start();
  try {
    await inf.synced;
    // The controller wrote "a" (answer: resourceVersion 11) and cached a small stand-in for it.
    const standIn = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "ns", resourceVersion: "11" }, verified: true } as KubeObject;
    inf.store(standIn);
    send({ type: "MODIFIED", object: cm("a", 11) }, { type: "ADDED", object: cm("b", 12) });
    await waitFor("b's event", () => seen.includes("ADDED b@12"), 10_000);
    assert.deepEqual(seen, ["ADDED a@10", "ADDED b@12"], "the echo a@11 is not handed to the handlers");
    assert.equal(inf.get("ns", "a"), standIn, "the stand-in stays");
    // Someone else changes "a": that is news, and the whole object replaces the stand-in.
    send({ type: "MODIFIED", object: cm("a", 13, { hand: "edit" }) });
    await waitFor("a's change", () => seen.includes("MODIFIED a@13"), 10_000);
    assert.deepEqual(inf.get("ns", "a")?.data, { hand: "edit" });
    // A relist (410 Gone) that finds "a" as cached keeps the cached form and says nothing about it.
    inf.store({ ...standIn, metadata: { ...standIn.metadata, resourceVersion: "14" } });
    listed = [cm("a", 14), cm("b", 12), cm("c", 15)];
    send({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old" } });
    await waitFor("the relist", () => seen.includes("ADDED c@15"), 10_000);
    assert.deepEqual(seen.slice(3), ["ADDED c@15"]);
    assert.equal((inf.get("ns", "a") as { verified?: boolean }).verified, true, "the stand-in survives the relist");
  } finally {
    await inf.stop();
  }
});

test("a verified child is cached as a marker with only what the controller reads; shared status parts are frozen", () => {
  const live = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: "demo",
      namespace: "team",
      uid: "u-1",
      resourceVersion: "9",
      creationTimestamp: "t",
      labels: { "mcp.bastion.dev/server": "demo", "app.kubernetes.io/name": "mcp-server" },
      annotations: { [HASH_ANNOTATION]: "h", other: "x" },
      ownerReferences: [
        { apiVersion: "v1", kind: "Other", name: "o", uid: "u-o" },
        { apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", name: "demo", uid: "u-s", controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [{ manager: "mcp-bastion" }],
    },
    spec: { replicas: 3, template: { spec: { containers: [{ name: "c", image: "i" }] } } },
    status: { availableReplicas: 1 },
  } as KubeObject;
  const marker = verifiedMarker(live, "h", ["mcp.bastion.dev/server"]);
  assert.deepEqual(marker.metadata, {
    name: "demo",
    namespace: "team",
    uid: "u-1",
    resourceVersion: "9",
    labels: { "mcp.bastion.dev/server": "demo" },
    annotations: { [HASH_ANNOTATION]: "h" },
    ownerReferences: [{ controller: true, kind: "McpServer", name: "demo", uid: "u-s" }],
  });
  assert.deepEqual(marker.spec, { replicas: 3 }, "Ready says n/3 pods, as from the whole object");
  assert.deepEqual(marker.status, { availableReplicas: 1 });
  assert.equal(foreignHolder(marker, "u-s"), undefined, "still ours");
  assert.match(foreignHolder(marker, "u-other") ?? "", /McpServer demo \(uid u-s\)/);
  const shared = new SharedValues();
  const a = shared.shareEach([{ id: "x", satisfied: true }]);
  const b = shared.shareEach([{ id: "x", satisfied: true }]);
  assert.equal(a[0], b[0], "one instance for equal items");
  assert.throws(() => {
    (a[0] as { satisfied: boolean }).satisfied = false;
  }, TypeError);
});

test("a key changed while it ran runs again before the keys that were waiting (its render is still cached then)", async () => {
  const runs: string[] = [];
  let release: (() => void) | undefined;
  const q = new WorkQueue(
    async (key) => {
      runs.push(key);
      if (key === "a" && runs.length === 1) await new Promise<void>((r) => (release = r));
      return undefined;
    },
    { concurrency: 1 },
  );
  q.add("a"); // runs now (one worker) and waits
  for (const k of ["b", "c", "d"]) q.add(k);
  q.add("a"); // changed while running
  release?.();
  await q.idle();
  assert.deepEqual(runs, ["a", "a", "b", "c", "d"]);
  await q.shutdown(1000);
});

test("a write's answer replaces the watch's copy of the same version (the echo came first), never a newer one", () => {
  const inf = new Informer({} as KubeClient, { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps" });
  const at = (rv: string, extra: Record<string, unknown> = {}) =>
    ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "ns", resourceVersion: rv }, ...extra }) as KubeObject;
  inf.store(at("5", { data: { big: "x" } })); // as the watch would have put it
  inf.store(at("5", { marker: true }));
  assert.equal(inf.get("ns", "a")?.marker, true, "the same version's stand-in takes its place");
  inf.store(at("7", { data: { newer: "y" } }));
  inf.store(at("6", { marker: true }));
  assert.deepEqual(inf.get("ns", "a")?.data, { newer: "y" }, "an older answer never replaces a newer object");
});
