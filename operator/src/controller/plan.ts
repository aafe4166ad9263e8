// "What should exist" for one McpServer, as pure functions: validation, the multi-tenancy checks,
// the rendered children (with their hash annotation), the children that wait for a missing CRD,
// and the status that describes the outcome. Nothing here does I/O; reconciler.ts makes it so.
import type { ChecklistItem, Condition, ImagePolicy, McpServer, McpServerStatus } from "../api/v1alpha1.ts";
import { validateMcpServer } from "../api/validate.ts";
import { OWNED_KINDS, type RenderResult, renderMcpServer, summarize } from "../render/index.ts";
import { isDigestPinned } from "../render/workload.ts";
import { canonicalJson, withHash } from "./compare.ts";
import { type ConditionInput, mergeConditions } from "./conditions.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { kindId } from "../runtime/kube.ts";
import { ruleSchedule } from "../../../contract/authz/windows.ts";
import { CERTIFICATE_PROBLEMS, certificateCondition, type TlsFacts } from "./tls.ts";
import { criticalDegradation, type VulnerabilityScan, vulnerabilityItem } from "./vulnerabilities.ts";

/**
 * issue 13: which rules are active at `now` and when that changes next, for status.authorization.
 * Undefined when no rule has a schedule (nothing ever changes by itself).
 */
export function authorizationStatus(server: McpServer, nowMs: number): McpServerStatus["authorization"] {
  const rules = server.spec.authorization.rules;
  if (!rules.some((r) => r.schedule !== undefined)) return undefined;
  const s = ruleSchedule(rules, nowMs);
  return {
    activeRules: s.active,
    inactiveRules: s.inactive,
    ...(s.nextChange !== undefined ? { nextChange: new Date(s.nextChange).toISOString().replace(/\.\d{3}Z$/, "Z") } : {}),
  };
}

/** When to reconcile again so the status follows the schedule: 1 s after the next change, at most 6 h ahead (well under the ~24.8 days where Node timers overflow); that reconcile computes it again. */
export function requeueForSchedule(status: McpServerStatus, nowMs: number): number | undefined {
  const next = status.authorization?.nextChange;
  if (!next) return undefined;
  return Math.min(Math.max(Date.parse(next) - nowMs + 1000, 1000), 6 * 3_600_000);
}

export type OwnedKind = (typeof OWNED_KINDS)[number];
export type Requirement = NonNullable<OwnedKind["requires"]>;

/** Which ClusterSecretStores each namespace may use. Key "*" applies to every namespace. */
export type ClusterStorePolicy = ReadonlyMap<string, ReadonlySet<string>>;
/** Which cert-manager ClusterIssuers each namespace may use (same shape and rules as ClusterSecretStores). */
export type ClusterIssuerPolicy = ClusterStorePolicy;

export interface PlanEnv {
  gatewayImage: string;
  clusterDomain?: string;
  /** Kinds whose CRD is served, as "apiVersion/Kind" (built-in kinds are always assumed). */
  servedKinds: ReadonlySet<string>;
  clusterStores: ClusterStorePolicy;
  /** Absent: no ClusterIssuer is allowed anywhere. */
  clusterIssuers?: ClusterIssuerPolicy;
  /** issue 14: the image policy of servers that do not set spec.imagePolicy (chart value defaultImagePolicy). */
  defaultImagePolicy?: ImagePolicy;
}

export type Plan =
  | {
      ok: false;
      reason: "InvalidSpec" | "ClusterSecretStoreNotAllowed" | "ClusterIssuerNotAllowed" | "ImageNotPinned" | "RenderFailed";
      message: string;
      server?: McpServer;
    }
  | {
      ok: true;
      server: McpServer;
      render: RenderResult;
      /** Children to apply, each with the hash annotation. */
      apply: KubeObject[];
      /** Children that cannot be applied because their CRD is not installed. */
      missing: { kind: OwnedKind; name: string }[];
    };

export { kindId };
const OWNED_BY_ID = new Map(OWNED_KINDS.map((k) => [kindId(k.apiVersion, k.kind), k]));

export function ownedKind(obj: { apiVersion: string; kind: string }): OwnedKind | undefined {
  return OWNED_BY_ID.get(kindId(obj.apiVersion, obj.kind));
}

/** True when the namespace may use this ClusterSecretStore. Nothing is allowed unless configured. */
export function clusterStoreAllowed(policy: ClusterStorePolicy, namespace: string, store: string): boolean {
  for (const key of [namespace, "*"]) {
    const stores = policy.get(key);
    if (stores && (stores.has(store) || stores.has("*"))) return true;
  }
  return false;
}

/**
 * Parses the ClusterSecretStore policy: entries "namespace=storeA,storeB" separated by ";" or given
 * as separate values. "*" as namespace means every namespace; "*" as store means every store.
 */
export function parseClusterStorePolicy(values: readonly string[], flag = "--allow-cluster-secret-store", what = "storeA,storeB"): ClusterStorePolicy {
  const out = new Map<string, Set<string>>();
  for (const value of values) {
    for (const entry of value
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean)) {
      const eq = entry.indexOf("=");
      const ns = entry.slice(0, eq).trim();
      const stores = entry
        .slice(eq + 1)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      if (eq <= 0 || stores.length === 0) {
        throw new Error(`${flag}: "${entry}" must look like namespace=${what}`);
      }
      const set = out.get(ns) ?? new Set<string>();
      for (const s of stores) set.add(s);
      out.set(ns, set);
    }
  }
  return out;
}

// Rendering is pure but not free (cdk8s synthesis, ~2 ms): remember recent results and reuse them
// while the inputs are the same (a status write and child events re-run a reconcile right after
// the first). Bounded, least recently used first out: 1,000 cached results would cost ~40 MB.
const renderCache = new Map<string, { input: string; result: RenderResult }>();
const RENDER_CACHE_SIZE = 256;

function renderCached(server: McpServer, env: PlanEnv): RenderResult {
  const key = `${server.metadata.namespace}/${server.metadata.name}`;
  const input = canonicalJson({ spec: server.spec, uid: server.metadata.uid, image: env.gatewayImage, domain: env.clusterDomain });
  const hit = renderCache.get(key);
  renderCache.delete(key); // re-inserted last: Map order is the LRU order
  if (hit && hit.input === input) {
    renderCache.set(key, hit);
    return hit.result;
  }
  const result = renderMcpServer(server, { gatewayImage: env.gatewayImage, ...(env.clusterDomain ? { clusterDomain: env.clusterDomain } : {}) });
  renderCache.set(key, { input, result });
  if (renderCache.size > RENDER_CACHE_SIZE) renderCache.delete(renderCache.keys().next().value as string);
  return result;
}

// The hash annotation of a cached render's object, computed once (hashing is canonical JSON + sha256).
const hashedObjects = new WeakMap<object, KubeObject>();
function hashed(obj: RenderResult["objects"][number], ns: string): KubeObject {
  let h = hashedObjects.get(obj);
  if (!h) {
    h = withHash({ ...obj, metadata: { ...obj.metadata, namespace: ns } }) as KubeObject;
    hashedObjects.set(obj, h);
  }
  return h;
}

export function forgetRender(namespace: string, name: string): void {
  renderCache.delete(`${namespace}/${name}`);
}

export function planServer(raw: KubeObject, env: PlanEnv): Plan {
  // The API server's schema is the first line of defence, but an object stored before the CRD was
  // updated (or with validation off) can still be anything: validate it again, never crash on it.
  const { status: _ignored, ...withoutStatus } = raw;
  const valid = validateMcpServer(withoutStatus);
  if (!valid.ok) return { ok: false, reason: "InvalidSpec", message: `invalid McpServer: ${valid.errors.slice(0, 5).join("; ")}` };
  const server = valid.value;
  const ns = server.metadata.namespace;

  // issue 14: the effective image policy goes into the spec the renderer sees, so the checklist says
  // whether a tag-only image would be refused; under RequireDigest one is refused here, naming it.
  const explicitPolicy = server.spec.imagePolicy !== undefined;
  server.spec.imagePolicy ??= env.defaultImagePolicy ?? "AllowTags";
  if (server.spec.imagePolicy === "RequireDigest" && !isDigestPinned(server.spec.image)) {
    return {
      ok: false,
      reason: "ImageNotPinned",
      server,
      message: `spec.image "${server.spec.image}" is not pinned by digest, and the image policy is RequireDigest (${explicitPolicy ? "spec.imagePolicy" : "the operator's default, chart value defaultImagePolicy"}): use ${server.spec.image.replace(/:[^:/@]*$/, "")}@sha256:<digest>`,
    };
  }

  const refused = server.spec.secrets
    .filter((s) => s.storeRef.kind === "ClusterSecretStore" && !clusterStoreAllowed(env.clusterStores, ns, s.storeRef.name))
    .map((s) => `spec.secrets[${s.name}] uses ClusterSecretStore "${s.storeRef.name}"`);
  const keysStore = server.spec.auth.apiKeys?.externalSecret?.storeRef;
  if (keysStore?.kind === "ClusterSecretStore" && !clusterStoreAllowed(env.clusterStores, ns, keysStore.name))
    refused.push(`spec.auth.apiKeys.externalSecret uses ClusterSecretStore "${keysStore.name}"`);
  if (refused.length) {
    return {
      ok: false,
      reason: "ClusterSecretStoreNotAllowed",
      server,
      message: `${refused.join("; ")}, which the operator does not allow for namespace "${ns}": use a SecretStore in this namespace, or ask the operator's administrator to allow it (--allow-cluster-secret-store=${ns}=STORE)`,
    };
  }

  // A ClusterIssuer signs for any namespace that may name it: allowed per namespace, like ClusterSecretStores.
  const issuerRef = server.spec.tls?.issuerRef;
  if (issuerRef?.kind === "ClusterIssuer" && !clusterStoreAllowed(env.clusterIssuers ?? new Map(), ns, issuerRef.name)) {
    return {
      ok: false,
      reason: "ClusterIssuerNotAllowed",
      server,
      message: `spec.tls.issuerRef uses ClusterIssuer "${issuerRef.name}", which the operator does not allow for namespace "${ns}": use an Issuer in this namespace, or ask the operator's administrator to allow it (--allow-cluster-issuer=${ns}=${issuerRef.name})`,
    };
  }

  let render: RenderResult;
  try {
    render = renderCached(server, env);
  } catch (err) {
    return { ok: false, reason: "RenderFailed", server, message: `could not render: ${err instanceof Error ? err.message : String(err)}` };
  }

  const apply: KubeObject[] = [];
  const missing: { kind: OwnedKind; name: string }[] = [];
  for (const obj of render.objects) {
    const kind = ownedKind(obj);
    // Defence in depth for multi-tenancy: only the namespaced kinds we own, only in the server's
    // own namespace. Anything else would be a renderer bug and is refused, not applied.
    if (!kind || (obj.metadata.namespace ?? ns) !== ns) {
      return {
        ok: false,
        reason: "RenderFailed",
        server,
        message: `renderer produced ${obj.kind} ${obj.metadata.name} outside the kinds and namespace this operator manages`,
      };
    }
    if (kind.requires && !env.servedKinds.has(kindId(kind.apiVersion, kind.kind))) {
      missing.push({ kind, name: obj.metadata.name });
      continue;
    }
    apply.push(hashed(obj, ns));
  }
  return { ok: true, server, render, apply, missing };
}

const WHAT_TO_DO: Record<Requirement, string> = {
  istio: "install Istio (its CRDs) or set spec.mesh.istio.enabled: false",
  "external-secrets": "install External Secrets Operator (external-secrets.io/v1 CRDs) or remove spec.secrets and spec.auth.apiKeys.externalSecret",
  "cert-manager": "install cert-manager (cert-manager.io/v1 CRDs) or use spec.tls.secretRef with a Secret you manage",
};

export function missingCrdMessage(missing: readonly { kind: OwnedKind }[]): string {
  const byReq = new Map<Requirement, Set<string>>();
  for (const m of missing) {
    const req = m.kind.requires as Requirement;
    const set = byReq.get(req) ?? new Set<string>();
    set.add(`${m.kind.plural}.${m.kind.apiVersion.split("/")[0]} (${m.kind.apiVersion} ${m.kind.kind})`);
    byReq.set(req, set);
  }
  return [...byReq.entries()].map(([req, crds]) => `CRD not installed: ${[...crds].join(", ")}; ${WHAT_TO_DO[req]}`).join(". ");
}

interface OwnerRef {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
}

/**
 * Who holds a live object, when it is not this McpServer (`uid`): the controller owner reference
 * ("McpServer other (uid ...)"), or a note that nothing controls it (made by hand or another tool).
 * undefined: it is ours, and the operator may apply over it.
 */
export function foreignHolder(live: KubeObject, uid: string | undefined): string | undefined {
  const refs = (live.metadata.ownerReferences as OwnerRef[] | undefined) ?? [];
  const controller = refs.find((r) => r.controller === true);
  if (controller && uid !== undefined && controller.uid === uid) return undefined;
  if (controller) return `${controller.kind ?? "object"} ${controller.name ?? "?"} (uid ${controller.uid ?? "?"})`;
  const managers = [...new Set(((live.metadata.managedFields as { manager?: string }[] | undefined) ?? []).map((m) => m.manager).filter(Boolean))];
  return `no controller (not created by this McpServer${managers.length ? `; written by ${managers.join(", ")}` : ""})`;
}

/** One child the operator refused to apply because someone else holds an object of that name. */
export interface OwnershipConflict {
  kind: string;
  name: string;
  holder: string;
}

export function conflictMessage(conflicts: readonly OwnershipConflict[]): string {
  const what = conflicts.map((c) => `${c.kind} ${c.name} is held by ${c.holder}`).join("; ");
  return `not applied: ${what}. The operator never writes over an object it does not own for this McpServer: delete or rename that object, or rename this server`;
}

/** What happened when the plan was carried out (filled by the reconciler). */
export interface Outcome {
  /** Errors of individual applies/deletes, already phrased for a user. */
  errors: string[];
  /** Children held by another owner: nothing was applied. */
  conflicts?: OwnershipConflict[];
  /** The live Deployment, for Ready. */
  deployment?: KubeObject;
  /** spec.tls.issuerRef: the issuer and the live Certificate (absent while cert-manager's CRDs are missing). */
  tls?: TlsFacts;
  /** Trivy Operator's report for the server's image (issue 14); undefined: not looked at (the checklist then has no such item). */
  vulnerabilities?: VulnerabilityScan;
}

interface DeploymentLike {
  spec?: { replicas?: number };
  status?: { availableReplicas?: number; conditions?: { type: string; status: string; message?: string }[] };
}

function readyCondition(plan: Plan, outcome: Outcome, generation: number | undefined, certificate?: ConditionInput): ConditionInput {
  const base = { type: "Ready", ...(generation !== undefined ? { observedGeneration: generation } : {}) };
  if (!plan.ok) return { ...base, status: "False", reason: plan.reason, message: "not deployed: see the Reconciled condition" };
  // The gateway's pods cannot start before the Secret exists: say why rather than "pods unavailable".
  if (certificate && certificate.status !== "True")
    return { ...base, status: "False", reason: "CertificateNotReady", message: `${certificate.reason}: see the CertificateReady condition` };
  const d = outcome.deployment as DeploymentLike | undefined;
  if (!d) return { ...base, status: "False", reason: "DeploymentMissing", message: "the Deployment does not exist yet" };
  const available = d.status?.conditions?.find((c) => c.type === "Available");
  const want = d.spec?.replicas ?? 1;
  const have = d.status?.availableReplicas ?? 0;
  if (available?.status === "True") return { ...base, status: "True", reason: "DeploymentAvailable", message: `${have}/${want} pods available` };
  return {
    ...base,
    status: "False",
    reason: "DeploymentUnavailable",
    message: `${have}/${want} pods available${available?.message ? `: ${available.message}` : ""}`,
  };
}

/** The status the McpServer should have; lastTransitionTime carried over from `previous` when unchanged. */
export function desiredStatus(raw: KubeObject, plan: Plan, outcome: Outcome, previous: McpServerStatus | undefined, now: string): McpServerStatus {
  const generation = typeof raw.metadata.generation === "number" ? raw.metadata.generation : undefined;
  const og = generation !== undefined ? { observedGeneration: generation } : {};
  const conditions: ConditionInput[] = [];
  if (!plan.ok) {
    conditions.push({ type: "Reconciled", status: "False", reason: plan.reason, message: plan.message, ...og });
    conditions.push(readyCondition(plan, outcome, generation));
    conditions.push({ type: "Degraded", status: "True", reason: plan.reason, message: plan.message, ...og });
  } else if (outcome.conflicts?.length) {
    const message = conflictMessage(outcome.conflicts);
    conditions.push({ type: "Reconciled", status: "False", reason: "OwnershipConflict", message, ...og });
    conditions.push(readyCondition(plan, outcome, generation));
    conditions.push({ type: "Degraded", status: "True", reason: "OwnershipConflict", message, ...og });
  } else {
    const errs = outcome.errors;
    const certificate = outcome.tls ? certificateCondition(plan.server, outcome.tls, generation) : undefined;
    conditions.push(
      errs.length
        ? { type: "Reconciled", status: "False", reason: "ApplyFailed", message: errs.slice(0, 3).join("; "), ...og }
        : {
            type: "Reconciled",
            status: "True",
            reason: plan.missing.length ? "PartiallyApplied" : "Applied",
            message: plan.missing.length
              ? `${plan.apply.length} objects applied, ${plan.missing.length} waiting for CRDs`
              : `${plan.apply.length} objects applied`,
            ...og,
          },
    );
    conditions.push(readyCondition(plan, outcome, generation, certificate));
    if (certificate) conditions.push(certificate);
    if (errs.length) conditions.push({ type: "Degraded", status: "True", reason: "ApplyFailed", message: errs.slice(0, 3).join("; "), ...og });
    else if (plan.missing.length) conditions.push({ type: "Degraded", status: "True", reason: "MissingCRD", message: missingCrdMessage(plan.missing), ...og });
    else if (certificate && CERTIFICATE_PROBLEMS.has(certificate.reason))
      conditions.push({ type: "Degraded", status: "True", reason: certificate.reason, message: certificate.message, ...og });
    else {
      const critical = outcome.vulnerabilities ? criticalDegradation(plan.server, outcome.vulnerabilities) : undefined;
      if (critical) conditions.push({ type: "Degraded", status: "True", ...critical, ...og });
      else conditions.push({ type: "Degraded", status: "False", reason: "AsExpected", message: plan.render.warnings.join("; ") || "no problems found", ...og });
    }
  }
  const status: McpServerStatus = {
    ...og,
    conditions: mergeConditions(previous?.conditions as Condition[] | undefined, conditions, now),
  };
  if (plan.ok) {
    status.url = plan.render.url;
    status.checklist = plan.render.checklist as ChecklistItem[];
    // Live data the renderer cannot know: the scanner's report for the image, when the operator looked.
    if (outcome.vulnerabilities) {
      status.checklist = [...status.checklist, vulnerabilityItem(plan.server, outcome.vulnerabilities)];
      if (outcome.vulnerabilities.finding) status.vulnerabilities = outcome.vulnerabilities.finding;
    }
    status.optOuts = plan.render.optOuts;
    status.rateLimitMode = plan.render.rateLimitMode;
    status.protocolVersions = plan.render.protocolVersions;
    status.auth = plan.render.summary.auth;
    status.mtls = plan.render.summary.mtls;
    const authz = authorizationStatus(plan.server, Date.parse(now));
    if (authz) status.authorization = authz;
  } else if (plan.server) {
    // Not deployed, but the printer columns can still say what was asked for.
    const summary = summarize(plan.server);
    status.auth = summary.auth;
    status.mtls = summary.mtls;
  }
  return status;
}

/** Status equality as the API server would store it (key order and undefined fields ignored). */
export function statusEqual(a: McpServerStatus | undefined, b: McpServerStatus | undefined): boolean {
  return canonicalJson(normalizeStatus(a)) === canonicalJson(normalizeStatus(b));
}

function normalizeStatus(s: McpServerStatus | undefined): unknown {
  if (!s) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && !(Array.isArray(v) && v.length === 0)) out[k] = v;
  return out;
}
