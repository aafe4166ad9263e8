// issue 14 against a real kube-apiserver, with the operator in this process under its own RBAC and the
// chart's defaultImagePolicy set to RequireDigest: a tag-only image is refused with a condition naming it
// (and deployed once pinned), a server may opt out visibly with spec.imagePolicy: AllowTags, and API keys
// from a secret manager become an ExternalSecret the gateway mounts, counted as rotated on its schedule.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Operator } from "../../operator/src/controller/operator.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { upstreamCrdsYaml } from "../../dev/crds.ts";
import { waitFor } from "../support/index.ts";
import {
  conditionsOf,
  getJson,
  grantOperatorRbac,
  installCrd,
  installUpstreamCrds,
  mcpServer,
  must,
  startInProcessOperator,
  waitCondition,
} from "./helpers.ts";

const NS = "images";
const DIGEST = `ghcr.io/example/mcp-everything@sha256:${"4c".repeat(32)}`;
let cp: ControlPlane;
let op: Operator;
const apply = (obj: unknown) => must(cp, ["apply", "--server-side", "--field-manager=test-user", "-f", "-"], JSON.stringify(obj));
const checklistItem = (o: { status?: { checklist?: { id: string; satisfied: boolean; detail: string }[] } }, id: string) =>
  o.status?.checklist?.find((i) => i.id === id);

before(async () => {
  cp = await startControlPlane();
  await installCrd(cp);
  await installUpstreamCrds(cp, upstreamCrdsYaml());
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  op = await startInProcessOperator(cp, { concurrency: 2, defaultImagePolicy: "RequireDigest" });
});

after(async () => {
  await op?.stop();
  await cp?.stop();
});

test("under the default RequireDigest a tag-only image is refused naming it, nothing is deployed, and pinning it deploys", async () => {
  const tagged = "ghcr.io/example/mcp-everything:2.0.0";
  await apply(mcpServer("tagged", NS, { image: tagged }));
  const refused = await waitCondition(cp, NS, "tagged", "Reconciled", "False", "ImageNotPinned");
  const c = conditionsOf(refused);
  assert.match(
    c.Reconciled?.message ?? "",
    /spec\.image "ghcr\.io\/example\/mcp-everything:2\.0\.0" is not pinned by digest.*RequireDigest \(the operator's default/,
  );
  assert.equal(c.Ready?.status, "False");
  assert.equal(c.Degraded?.reason, "ImageNotPinned");
  assert.equal(await getJson(cp, ["deployment", "-n", NS, "tagged"]), undefined, "nothing deployed for a refused image");
  await waitFor("a Warning Event naming the image", async () => {
    const list = await getJson(cp, ["events", "-n", NS, "--field-selector=involvedObject.name=tagged,reason=ImageNotPinned"]);
    return list?.items.find((e: { type: string; message: string }) => e.type === "Warning" && e.message.includes(tagged));
  });

  await apply(mcpServer("tagged", NS, { image: DIGEST }));
  const pinned = await waitCondition(cp, NS, "tagged", "Reconciled", "True");
  const item = checklistItem(pinned, "image-pinned-by-digest");
  assert.equal(item?.satisfied, true);
  assert.match(item?.detail ?? "", /imagePolicy RequireDigest: a tag-only image is refused/);
  await waitFor("the Deployment of the pinned server", () => getJson(cp, ["deployment", "-n", NS, "tagged"]));
  const dep = await getJson(cp, ["deployment", "-n", NS, "tagged"]);
  assert.ok(dep?.spec.template.spec.containers.some((x: { image: string }) => x.image === DIGEST));
});

test("spec.imagePolicy: AllowTags is a visible opt-out: deployed, reported in the checklist and optOuts", async () => {
  await apply(mcpServer("loose", NS, { image: "ghcr.io/example/mcp-everything:2.0.0", imagePolicy: "AllowTags" }));
  const live = await waitCondition(cp, NS, "loose", "Reconciled", "True");
  const item = checklistItem(live, "image-pinned-by-digest");
  assert.equal(item?.satisfied, false);
  assert.match(item?.detail ?? "", /tag-only image ghcr\.io\/example\/mcp-everything:2\.0\.0 \(imagePolicy AllowTags/);
  assert.ok((live.status.optOuts as string[]).some((o) => o.includes("tag-only image")));
});

test("API keys from a secret manager: the ExternalSecret is applied, the gateway mounts its Secret, the checklist counts its schedule", async () => {
  await apply(
    mcpServer("vaulted", NS, {
      auth: { apiKeys: { externalSecret: { storeRef: { name: "team-vault" }, key: "mcp/vaulted/api-keys", refreshInterval: "15m" } } },
    }),
  );
  const live = await waitCondition(cp, NS, "vaulted", "Reconciled", "True");
  const es = await getJson(cp, ["externalsecrets.external-secrets.io", "-n", NS, "vaulted-api-keys"]);
  assert.equal(es?.spec.refreshInterval, "15m");
  // (External Secrets' CRD fills in its own defaults, such as conversionStrategy: what we rendered is what counts.)
  assert.equal(es?.spec.dataFrom?.length, 1);
  assert.equal(es?.spec.dataFrom[0]?.extract?.key, "mcp/vaulted/api-keys");
  assert.equal(es?.spec.target.name, "vaulted-api-keys");
  assert.equal(es?.metadata.ownerReferences?.[0]?.name, "vaulted");
  await waitFor("the Deployment of vaulted", () => getJson(cp, ["deployment", "-n", NS, "vaulted"]));
  const dep = await getJson(cp, ["deployment", "-n", NS, "vaulted"]);
  const vol = dep?.spec.template.spec.volumes.find((v: { name: string }) => v.name === "api-keys");
  assert.equal(vol?.secret?.secretName, "vaulted-api-keys");
  const rotation = checklistItem(live, "credential-rotation");
  assert.equal(rotation?.satisfied, true);
  assert.match(
    rotation?.detail ?? "",
    /API keys from the secret manager \(ExternalSecret vaulted-api-keys, SecretStore team-vault\): rotated on its refresh schedule, every 15m/,
  );
  assert.equal(checklistItem(live, "secrets-from-secret-manager")?.satisfied, true);
});
