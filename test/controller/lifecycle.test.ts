// The life of an McpServer against a real kube-apiserver + etcd + kube-controller-manager, with the
// operator running in this process under exactly the RBAC of operator/src/controller/rbac.ts
// (a missing verb fails here). No kubelet and no scheduler: Pods are created but stay Pending, so
// Ready stays False with reason DeploymentUnavailable, as documented.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { contains, differences } from "../../operator/src/controller/compare.ts";
import type { Operator } from "../../operator/src/controller/operator.ts";
import { parseClusterStorePolicy } from "../../operator/src/controller/plan.ts";
import { OWNED_KINDS, renderMcpServer } from "../../operator/src/render/index.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor } from "../support/index.ts";
import {
  conditionsOf,
  getJson,
  grantOperatorRbac,
  installCrd,
  installUpstreamCrds,
  mcpServer,
  must,
  ROOT,
  startInProcessOperator,
  waitCondition,
} from "./helpers.ts";
import { upstreamCrdsYaml } from "../../dev/crds.ts";

const NS = "team-a";
const GATEWAY_IMAGE = "ghcr.io/mcp-bastion/mcp-bastion:test";
let cp: ControlPlane;
let op: Operator;

const apply = (obj: unknown) => must(cp, ["apply", "--server-side", "--field-manager=test-user", "-f", "-"], JSON.stringify(obj));
const pluralOf = (kind: string) => OWNED_KINDS.find((k) => k.kind === kind)?.plural ?? kind.toLowerCase();
const resourceOf = (o: { apiVersion: string; kind: string }) => {
  const group = o.apiVersion.includes("/") ? o.apiVersion.split("/")[0] : "";
  return group ? `${pluralOf(o.kind)}.${group}` : pluralOf(o.kind);
};

before(async () => {
  cp = await startControlPlane({ controllerManager: true });
  await installCrd(cp);
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted"]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  op = await startInProcessOperator(cp, { gatewayImage: GATEWAY_IMAGE, concurrency: 4, clusterStores: parseClusterStorePolicy([`${NS}=allowed-store`]) });
});

after(async () => {
  await op?.stop();
  await cp?.stop();
});

test("a new McpServer gets every rendered child as rendered, owned by it, and a Reconciled status with the checklist", async () => {
  await apply(mcpServer("alpha", NS));
  const live = await waitCondition(cp, NS, "alpha", "Reconciled", "True", "Applied");
  const status = live.status;
  assert.equal(status.observedGeneration, 1);
  assert.equal(status.url, "http://alpha.team-a.svc.cluster.local:8443/mcp");
  assert.ok(status.checklist.length >= 5, "checklist filled");
  for (const item of status.checklist) assert.ok(item.id && item.title && typeof item.satisfied === "boolean" && item.detail);
  const c = conditionsOf(live);
  assert.equal(c.Ready?.status, "False");
  assert.equal(c.Ready?.reason, "DeploymentUnavailable", "no kubelet: Pods never run, so the Deployment is never available");
  assert.equal(c.Degraded?.status, "False");

  // What reached the API server is what the renderer produced (no field dropped on the way).
  const valid = validateMcpServer(live);
  assert.ok(valid.ok);
  const rendered = renderMcpServer(valid.value, { gatewayImage: GATEWAY_IMAGE });
  assert.ok(rendered.objects.some((o) => o.kind === "Deployment") && rendered.objects.some((o) => o.kind === "NetworkPolicy"));
  for (const want of rendered.objects) {
    const got = await getJson(cp, [resourceOf(want), "-n", NS, want.metadata.name, "--show-managed-fields"]);
    assert.ok(got, `${want.kind} ${want.metadata.name} exists`);
    assert.ok(contains(want, got), `${want.kind} ${want.metadata.name} differs at ${differences(want, got).join(", ")}`);
    const owner = got.metadata.ownerReferences?.[0];
    assert.equal(owner?.uid, live.metadata.uid);
    assert.equal(owner?.controller, true);
    // Only our field manager owns the children's fields.
    assert.deepEqual(
      [...new Set(got.metadata.managedFields.filter((m: { operation: string }) => m.operation === "Apply").map((m: { manager: string }) => m.manager))],
      ["mcp-bastion"],
    );
  }
});

test("Pod Security restricted: the operator's Deployment gets its Pods; one insecure setting gets FailedCreate", async () => {
  const pods = await waitFor("Pods of alpha", async () => {
    const list = await getJson(cp, ["pods", "-n", NS, "-l", "app.kubernetes.io/instance=alpha"]);
    return list?.items.length ? list.items : undefined;
  });
  assert.ok(pods.length >= 1);
  const events = await getJson(cp, ["events", "-n", NS, "--field-selector=reason=FailedCreate"]);
  assert.deepEqual(
    events?.items.map((e: { message: string }) => e.message),
    [],
    "no FailedCreate for the operator's ReplicaSet",
  );

  // The same pod template with one setting loosened is refused by the PodSecurity admission.
  const dep = await getJson(cp, ["deployment", "-n", NS, "alpha"]);
  const template = dep?.spec.template;
  template.metadata.labels = { app: "insecure" };
  template.spec.containers[0].securityContext.allowPrivilegeEscalation = true;
  await apply({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "insecure", namespace: NS },
    spec: { replicas: 1, selector: { matchLabels: { app: "insecure" } }, template },
  });
  const failed = await waitFor("FailedCreate for the insecure Deployment", async () => {
    const list = await getJson(cp, ["events", "-n", NS, "--field-selector=reason=FailedCreate"]);
    return list?.items.find((e: { involvedObject: { name: string } }) => e.involvedObject.name.startsWith("insecure-"));
  });
  assert.match(failed.message, /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
  await must(cp, ["delete", "deployment", "-n", NS, "insecure"]);
});

test("an invalid McpServer is refused by the API server with a message naming the field (schema and CEL)", async () => {
  const schema = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(mcpServer("bad-schema", NS, { replicas: 0 })) });
  assert.notEqual(schema.code, 0);
  assert.match(schema.stderr, /spec\.replicas: Invalid value: 0: spec\.replicas in body should be greater than or equal to 1/);
  const cel = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(mcpServer("bad-cel", NS, { transport: { type: "stdio" } })) });
  assert.notEqual(cel.code, 0);
  assert.match(cel.stderr, /spec\.command: Invalid value: .*spec\.command is required when spec\.transport\.type is stdio/);
});

test("a spec update changes the Deployment and observedGeneration follows", async () => {
  const image = "ghcr.io/example/mcp-everything:2.0.0";
  await apply(mcpServer("alpha", NS, { image }));
  const live = await waitCondition(cp, NS, "alpha", "Reconciled", "True");
  assert.equal(live.metadata.generation, 2);
  assert.equal(live.status.observedGeneration, 2);
  const dep = await getJson(cp, ["deployment", "-n", NS, "alpha"]);
  assert.ok(dep?.spec.template.spec.containers.some((c: { image: string }) => c.image === image));
  const pin = live.status.checklist.find((i: { id: string }) => i.id === "image-pinned-by-digest");
  assert.equal(pin?.satisfied, false, "the status checklist follows the spec: a tag-only image is reported");
});

test("a hand edit of a child is reverted and a deleted child comes back", async () => {
  await must(cp, ["scale", "deployment", "-n", NS, "alpha", "--replicas=3"]);
  await must(cp, ["patch", "configmap", "-n", NS, "alpha-gateway", "--type=merge", "-p", JSON.stringify({ data: { "gateway.json": "{}" } })]);
  await must(cp, ["delete", "networkpolicy", "-n", NS, "alpha"]);
  await waitFor("Deployment replicas back to 1", async () => (await getJson(cp, ["deployment", "-n", NS, "alpha"]))?.spec.replicas === 1);
  await waitFor("gateway config restored", async () => (await getJson(cp, ["configmap", "-n", NS, "alpha-gateway"]))?.data["gateway.json"] !== "{}");
  await waitFor("NetworkPolicy recreated", () => getJson(cp, ["networkpolicy", "-n", NS, "alpha"]));
});

test("Istio: Degraded MissingCRD while its CRDs are absent (the rest applied), applied once installed, pruned when switched off", async () => {
  const meshy = mcpServer("meshy", NS, { mesh: { istio: { enabled: true } } });
  await apply(meshy);
  const degraded = await waitCondition(cp, NS, "meshy", "Degraded", "True", "MissingCRD");
  const msg = conditionsOf(degraded).Degraded?.message ?? "";
  assert.match(msg, /peerauthentications\.security\.istio\.io/);
  assert.match(msg, /install Istio .* or set spec\.mesh\.istio\.enabled: false/);
  assert.equal(conditionsOf(degraded).Reconciled?.status, "True");
  assert.ok(await getJson(cp, ["deployment", "-n", NS, "meshy"]), "the rest is applied");

  await installUpstreamCrds(cp, upstreamCrdsYaml());
  await waitCondition(cp, NS, "meshy", "Degraded", "False");
  for (const r of ["peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io", "sidecars.networking.istio.io"]) {
    assert.ok(await getJson(cp, [r, "-n", NS, "meshy"]), `${r} applied`);
  }
  await apply(mcpServer("meshy", NS, { mesh: { istio: { enabled: false } } }));
  await waitFor("Istio objects pruned", async () => {
    for (const r of ["peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io", "sidecars.networking.istio.io"]) {
      if (await getJson(cp, [r, "-n", NS, "meshy"])) return false;
    }
    return true;
  });
  assert.ok(await getJson(cp, ["deployment", "-n", NS, "meshy"]), "the Deployment stays");
});

test("multi-tenancy: a ClusterSecretStore the namespace may not use is refused; an allowed one is applied", async () => {
  const secret = (store: string) => ({ secrets: [{ name: "token", storeRef: { name: store, kind: "ClusterSecretStore" }, remoteRef: { key: "mcp/token" } }] });
  await apply(mcpServer("sneaky", NS, secret("other-teams-vault")));
  const refused = await waitCondition(cp, NS, "sneaky", "Degraded", "True", "ClusterSecretStoreNotAllowed");
  assert.match(conditionsOf(refused).Degraded?.message ?? "", /ClusterSecretStore "other-teams-vault".*not allow.*namespace "team-a"/);
  assert.equal(await getJson(cp, ["deployment", "-n", NS, "sneaky"]), undefined, "nothing deployed for a refused server");
  const event = await waitFor("a Warning Event on sneaky", async () => {
    const list = await getJson(cp, ["events", "-n", NS, "--field-selector=involvedObject.name=sneaky,reason=ClusterSecretStoreNotAllowed"]);
    return list?.items.find((e: { type: string }) => e.type === "Warning");
  });
  assert.equal(event.involvedObject.kind, "McpServer");
  assert.match(event.message, /^(Reconciled=False|Degraded=True): .*other-teams-vault/);

  await apply(mcpServer("allowed", NS, secret("allowed-store")));
  await waitCondition(cp, NS, "allowed", "Reconciled", "True", "Applied");
  const es = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "-l", "mcp.bastion.dev/server=allowed"]);
  assert.equal(es?.items.length, 1);
  assert.equal(es?.items[0].spec.secretStoreRef.kind, "ClusterSecretStore");
  assert.equal(es?.items[0].spec.secretStoreRef.name, "allowed-store");
});

test("an invalid object stored before the CRD was tightened is reported InvalidSpec and the operator carries on", async () => {
  const crd = await getJson(cp, ["crd", "mcpservers.mcp.bastion.dev"]);
  assert.ok(crd);
  const loose = structuredClone(crd);
  delete loose.metadata.resourceVersion;
  delete loose.metadata.managedFields;
  delete loose.status;
  loose.spec.versions[0].schema.openAPIV3Schema.properties.spec = { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  await must(cp, ["replace", "-f", "-"], JSON.stringify(loose));
  await waitFor("loose schema served", async () => {
    const r = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
      input: JSON.stringify(mcpServer("odd", NS, { transport: { type: "carrier-pigeon" }, auth: "yes" })),
    });
    return r.code === 0;
  });
  await apply(mcpServer("odd", NS, { transport: { type: "carrier-pigeon" }, auth: "yes" }));
  await must(cp, ["apply", "--server-side", "--force-conflicts", "-f", `${ROOT}/crds/mcp.bastion.dev_mcpservers.yaml`]);
  const odd = await waitCondition(cp, NS, "odd", "Degraded", "True", "InvalidSpec");
  const message = conditionsOf(odd).Degraded?.message ?? "";
  assert.match(message, /spec\.transport\.type/);
  assert.match(message, /spec\.auth/);
  // Still alive and reconciling others.
  await apply(mcpServer("after-odd", NS));
  await waitCondition(cp, NS, "after-odd", "Reconciled", "True");
});

test("deleting an McpServer garbage-collects its children", async () => {
  await must(cp, ["delete", "mcpserver", "-n", NS, "alpha", "--wait=true"]);
  await waitFor(
    "alpha's children gone",
    async () => {
      const left = await getJson(cp, ["deployments,services,configmaps,networkpolicies,serviceaccounts", "-n", NS, "-l", "mcp.bastion.dev/server=alpha"]);
      return left?.items.length === 0;
    },
    60_000,
  );
  assert.ok(op.writes > 0);
});
