// issue 14 in the controller's pure parts: what the issuer lookup and cert-manager's Certificate status
// mean for the McpServer's conditions (CertificateReady with a specific reason; Degraded for the problems
// a user must act on; Ready says why the pods cannot start), ClusterIssuers allowed per namespace, and
// MissingCRD when cert-manager is not installed. test/tls shows the same against the real cert-manager.
import assert from "node:assert/strict";
import { test } from "node:test";
import { desiredStatus, type PlanEnv, parseClusterStorePolicy, planServer } from "../../operator/src/controller/plan.ts";
import { McpServerReconciler } from "../../operator/src/controller/reconciler.ts";
import type { Informer } from "../../operator/src/runtime/informer.ts";
import { ApiError, type KubeClient, type ResourceRef } from "../../operator/src/runtime/kube.ts";
import type { ReconcileContext } from "../../operator/src/runtime/manager.ts";
import type { TlsFacts } from "../../operator/src/controller/tls.ts";
import type { KubeObject } from "../../contract/kube-object.ts";
import { conditionsOf, mcpServer } from "./helpers.ts";

const CERT_KIND = "cert-manager.io/v1/Certificate";
const env: PlanEnv = { gatewayImage: "gw:1", servedKinds: new Set([CERT_KIND]), clusterStores: new Map() };
const NOW = "2026-11-30T12:00:00Z";
const server = (issuerRef: Record<string, unknown>) => {
  const s = mcpServer("files", "team", { tls: { issuerRef } }) as KubeObject;
  s.metadata.uid = "uid-1";
  s.metadata.generation = 3;
  return s;
};
const readyIssuer: KubeObject = {
  apiVersion: "cert-manager.io/v1",
  kind: "Issuer",
  metadata: { name: "ca" },
  status: { conditions: [{ type: "Ready", status: "True", reason: "KeyPairVerified" }] },
};
const certificate = (status: Record<string, unknown>): KubeObject => ({
  apiVersion: "cert-manager.io/v1",
  kind: "Certificate",
  metadata: { name: "files" },
  status,
});

function statusWith(raw: KubeObject, tls: TlsFacts | undefined, e: PlanEnv = env) {
  const plan = planServer(raw, e);
  return { plan, c: conditionsOf({ status: desiredStatus(raw, plan, { errors: [], ...(tls ? { tls } : {}) }, undefined, NOW) }) };
}

test("an Issuer that does not exist: CertificateReady=False IssuerNotFound, Degraded with the same reason, Ready says the certificate", () => {
  const { c } = statusWith(server({ name: "nowhere" }), { issuer: { state: "missing" } });
  assert.equal(c.CertificateReady?.status, "False");
  assert.equal(c.CertificateReady?.reason, "IssuerNotFound");
  assert.match(
    c.CertificateReady?.message ?? "",
    /cert-manager Issuer "nowhere" in namespace "team" does not exist: create it, or point spec\.tls\.issuerRef at an existing one/,
  );
  assert.equal(c.CertificateReady?.observedGeneration, 3);
  assert.deepEqual([c.Degraded?.status, c.Degraded?.reason], ["True", "IssuerNotFound"]);
  assert.deepEqual([c.Ready?.status, c.Ready?.reason], ["False", "CertificateNotReady"]);
  assert.equal(c.Reconciled?.status, "True", "the rest is applied: the Certificate waits for its issuer");
});

test("each state of the issuer and the Certificate has its own reason; only problems are Degraded", () => {
  const raw = server({ name: "ca" });
  const cases: [TlsFacts, string, string, boolean][] = [
    [{ issuer: { state: "unknown", error: "forbidden" } }, "IssuerUnknown", 'could not read cert-manager Issuer "ca" in namespace "team": forbidden', true],
    [
      {
        issuer: {
          state: "found",
          object: {
            ...readyIssuer,
            status: { conditions: [{ type: "Ready", status: "False", reason: "ErrGetKeyPair", message: 'secret "root-ca" not found' }] },
          },
        },
      },
      "IssuerNotReady",
      'is not Ready (ErrGetKeyPair: secret "root-ca" not found)',
      true,
    ],
    [{ issuer: { state: "found", object: readyIssuer } }, "CertificatePending", "waiting for cert-manager to pick up Certificate (not created yet)", false],
    [
      {
        issuer: { state: "found", object: readyIssuer },
        certificate: certificate({
          conditions: [
            { type: "Ready", status: "False", reason: "DoesNotExist" },
            { type: "Issuing", status: "True", message: "Issuing certificate as Secret does not exist" },
          ],
        }),
      },
      "Issuing",
      "cert-manager is issuing Certificate files: Issuing certificate as Secret does not exist",
      false,
    ],
    [
      {
        issuer: { state: "found", object: readyIssuer },
        certificate: certificate({
          lastFailureTime: NOW,
          conditions: [
            { type: "Ready", status: "False", reason: "DoesNotExist" },
            {
              type: "Issuing",
              status: "False",
              reason: "Failed",
              message: "The certificate request has failed to complete and will be retried: x509: name constraints",
            },
          ],
        }),
      },
      "CertificateFailed",
      "cert-manager could not issue Certificate files: The certificate request has failed to complete",
      true,
    ],
    [
      {
        issuer: { state: "found", object: readyIssuer },
        certificate: certificate({
          notAfter: "2027-02-28T12:00:00Z",
          renewalTime: "2027-01-29T12:00:00Z",
          conditions: [{ type: "Ready", status: "True", reason: "Ready" }],
        }),
      },
      "Issued",
      'Certificate files issued by cert-manager Issuer "ca" in namespace "team", valid until 2027-02-28T12:00:00Z, renewal at 2027-01-29T12:00:00Z',
      false,
    ],
  ];
  for (const [facts, reason, message, degraded] of cases) {
    const { c } = statusWith(raw, facts);
    assert.equal(c.CertificateReady?.reason, reason);
    assert.equal(c.CertificateReady?.status, reason === "Issued" ? "True" : "False");
    assert.ok(c.CertificateReady?.message.includes(message), `${reason}: ${c.CertificateReady?.message}`);
    assert.equal(c.Degraded?.status, degraded ? "True" : "False", `${reason}: Degraded ${c.Degraded?.reason}`);
    if (reason !== "Issued") assert.equal(c.Ready?.reason, "CertificateNotReady");
    else assert.notEqual(c.Ready?.reason, "CertificateNotReady", "an issued certificate leaves Ready to the Deployment");
  }
});

test("ClusterIssuers only where the operator allows them, like ClusterSecretStores", () => {
  const raw = server({ name: "corp-ca", kind: "ClusterIssuer" });
  const refused = planServer(raw, env);
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.reason, "ClusterIssuerNotAllowed");
  assert.match(
    !refused.ok ? refused.message : "",
    /ClusterIssuer "corp-ca", which the operator does not allow for namespace "team".*--allow-cluster-issuer=team=corp-ca/,
  );
  for (const policy of ["team=corp-ca", "*=corp-ca", "team=*"]) {
    assert.equal(planServer(raw, { ...env, clusterIssuers: parseClusterStorePolicy([policy], "--allow-cluster-issuer") }).ok, true, policy);
  }
  assert.equal(planServer(raw, { ...env, clusterIssuers: parseClusterStorePolicy(["other=corp-ca"], "--allow-cluster-issuer") }).ok, false);
  assert.throws(
    () => parseClusterStorePolicy(["corp-ca"], "--allow-cluster-issuer", "issuerA,issuerB"),
    /--allow-cluster-issuer: "corp-ca" must look like namespace=issuerA,issuerB/,
  );
});

test("without cert-manager's CRDs the Certificate waits: Degraded MissingCRD says to install cert-manager or use secretRef", () => {
  const { plan, c } = statusWith(server({ name: "ca" }), undefined, { ...env, servedKinds: new Set() });
  assert.ok(plan.ok && plan.missing.some((m) => m.kind.kind === "Certificate"));
  assert.equal(c.Degraded?.reason, "MissingCRD");
  assert.match(c.Degraded?.message ?? "", /certificates\.cert-manager\.io.*install cert-manager \(cert-manager\.io\/v1 CRDs\) or use spec\.tls\.secretRef/);
  assert.equal(c.CertificateReady, undefined, "no facts to report without the CRDs");
});

test("Issuers are not watched: while the issuer is missing the reconcile asks to run again in 30 s; once it is Ready it does not", async () => {
  const raw = server({ name: "ca" });
  let issuer: KubeObject | undefined;
  const lookups: string[] = [];
  const client = {
    get: async (ref: ResourceRef) => {
      if (ref.plural === "issuers") {
        lookups.push(`${ref.namespace}/${ref.name}`);
        if (issuer) return issuer;
      }
      throw new ApiError(404, "NotFound", "not found");
    },
    apply: async (_ref: ResourceRef, body: KubeObject) => body,
    create: async (_ref: ResourceRef, body: KubeObject) => body,
  };
  const primary = { get: () => raw, store: () => {} };
  const ctx: ReconcileContext = {
    client: client as unknown as KubeClient,
    servedKinds: new Set([CERT_KIND]),
    primaryInformer: () => primary as unknown as Informer,
    childInformer: () => undefined,
    countWrite: () => {},
  };
  const reconciler = new McpServerReconciler(
    ctx,
    { gatewayImage: "gw:1", clusterStores: new Map(), conflictRecheckMs: 15_000, identity: "test", log: () => {} },
    () => Date.parse(NOW),
  );
  assert.deepEqual(await reconciler.reconcile("team/files"), { requeueAfterMs: 30_000 });
  issuer = readyIssuer;
  assert.equal(await reconciler.reconcile("team/files"), undefined, "the Certificate's own watch brings the rest");
  assert.deepEqual(lookups, ["team/ca", "team/ca"]);
});
