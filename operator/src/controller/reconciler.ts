// "Make it so" for one McpServer: plan (plan.ts, pure), then server-side apply of the children that
// differ from the plan, prune of the children no longer planned, one status write when the status
// changed, and an Event per condition transition. The machinery around it (caches, queue, leader
// election, endpoints) is in ../runtime/; the wiring of the two is operator.ts.
import { API_VERSION, type ImagePolicy, KIND, type McpServerStatus, PLURAL } from "../api/v1alpha1.ts";
import { OWNED_KINDS } from "../render/index.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { ApiError, kindId, resourcePath } from "../runtime/kube.ts";
import { errorText, type Logger, type ReconcileContext, type Reconciler } from "../runtime/manager.ts";
import type { WorkResult } from "../runtime/queue.ts";
import { applyReason, differences, HASH_ANNOTATION, VERIFIED, verifiedMarker } from "./compare.ts";
import { transitions } from "./conditions.ts";
import { ISSUER_RECHECK_MS, type TlsFacts } from "./tls.ts";
import { findingFor, VULNERABILITY_REPORT, type VulnerabilityScan } from "./vulnerabilities.ts";
import {
  type ClusterIssuerPolicy,
  type ClusterStorePolicy,
  desiredStatus,
  foreignHolder,
  type OwnedKind,
  ownedKind,
  type OwnershipConflict,
  type Plan,
  planServer,
  requeueForSchedule,
  statusEqual,
} from "./plan.ts";

export const FIELD_MANAGER = "mcp-bastion";
export const STATUS_FIELD_MANAGER = "mcp-bastion-status";
export const SERVER_LABEL = "mcp.bastion.dev/server";

export interface ReconcilerSettings {
  gatewayImage: string;
  clusterDomain?: string;
  clusterStores: ClusterStorePolicy;
  /** Which cert-manager ClusterIssuers each namespace may use (none when absent). */
  clusterIssuers?: ClusterIssuerPolicy;
  /** issue 14: image policy of servers that do not set spec.imagePolicy. */
  defaultImagePolicy?: ImagePolicy;
  /** How often a server blocked by an ownership conflict checks again whether the object is gone. */
  conflictRecheckMs: number;
  /** Who sends the Events (reportingInstance). */
  identity: string;
  log: Logger;
}

type ReadyPlan = Extract<Plan, { ok: true }>;

/** RFC 3339 to the second, as Kubernetes writes times. */
const timestamp = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

const ownedKindOf = (obj: KubeObject) => ownedKind(obj) as OwnedKind;

export class McpServerReconciler implements Reconciler {
  /** Generations whose refused status write was already told as an Event. */
  private readonly statusRefused = new Set<string>();

  private readonly ctx: ReconcileContext;
  private readonly settings: ReconcilerSettings;
  /** The clock (ms since the epoch): condition times, Event times and schedule requeues read it. */
  private readonly now: () => number;

  constructor(ctx: ReconcileContext, settings: ReconcilerSettings, now: () => number = Date.now) {
    this.ctx = ctx;
    this.settings = settings;
    this.now = now;
  }

  /** One reconcile of one McpServer. Throws (and is retried with backoff) when a write failed. */
  async reconcile(key: string): Promise<WorkResult | undefined> {
    const slash = key.indexOf("/");
    const ns = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const raw = this.ctx.primaryInformer(ns)?.get(ns, name);
    if (!raw || raw.metadata.deletionTimestamp) return undefined; // children go with it (ownerReferences)

    const { gatewayImage, clusterDomain, clusterStores, clusterIssuers, defaultImagePolicy } = this.settings;
    const plan = planServer(raw, {
      gatewayImage,
      ...(clusterDomain ? { clusterDomain } : {}),
      servedKinds: this.ctx.servedKinds,
      clusterStores,
      ...(clusterIssuers ? { clusterIssuers } : {}),
      ...(defaultImagePolicy ? { defaultImagePolicy } : {}),
    });
    const { errors, conflicts } = plan.ok ? await this.applyChildren(raw, plan) : { errors: [], conflicts: [] };
    const deployment = plan.ok ? plan.apply.find((o) => o.kind === "Deployment") : undefined;
    const liveDeployment = deployment ? this.ctx.childInformer(deployment.apiVersion, "Deployment", ns)?.get(ns, deployment.metadata.name) : undefined;
    const tls = plan.ok && !conflicts.length ? await this.tlsFacts(plan) : undefined;
    const previous = raw.status as McpServerStatus | undefined;
    const vulnerabilities = plan.ok ? this.vulnerabilityScan(key, plan.server.spec.image) : undefined;
    const status = desiredStatus(
      raw,
      plan,
      {
        errors,
        conflicts,
        ...(liveDeployment ? { deployment: liveDeployment } : {}),
        ...(tls ? { tls } : {}),
        ...(vulnerabilities ? { vulnerabilities } : {}),
      },
      previous,
      timestamp(this.now()),
    );
    if (!statusEqual(status, previous)) await this.writeStatus(raw, plan, status, previous);
    if (errors.length) throw new Error(errors.join("; "));
    // issue 13: come back when a rule's schedule flips (a window opens or closes, an elevation expires),
    // so status.authorization follows the clock without anyone editing the object.
    const scheduled = requeueForSchedule(status, this.now());
    // Issuers are not watched: while the issuer is missing or not Ready, look again on a steady interval.
    const issuerProblem = status.conditions?.some((c) => c.type === "CertificateReady" && c.reason.startsWith("Issuer"));
    const after = issuerProblem ? Math.min(ISSUER_RECHECK_MS, scheduled ?? ISSUER_RECHECK_MS) : scheduled;
    if (conflicts.length) {
      // Not a failure to back off from: someone else's object, usually outside the watched label
      // (its removal raises no event here), so it is looked at again on a steady interval.
      this.settings.log("warn", "not applied: a child's name is held by another owner", { server: key, conflicts });
      return { requeueAfterMs: Math.min(this.settings.conflictRecheckMs, after ?? Number.POSITIVE_INFINITY) };
    }
    return after === undefined ? undefined : { requeueAfterMs: after };
  }

  /** issue 14: Trivy Operator's reports for this server (from the watch's index), when its CRD is served. */
  private vulnerabilityScan(key: string, image: string): VulnerabilityScan {
    const { apiVersion, kind } = VULNERABILITY_REPORT;
    if (!this.ctx.servedKinds.has(kindId(apiVersion, kind))) return { served: false };
    const finding = findingFor(image, this.ctx.related?.(apiVersion, kind, key) ?? []);
    return finding ? { served: true, finding } : { served: true };
  }

  /**
   * spec.tls.issuerRef: does the issuer exist (one GET: the operator may read Issuers and ClusterIssuers
   * but does not watch them), and the live Certificate from the child cache. Nothing while cert-manager's
   * CRDs are absent (Degraded says MissingCRD then).
   */
  private async tlsFacts(plan: ReadyPlan): Promise<TlsFacts | undefined> {
    const ref = plan.server.spec.tls?.issuerRef;
    if (!ref || plan.missing.some((m) => m.kind.kind === "Certificate")) return undefined;
    const ns = plan.server.metadata.namespace;
    const cert = plan.apply.find((o) => o.kind === "Certificate");
    const certificate = cert ? this.ctx.childInformer(cert.apiVersion, cert.kind, ns)?.get(ns, cert.metadata.name) : undefined;
    const where = {
      apiVersion: "cert-manager.io/v1",
      name: ref.name,
      ...(ref.kind === "Issuer" ? { plural: "issuers", namespace: ns } : { plural: "clusterissuers" }),
    };
    try {
      const object = await this.ctx.client.get(where);
      return { issuer: { state: "found", object }, ...(certificate ? { certificate } : {}) };
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return { issuer: { state: "missing" }, ...(certificate ? { certificate } : {}) };
      return { issuer: { state: "unknown", error: errorText(err) }, ...(certificate ? { certificate } : {}) };
    }
  }

  /**
   * Applies the children that differ from the plan and prunes the ones no longer planned. Nothing is
   * applied while any child is held by someone else: half a deployment could mount a Secret or use a
   * ConfigMap the other owner controls.
   */
  private async applyChildren(raw: KubeObject, plan: ReadyPlan): Promise<{ errors: string[]; conflicts: OwnershipConflict[] }> {
    const ns = raw.metadata.namespace as string;
    const held = await this.ownershipConflicts(raw, plan);
    if (held.conflicts.length || held.errors.length) return held;
    const errors: string[] = [];
    await Promise.all(
      plan.apply.map(async (obj) => {
        const inf = this.ctx.childInformer(obj.apiVersion, obj.kind, ns);
        const current = inf?.get(ns, obj.metadata.name);
        const why = applyReason(obj, current);
        const hash = obj.metadata.annotations?.[HASH_ANNOTATION] as string;
        if (!why) {
          if (current && !(VERIFIED in current)) inf?.replaceSameVersion(verifiedMarker(current, hash, [SERVER_LABEL]));
          return;
        }
        if (why === "drifted")
          this.settings.log("info", "reverting drift", {
            server: `${ns}/${raw.metadata.name}`,
            kind: obj.kind,
            name: obj.metadata.name,
            fields: differences(obj, current).slice(0, 5),
          });
        try {
          const live = await this.ctx.client.apply(
            { apiVersion: obj.apiVersion, plural: ownedKindOf(obj).plural, namespace: ns, name: obj.metadata.name },
            obj,
            FIELD_MANAGER,
          );
          this.ctx.countWrite("apply", obj.kind);
          // The answer is the object with our fields applied (force): remember only that.
          inf?.store(verifiedMarker(live, hash, [SERVER_LABEL]));
          this.settings.log("debug", "applied", { server: `${ns}/${raw.metadata.name}`, kind: obj.kind, name: obj.metadata.name, why });
        } catch (err) {
          errors.push(`${obj.kind} ${obj.metadata.name}: ${errorText(err)}`);
        }
      }),
    );
    errors.push(...(await this.pruneChildren(raw, plan)));
    return { errors, conflicts: [] };
  }

  /** Deletes this server's children (by label and controller ownerReference) that are no longer planned. */
  private async pruneChildren(raw: KubeObject, plan: ReadyPlan): Promise<string[]> {
    const ns = raw.metadata.namespace as string;
    const wanted = new Set(plan.apply.map((o) => `${kindId(o.apiVersion, o.kind)}/${o.metadata.name}`));
    const uid = raw.metadata.uid;
    const errors: string[] = [];
    for (const kind of OWNED_KINDS) {
      const inf = this.ctx.childInformer(kind.apiVersion, kind.kind, ns);
      if (!inf) continue;
      // The owner's children from the informer's owner index, not a scan of every server's children.
      for (const child of inf.byIndex(`${ns}/${raw.metadata.name}`)) {
        if (child.metadata.namespace !== ns || child.metadata.labels?.[SERVER_LABEL] !== raw.metadata.name) continue;
        if (wanted.has(`${kindId(kind.apiVersion, kind.kind)}/${child.metadata.name}`)) continue;
        const owned = (child.metadata.ownerReferences as { uid?: string; controller?: boolean }[] | undefined)?.some((r) => r.uid === uid && r.controller);
        if (!owned || child.metadata.deletionTimestamp) continue;
        try {
          await this.ctx.client.request(
            "DELETE",
            resourcePath({ apiVersion: kind.apiVersion, plural: kind.plural, namespace: ns, name: child.metadata.name }),
            {
              body: { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid: child.metadata.uid }, propagationPolicy: "Background" },
            },
          );
          this.ctx.countWrite("delete", kind.kind);
          inf.forget(child);
          this.settings.log("info", "pruned", { server: `${ns}/${raw.metadata.name}`, kind: kind.kind, name: child.metadata.name });
        } catch (err) {
          if (err instanceof ApiError && (err.code === 404 || err.code === 409)) inf.forget(child);
          else errors.push(`delete ${kind.kind} ${child.metadata.name}: ${errorText(err)}`);
        }
      }
    }
    return errors;
  }

  /**
   * Children that exist but are held by someone other than this McpServer. The cache holds only
   * objects labelled as managed by mcp-bastion; a child it does not hold is looked up once before
   * it is created, so an object someone else made under that name is never written over.
   */
  private async ownershipConflicts(raw: KubeObject, plan: ReadyPlan): Promise<{ conflicts: OwnershipConflict[]; errors: string[] }> {
    const ns = raw.metadata.namespace as string;
    const conflicts: OwnershipConflict[] = [];
    const errors: string[] = [];
    await Promise.all(
      plan.apply.map(async (obj) => {
        let live = this.ctx.childInformer(obj.apiVersion, obj.kind, ns)?.get(ns, obj.metadata.name);
        if (!live) {
          try {
            live = await this.ctx.client.get({ apiVersion: obj.apiVersion, plural: ownedKindOf(obj).plural, namespace: ns, name: obj.metadata.name });
          } catch (err) {
            if (err instanceof ApiError && err.code === 404) return;
            errors.push(`${obj.kind} ${obj.metadata.name}: ${errorText(err)}`);
            return;
          }
        }
        if (!live) return;
        const holder = foreignHolder(live, raw.metadata.uid);
        if (holder) conflicts.push({ kind: obj.kind, name: obj.metadata.name, holder });
      }),
    );
    return { conflicts: conflicts.sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`)), errors };
  }

  /** Writes the status subresource and sends an Event for each condition transition worth one. */
  private async writeStatus(raw: KubeObject, plan: Plan, status: McpServerStatus, previous: McpServerStatus | undefined): Promise<void> {
    const ns = raw.metadata.namespace as string;
    const name = raw.metadata.name;
    let updated: KubeObject;
    try {
      updated = await this.ctx.client.apply(
        { apiVersion: API_VERSION, plural: PLURAL, namespace: ns, name, subresource: "status" },
        { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns }, status },
        STATUS_FIELD_MANAGER,
      );
    } catch (err) {
      // An object stored before the CRD was tightened can break the schema so badly that the API
      // server refuses every status write to it (it cannot type the live object, or a root CEL
      // rule fails). An Event still reaches `kubectl describe`: send the Degraded reason, once
      // per generation (the write is retried with backoff).
      if (!plan.ok) await this.statusRefusedEvent(raw, status);
      throw err;
    }
    this.ctx.countWrite("patch", `${KIND}/status`);
    this.ctx.primaryInformer(ns)?.store(updated);
    for (const t of transitions(previous?.conditions, status.conditions ?? [])) {
      // A new server starts with Ready=False and Degraded=False: only news are worth an Event.
      const first = !previous?.conditions?.some((c) => c.type === t.type);
      if (first && t.type !== "Reconciled" && !(t.type === "Degraded" && t.status === "True")) continue;
      await this.event(raw, t);
    }
  }

  private async statusRefusedEvent(raw: KubeObject, status: McpServerStatus): Promise<void> {
    const key = `${raw.metadata.uid}/${raw.metadata.generation}`;
    const degraded = status.conditions?.find((c) => c.type === "Degraded");
    if (!degraded || this.statusRefused.has(key)) return;
    if (this.statusRefused.size > 10_000) this.statusRefused.clear();
    this.statusRefused.add(key);
    await this.event(raw, degraded);
  }

  private async event(raw: KubeObject, t: { type: string; status: string; reason: string; message: string }): Promise<void> {
    const ns = raw.metadata.namespace as string;
    const warning = (t.type === "Degraded" && t.status === "True") || (t.type === "Reconciled" && t.status === "False");
    const nowMs = this.now();
    const now = timestamp(nowMs);
    const body = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${raw.metadata.name}.${nowMs.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`, namespace: ns },
      involvedObject: {
        apiVersion: API_VERSION,
        kind: KIND,
        name: raw.metadata.name,
        namespace: ns,
        uid: raw.metadata.uid,
        resourceVersion: raw.metadata.resourceVersion,
      },
      reason: t.reason,
      message: `${t.type}=${t.status}: ${t.message}`.slice(0, 1024),
      type: warning ? "Warning" : "Normal",
      source: { component: "mcp-bastion-operator" },
      reportingComponent: "mcp.bastion.dev/operator",
      reportingInstance: this.settings.identity.slice(0, 128),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.ctx.client.create({ apiVersion: "v1", plural: "events", namespace: ns }, body);
      this.ctx.countWrite("create", "Event");
    } catch (err) {
      this.settings.log("debug", "could not record event", { error: errorText(err) });
    }
  }
}
