// The operator never writes over an object it does not own for this McpServer (issue 10, class 7):
// an object made by hand, or one held by another McpServer, under a name a server renders blocks
// that server: nothing is applied, Reconciled=False and Degraded=True (OwnershipConflict) name the
// holder, a Warning Event says the same, and the object is left exactly as it was. When the
// blocking object goes, the server converges. Children under the names of an earlier release are
// pruned once the new ones exist (the upgrade path of the collision-free names).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { defaultConfig, Operator } from "../../operator/src/controller/operator.ts";
import { parseClusterStorePolicy } from "../../operator/src/controller/plan.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor } from "../support/index.ts";
import { conditionsOf, getJson, grantOperatorRbac, installCrd, installUpstreamCrds, mcpServer, must, waitCondition } from "./helpers.ts";
import { upstreamCrdsYaml } from "../../dev/crds.ts";

const NS = "owners";
let cp: ControlPlane;
let op: Operator;
const apply = (obj: unknown) => must(cp, ["apply", "--server-side", "--field-manager=test-user", "-f", "-"], JSON.stringify(obj));
const secret = (name: string) => ({ secrets: [{ name, storeRef: { name: "vault" }, remoteRef: { key: `mcp/${name}` } }] });

before(async () => {
  cp = await startControlPlane();
  await installCrd(cp);
  await installUpstreamCrds(cp, upstreamCrdsYaml());
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  const base = defaultConfig();
  op = new Operator(
    defaultConfig({
      kubeconfigPath: await cp.userKubeconfig("mcp-bastion-operator"),
      gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:test",
      concurrency: 2,
      clusterStores: parseClusterStorePolicy([]),
      leaderElection: { ...base.leaderElection, enabled: false, namespace: "mcp-system" },
      discoveryIntervalMs: 1_000,
      conflictRecheckMs: 1_000,
    }),
  );
  await op.start();
});

after(async () => {
  await op?.stop();
  await cp?.stop();
});

/** The Warning Event for `server` with this reason, once it exists. */
async function warningEvent(server: string, reason: string) {
  return waitFor(`a Warning Event ${reason} on ${server}`, async () => {
    const list = await getJson(cp, ["events", "-n", NS, `--field-selector=involvedObject.name=${server},reason=${reason}`]);
    return list?.items.find((e: { type: string }) => e.type === "Warning");
  });
}

test("an object made by hand under a child's name blocks the server: condition, Warning Event, no write; removing it unblocks", async () => {
  await apply({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "blocked-gateway", namespace: NS }, data: { "gateway.json": '{"mine":true}' } });
  const before = await getJson(cp, ["configmap", "-n", NS, "blocked-gateway"]);
  await apply(mcpServer("blocked", NS));
  const live = await waitCondition(cp, NS, "blocked", "Degraded", "True", "OwnershipConflict");
  const c = conditionsOf(live);
  assert.equal(c.Reconciled?.status, "False");
  assert.equal(c.Reconciled?.reason, "OwnershipConflict");
  assert.match(c.Degraded?.message ?? "", /ConfigMap blocked-gateway is held by no controller \(not created by this McpServer; written by test-user\)/);
  const event = await warningEvent("blocked", "OwnershipConflict");
  assert.match(event.message, /ConfigMap blocked-gateway is held by no controller/);

  const after = await getJson(cp, ["configmap", "-n", NS, "blocked-gateway"]);
  assert.equal(after?.metadata.resourceVersion, before?.metadata.resourceVersion, "the foreign ConfigMap was written");
  assert.deepEqual(after?.data, { "gateway.json": '{"mine":true}' });
  assert.equal(after?.metadata.ownerReferences, undefined);
  assert.equal(await getJson(cp, ["deployment", "-n", NS, "blocked"]), undefined, "nothing is applied while a child is held elsewhere");

  await must(cp, ["delete", "configmap", "-n", NS, "blocked-gateway"]);
  // Not watched (no managed label): the blocked server looks again on its recheck interval.
  await waitCondition(cp, NS, "blocked", "Reconciled", "True", "Applied", 60_000);
  const mine = await getJson(cp, ["configmap", "-n", NS, "blocked-gateway"]);
  assert.equal(mine?.metadata.ownerReferences?.[0]?.name, "blocked");
});

test("an object held by another McpServer blocks the server and the Event names that McpServer", async () => {
  await apply(mcpServer("first", NS, secret("tok")));
  const first = await waitCondition(cp, NS, "first", "Reconciled", "True", "Applied");
  const es = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "first.tok"]);
  assert.ok(es, "ExternalSecret first.tok");
  // Another server's object under the name that server `second` with secret `x` renders: labelled
  // as managed (so it is in the operator's cache, the path without a GET) and controlled by `first`.
  await apply({
    apiVersion: "external-secrets.io/v1",
    kind: "ExternalSecret",
    metadata: {
      name: "second.x",
      namespace: NS,
      labels: { "app.kubernetes.io/managed-by": "mcp-bastion", "mcp.bastion.dev/server": "second" },
      ownerReferences: [{ apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", name: "first", uid: first.metadata.uid, controller: true }],
    },
    spec: {
      secretStoreRef: { name: "vault", kind: "SecretStore" },
      target: { name: "second.x" },
      data: [{ secretKey: "value", remoteRef: { key: "first/private" } }],
    },
  });
  const before = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "second.x"]);
  await apply(mcpServer("second", NS, secret("x")));
  const live = await waitCondition(cp, NS, "second", "Degraded", "True", "OwnershipConflict");
  assert.match(conditionsOf(live).Degraded?.message ?? "", new RegExp(`ExternalSecret second\\.x is held by McpServer first \\(uid ${first.metadata.uid}\\)`));
  const event = await warningEvent("second", "OwnershipConflict");
  assert.match(event.message, /McpServer first/);
  const after = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "second.x"]);
  assert.equal(after?.metadata.resourceVersion, before?.metadata.resourceVersion, "the other server's ExternalSecret was written");
  assert.equal(after?.spec.data[0].remoteRef.key, "first/private");
  // `first` itself is unaffected.
  assert.equal(conditionsOf(await getJson(cp, ["mcpserver", "-n", NS, "first"])).Reconciled?.status, "True");
});

test("upgrade: a child under its name from an earlier release (<server>-<secret>) is pruned and the new name applied", async () => {
  await apply(mcpServer("third", NS));
  const third = await waitCondition(cp, NS, "third", "Reconciled", "True", "Applied");
  await apply({
    apiVersion: "external-secrets.io/v1",
    kind: "ExternalSecret",
    metadata: {
      name: "third-tok",
      namespace: NS,
      labels: { "app.kubernetes.io/managed-by": "mcp-bastion", "mcp.bastion.dev/server": "third" },
      ownerReferences: [
        { apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", name: "third", uid: third.metadata.uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      secretStoreRef: { name: "vault", kind: "SecretStore" },
      target: { name: "third-tok" },
      data: [{ secretKey: "value", remoteRef: { key: "mcp/tok" } }],
    },
  });
  await apply(mcpServer("third", NS, secret("tok")));
  await waitFor(
    "third.tok applied and third-tok pruned",
    async () => {
      const list = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "-l", "mcp.bastion.dev/server=third"]);
      const names = list?.items.map((i: { metadata: { name: string } }) => i.metadata.name).sort();
      return JSON.stringify(names) === JSON.stringify(["third.tok"]) ? names : false;
    },
    60_000,
  );
  const deployment = await getJson(cp, ["deployment", "-n", NS, "third"]);
  const volumes = deployment?.spec.template.spec.volumes as { secret?: { secretName: string } }[];
  assert.ok(
    volumes.some((v) => v.secret?.secretName === "third.tok"),
    "the pod mounts the new Secret name",
  );
});

test("egress objects are admitted as rendered: public-address NetworkPolicy peers and the split ServiceEntries, against the real Istio CRDs", async () => {
  await apply(
    mcpServer("egress", NS, {
      mesh: { istio: { enabled: true } },
      network: {
        egress: [
          { cidrs: ["10.40.0.0/16", "fd00:1::/64"], ports: [{ port: 5432 }, { port: 5432, protocol: "UDP" }] },
          { hosts: ["api.github.com", "*.githubusercontent.com"], ports: [{ port: 443 }] },
        ],
      },
    }),
  );
  await waitCondition(cp, NS, "egress", "Reconciled", "True", "Applied", 60_000);
  const np = await getJson(cp, ["networkpolicy", "-n", NS, "egress"]);
  const rules = (np?.spec.egress ?? []) as { to?: { ipBlock?: { cidr: string; except?: string[] } }[] }[];
  const blocks = rules.flatMap((r) => (r.to ?? []).flatMap((p) => (p.ipBlock ? [p.ipBlock] : [])));
  assert.ok(
    blocks.some((b) => b.cidr === "0.0.0.0/0" && b.except?.includes("169.254.0.0/16")),
    JSON.stringify(blocks),
  );
  const entries = await getJson(cp, ["serviceentries.networking.istio.io", "-n", NS, "-l", "mcp.bastion.dev/server=egress"]);
  const byName = new Map<string, { resolution: string; hosts: string[]; addresses?: string[] }>(
    entries?.items.map((i: { metadata: { name: string }; spec: never }) => [i.metadata.name, i.spec]),
  );
  assert.deepEqual([...byName.keys()].sort(), ["egress-egress", "egress-egress-cidr-0", "egress-egress-wildcard"]);
  assert.equal(byName.get("egress-egress")?.resolution, "DNS");
  assert.equal(byName.get("egress-egress-wildcard")?.resolution, "NONE");
  assert.deepEqual(byName.get("egress-egress-cidr-0")?.addresses, ["10.40.0.0/16", "fd00:1::/64"]);
  const dep = await getJson(cp, ["deployment", "-n", NS, "egress"]);
  assert.equal(dep?.spec.template.metadata.annotations?.["traffic.sidecar.istio.io/excludeOutboundIPRanges"], undefined);
});
