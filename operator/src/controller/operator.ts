// The controller: informers on McpServers and every kind they own feed a work queue keyed by
// namespace/name; a reconcile plans (plan.ts, pure) and then makes it so here: server-side apply of
// children that differ from the plan, prune of children no longer planned, one status write when
// the status changed, and an Event per condition transition.
import { hostname } from "node:os";
import type { Server } from "node:http";
import { API_VERSION, KIND, PLURAL, type McpServerStatus } from "../api/v1alpha1.ts";
import { OWNED_KINDS } from "../render/index.ts";
import { applyReason, differences, HASH_ANNOTATION, VERIFIED, verifiedMarker } from "./compare.ts";
import { transitions } from "./conditions.ts";
import { Informer, objectKey } from "../runtime/informer.ts";
import { ApiError, KubeClient, type KubeObject } from "../runtime/kube.ts";
import { LeaderElector, type LeaderOptions } from "../runtime/leader.ts";
import { OperatorMetrics, serveEndpoints } from "../runtime/metrics.ts";
import {
  type ClusterStorePolicy,
  desiredStatus,
  forgetRender,
  foreignHolder,
  kindId,
  type OwnedKind,
  type OwnershipConflict,
  type Plan,
  planServer,
  requeueForSchedule,
  statusEqual,
} from "./plan.ts";
import { WorkQueue } from "../runtime/queue.ts";

export const FIELD_MANAGER = "mcp-bastion";
export const STATUS_FIELD_MANAGER = "mcp-bastion-status";
const SERVER_LABEL = "mcp.bastion.dev/server";
const MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mcp-bastion";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface OperatorConfig {
  /** Namespaces to watch; empty: all namespaces. */
  namespaces: string[];
  gatewayImage: string;
  clusterDomain?: string;
  clusterStores: ClusterStorePolicy;
  /** McpServers reconciled at the same time. */
  concurrency: number;
  leaderElection: { enabled: boolean } & Omit<LeaderOptions, "log">;
  /** host:port of /metrics (port 0: any free port); undefined: off. */
  metrics?: { host: string; port: number };
  /** host:port of /healthz and /readyz; undefined: off (may equal metrics). */
  health?: { host: string; port: number };
  /** Every McpServer is reconciled again this often, even without events. */
  resyncIntervalMs: number;
  /** How often discovery checks whether the Istio / External Secrets CRDs appeared or went. */
  discoveryIntervalMs: number;
  /** How often a server blocked by an ownership conflict checks again whether the object is gone. */
  conflictRecheckMs: number;
  log: Logger;
  /** kubeconfig file; default: KUBECONFIG, ~/.kube/config, or in-cluster. */
  kubeconfigPath?: string;
  userAgent?: string;
}

export function defaultConfig(overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  const identity = `${process.env.POD_NAME ?? hostname()}-${process.pid}`;
  return {
    namespaces: [],
    gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0",
    clusterStores: new Map(),
    concurrency: 16,
    leaderElection: {
      enabled: true,
      namespace: process.env.POD_NAMESPACE ?? "default",
      name: "mcp-bastion-operator",
      identity,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    },
    resyncIntervalMs: 10 * 60_000,
    discoveryIntervalMs: 30_000,
    conflictRecheckMs: 15_000,
    log: () => {},
    ...overrides,
  };
}

/** Drops what the controller never reads, so 1,000 servers' children fit in little memory. */
function slim(obj: KubeObject): KubeObject {
  const { managedFields: _m, ...metadata } = obj.metadata;
  if (obj.kind === "Deployment" || obj.kind === KIND) return { ...obj, metadata } as KubeObject;
  const { status: _s, ...rest } = obj;
  return { ...rest, metadata } as KubeObject;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Operator {
  readonly config: OperatorConfig;
  readonly metrics = new OperatorMetrics();
  client!: KubeClient;
  private readonly serverInformers = new Map<string, Informer>(); // namespace ("" = all) -> informer
  private readonly childInformers = new Map<string, Map<string, Informer>>(); // kindId -> namespace -> informer
  private servedKinds = new Set<string>();
  private queue: WorkQueue;
  private elector: LeaderElector | undefined;
  private httpServers: Server[] = [];
  private timers: NodeJS.Timeout[] = [];
  private running = false;
  private stopping = false;
  private synced = false;
  /** Writes sent (apply, delete, status, event); Lease renewals are not counted. */
  writes = 0;
  /** Reconciles finished. */
  reconcileCount = 0;
  /** Resolves when the operator ends: "lost" leadership, or "stopped". */
  done: Promise<"lost" | "stopped">;
  private resolveDone!: (v: "lost" | "stopped") => void;

  constructor(config: OperatorConfig) {
    this.config = config;
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      concurrency: config.concurrency,
      onError: (key, err, attempt) => config.log(attempt > 2 ? "warn" : "info", "reconcile failed, will retry", { key, attempt, error: errorText(err) }),
      onDone: (_key, ms, ok) => {
        this.reconcileCount++;
        this.metrics.reconciles.inc({ result: ok ? "success" : "error" });
        this.metrics.reconcileDuration.observe(ms / 1000);
      },
    });
  }

  /** Connects, serves the endpoints, and starts electing (or reconciling at once without election). */
  async start(): Promise<void> {
    this.client = await KubeClient.create({
      ...(this.config.kubeconfigPath ? { kubeconfigPath: this.config.kubeconfigPath } : {}),
      userAgent: this.config.userAgent ?? `mcp-bastion-operator/${this.config.leaderElection.identity}`,
      maxSockets: Math.max(32, this.config.concurrency * 4),
    });
    this.metrics.countRequests(() => this.client.stats.byVerb);
    this.metrics.queueSource = () => ({ depth: this.queue.depth(), inFlight: this.queue.inFlight() });
    this.metrics.serverSource = () => {
      const counts: Record<string, number> = { Reconciled: 0, Ready: 0, Degraded: 0 };
      for (const s of this.servers()) {
        for (const c of (s.status as McpServerStatus | undefined)?.conditions ?? []) if (c.status === "True" && c.type in counts) counts[c.type] = (counts[c.type] ?? 0) + 1;
      }
      return counts;
    };
    const health = { healthy: () => !this.stopping, ready: () => !this.stopping && (!this.running || this.synced) };
    const { metrics, health: healthAddr } = this.config;
    if (metrics) this.httpServers.push(await serveEndpoints(this.metrics, health, metrics.host, metrics.port));
    if (healthAddr && (!metrics || healthAddr.port !== metrics.port || healthAddr.host !== metrics.host)) {
      this.httpServers.push(await serveEndpoints(this.metrics, health, healthAddr.host, healthAddr.port));
    }
    if (!this.config.leaderElection.enabled) {
      await this.startControllers();
      return;
    }
    const le = this.config.leaderElection;
    this.elector = new LeaderElector(this.client, { ...le, log: (m) => this.config.log("info", m) });
    void this.elector
      .run(() => {
        this.metrics.leader.set(1);
        this.startControllers().catch((err) => this.config.log("error", "could not start controllers", { error: errorText(err) }));
      })
      .then(async (result) => {
        this.metrics.leader.set(0);
        if (result === "lost") {
          this.config.log("error", "lost leadership: stopping all work");
          await this.stopControllers();
          this.resolveDone("lost");
        }
      });
  }

  /** Addresses of the endpoint servers (for tests that bind port 0). */
  endpointPorts(): number[] {
    return this.httpServers.map((s) => (s.address() as { port: number }).port);
  }

  isLeader(): boolean {
    return this.running;
  }

  private async startControllers(): Promise<void> {
    if (this.running || this.stopping) return;
    this.running = true;
    try {
      await this.discover();
    } catch (err) {
      // Not fatal: optional kinds count as absent until the periodic rediscovery succeeds.
      this.config.log("warn", "discovery failed; Istio/External Secrets kinds treated as absent for now", { error: errorText(err) });
    }
    const namespaces = this.config.namespaces.length ? this.config.namespaces : [""];
    for (const ns of namespaces) {
      const inf = new Informer(this.client, {
        apiVersion: API_VERSION,
        kind: KIND,
        plural: PLURAL,
        ...(ns ? { namespace: ns } : {}),
        transform: slim,
        onError: (err, attempt) => this.watchError(KIND, err, attempt),
        onList: (reason) => this.metrics.lists.inc({ kind: KIND, reason }),
      });
      inf.on((type, obj) => {
        if (type === "DELETED") forgetRender(obj.metadata.namespace ?? "", obj.metadata.name);
        else this.enqueue(objectKey(obj));
      });
      this.serverInformers.set(ns, inf);
    }
    for (const kind of OWNED_KINDS) if (!kind.requires || this.servedKinds.has(kindId(kind.apiVersion, kind.kind))) this.startChildInformers(kind);
    for (const inf of this.allInformers()) inf.start();
    await Promise.all(this.allInformers().map((i) => i.synced));
    if (this.stopping) return;
    this.synced = true;
    this.resyncAll();
    this.config.log("info", "caches synced", { servers: this.serverCount(), namespaces: this.config.namespaces.length ? this.config.namespaces : "all" });
    this.timers.push(setInterval(() => this.resyncAll(), this.config.resyncIntervalMs).unref());
    this.timers.push(setInterval(() => void this.rediscover(), this.config.discoveryIntervalMs).unref());
  }

  private allInformers(): Informer[] {
    const out = [...this.serverInformers.values()];
    for (const m of this.childInformers.values()) out.push(...m.values());
    return out;
  }

  private startChildInformers(kind: OwnedKind): Informer[] {
    const id = kindId(kind.apiVersion, kind.kind);
    if (this.childInformers.has(id)) return [];
    const byNs = new Map<string, Informer>();
    for (const ns of this.config.namespaces.length ? this.config.namespaces : [""]) {
      const inf = new Informer(this.client, {
        apiVersion: kind.apiVersion,
        kind: kind.kind,
        plural: kind.plural,
        ...(ns ? { namespace: ns } : {}),
        labelSelector: MANAGED_SELECTOR,
        transform: slim,
        onError: (err, attempt) => this.watchError(kind.kind, err, attempt),
        onList: (reason) => this.metrics.lists.inc({ kind: kind.kind, reason }),
      });
      // Any change to a child (a hand edit, a deletion, a Deployment's availability) re-runs its owner.
      inf.on((_type, obj) => {
        const owner = obj.metadata.labels?.[SERVER_LABEL];
        if (owner && obj.metadata.namespace) this.enqueue(`${obj.metadata.namespace}/${owner}`);
      });
      byNs.set(ns, inf);
    }
    this.childInformers.set(id, byNs);
    return [...byNs.values()];
  }

  private watchError(kind: string, err: unknown, attempt: number): void {
    this.metrics.watchErrors.inc({ kind });
    this.config.log(attempt > 2 ? "warn" : "debug", "watch interrupted, reconnecting", { kind, attempt, error: errorText(err) });
  }

  /** Which optional kinds (Istio, External Secrets) the API server serves, from discovery. */
  private async discover(): Promise<boolean> {
    const served = new Set<string>();
    const groupVersions = [...new Set(OWNED_KINDS.filter((k) => k.requires).map((k) => k.apiVersion))];
    await Promise.all(
      groupVersions.map(async (gv) => {
        try {
          const list = await this.client.request<{ resources?: { kind: string; name: string }[] }>("GET", `/apis/${gv}`);
          for (const r of list.resources ?? []) served.add(kindId(gv, r.kind));
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
      }),
    );
    const changed = served.size !== this.servedKinds.size || [...served].some((k) => !this.servedKinds.has(k));
    this.servedKinds = served;
    return changed;
  }

  private async rediscover(): Promise<void> {
    try {
      if (!(await this.discover())) return;
      this.config.log("info", "installed CRDs changed", { served: [...this.servedKinds] });
      const started: Informer[] = [];
      for (const kind of OWNED_KINDS) if (kind.requires && this.servedKinds.has(kindId(kind.apiVersion, kind.kind))) started.push(...this.startChildInformers(kind));
      for (const i of started) i.start();
      await Promise.all(started.map((i) => i.synced));
      this.resyncAll();
    } catch (err) {
      this.config.log("debug", "discovery failed", { error: errorText(err) });
    }
  }

  private enqueue(key: string): void {
    // Before every cache has synced a reconcile would see children as missing and re-apply them:
    // events until then are dropped, and the first full resync after the sync covers them.
    if (!this.running || this.stopping || !this.synced) return;
    this.queue.add(key);
  }

  /** Queues every known McpServer (periodic resync; also used by the benchmark). */
  resyncAll(): void {
    for (const inf of this.serverInformers.values()) for (const key of inf.cache.keys()) this.enqueue(key);
  }

  serverCount(): number {
    let n = 0;
    for (const inf of this.serverInformers.values()) n += inf.cache.size;
    return n;
  }

  /** Resolves when no reconcile is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** The cached McpServer objects (tests and the benchmark read status from here). */
  servers(): KubeObject[] {
    const out: KubeObject[] = [];
    for (const inf of this.serverInformers.values()) out.push(...inf.cache.values());
    return out;
  }

  private informerFor(map: Map<string, Informer> | undefined, ns: string): Informer | undefined {
    return map?.get(ns) ?? map?.get("");
  }

  private serverInformer(ns: string): Informer | undefined {
    return this.informerFor(this.serverInformers, ns);
  }

  private childInformer(apiVersion: string, kind: string, ns: string): Informer | undefined {
    return this.informerFor(this.childInformers.get(kindId(apiVersion, kind)), ns);
  }

  private countWrite(verb: string, kind: string): void {
    this.writes++;
    this.metrics.writes.inc({ verb, kind });
  }

  /** One reconcile of one McpServer. Throws (and is retried with backoff) when a write failed. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number } | undefined> {
    const slash = key.indexOf("/");
    const ns = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const serverInf = this.serverInformer(ns);
    const raw = serverInf?.get(ns, name);
    if (!raw || raw.metadata.deletionTimestamp) return undefined; // children go with it (ownerReferences)

    const plan = planServer(raw, {
      gatewayImage: this.config.gatewayImage,
      ...(this.config.clusterDomain ? { clusterDomain: this.config.clusterDomain } : {}),
      servedKinds: this.servedKinds,
      clusterStores: this.config.clusterStores,
    });
    const { errors, conflicts } = plan.ok ? await this.makeItSo(raw, plan) : { errors: [], conflicts: [] };
    const deployment = plan.ok ? plan.apply.find((o) => o.kind === "Deployment") : undefined;
    const liveDeployment = deployment ? this.childInformer(deployment.apiVersion, "Deployment", ns)?.get(ns, deployment.metadata.name) : undefined;
    const previous = raw.status as McpServerStatus | undefined;
    const status = desiredStatus(raw, plan, { errors, conflicts, ...(liveDeployment ? { deployment: liveDeployment } : {}) }, previous, new Date().toISOString().replace(/\.\d{3}Z$/, "Z"));
    if (!statusEqual(status, previous)) {
      let updated: KubeObject;
      try {
        updated = await this.client.apply(
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
      this.countWrite("patch", `${KIND}/status`);
      serverInf?.store(updated);
      for (const t of transitions(previous?.conditions, status.conditions ?? [])) {
        // A new server starts with Ready=False and Degraded=False: only news are worth an Event.
        const first = !previous?.conditions?.some((c) => c.type === t.type);
        if (first && t.type !== "Reconciled" && !(t.type === "Degraded" && t.status === "True")) continue;
        await this.event(raw, t);
      }
    }
    if (errors.length) throw new Error(errors.join("; "));
    // issue 13: come back when a rule's schedule flips (a window opens or closes, an elevation expires),
    // so status.authorization follows the clock without anyone editing the object.
    const after = requeueForSchedule(status, Date.now());
    if (conflicts.length) {
      // Not a failure to back off from: someone else's object, usually outside the watched label
      // (its removal raises no event here), so it is looked at again on a steady interval.
      this.config.log("warn", "not applied: a child's name is held by another owner", { server: key, conflicts });
      return { requeueAfterMs: Math.min(this.config.conflictRecheckMs, after ?? Number.POSITIVE_INFINITY) };
    }
    return after === undefined ? undefined : { requeueAfterMs: after };
  }

  /**
   * Children that exist but are held by someone other than this McpServer. The cache holds only
   * objects labelled as managed by mcp-bastion; a child it does not hold is looked up once before
   * it is created, so an object someone else made under that name is never written over.
   */
  private async ownershipConflicts(raw: KubeObject, plan: Extract<Plan, { ok: true }>): Promise<{ conflicts: OwnershipConflict[]; errors: string[] }> {
    const ns = raw.metadata.namespace as string;
    const conflicts: OwnershipConflict[] = [];
    const errors: string[] = [];
    await Promise.all(
      plan.apply.map(async (obj) => {
        const kind = OWNED_KINDS.find((k) => k.apiVersion === obj.apiVersion && k.kind === obj.kind) as OwnedKind;
        let live = this.childInformer(obj.apiVersion, obj.kind, ns)?.get(ns, obj.metadata.name);
        if (!live) {
          try {
            live = await this.client.get({ apiVersion: obj.apiVersion, plural: kind.plural, namespace: ns, name: obj.metadata.name });
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

  private readonly statusRefused = new Set<string>();
  private async statusRefusedEvent(raw: KubeObject, status: McpServerStatus): Promise<void> {
    const key = `${raw.metadata.uid}/${raw.metadata.generation}`;
    const degraded = status.conditions?.find((c) => c.type === "Degraded");
    if (!degraded || this.statusRefused.has(key)) return;
    if (this.statusRefused.size > 10_000) this.statusRefused.clear();
    this.statusRefused.add(key);
    await this.event(raw, degraded);
  }

  /** Applies the children that differ from the plan and deletes the ones no longer planned. */
  private async makeItSo(raw: KubeObject, plan: Extract<Plan, { ok: true }>): Promise<{ errors: string[]; conflicts: OwnershipConflict[] }> {
    const ns = raw.metadata.namespace as string;
    // Nothing is applied while any child is held by someone else: half a deployment could mount
    // a Secret or use a ConfigMap the other owner controls.
    const held = await this.ownershipConflicts(raw, plan);
    if (held.conflicts.length || held.errors.length) return held;
    const errors: string[] = [];
    await Promise.all(
      plan.apply.map(async (obj) => {
        const kind = OWNED_KINDS.find((k) => k.apiVersion === obj.apiVersion && k.kind === obj.kind) as OwnedKind;
        const inf = this.childInformer(obj.apiVersion, obj.kind, ns);
        const current = inf?.get(ns, obj.metadata.name);
        const why = applyReason(obj, current);
        const hash = obj.metadata.annotations?.[HASH_ANNOTATION] as string;
        if (!why) {
          if (current && !(VERIFIED in current)) inf?.replaceSameVersion(verifiedMarker(current, hash));
          return;
        }
        if (why === "drifted") this.config.log("info", "reverting drift", { server: `${ns}/${raw.metadata.name}`, kind: obj.kind, name: obj.metadata.name, fields: differences(obj, current).slice(0, 5) });
        try {
          const live = await this.client.apply({ apiVersion: obj.apiVersion, plural: kind.plural, namespace: ns, name: obj.metadata.name }, obj, FIELD_MANAGER);
          this.countWrite("apply", obj.kind);
          // The answer is the object with our fields applied (force): remember only that.
          inf?.store(verifiedMarker(live, hash));
          this.config.log("debug", "applied", { server: `${ns}/${raw.metadata.name}`, kind: obj.kind, name: obj.metadata.name, why });
        } catch (err) {
          errors.push(`${obj.kind} ${obj.metadata.name}: ${errorText(err)}`);
        }
      }),
    );
    // Prune: children of this server (by label and controller ownerReference) that are no longer planned.
    const wanted = new Set(plan.apply.map((o) => `${kindId(o.apiVersion, o.kind)}/${o.metadata.name}`));
    const uid = raw.metadata.uid;
    for (const kind of OWNED_KINDS) {
      const inf = this.childInformer(kind.apiVersion, kind.kind, ns);
      if (!inf) continue;
      for (const child of inf.cache.values()) {
        if (child.metadata.namespace !== ns || child.metadata.labels?.[SERVER_LABEL] !== raw.metadata.name) continue;
        if (wanted.has(`${kindId(kind.apiVersion, kind.kind)}/${child.metadata.name}`)) continue;
        const owned = (child.metadata.ownerReferences as { uid?: string; controller?: boolean }[] | undefined)?.some((r) => r.uid === uid && r.controller);
        if (!owned || child.metadata.deletionTimestamp) continue;
        try {
          await this.client.request("DELETE", `${resourceBase(kind.apiVersion)}/namespaces/${ns}/${kind.plural}/${child.metadata.name}`, {
            body: { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid: child.metadata.uid }, propagationPolicy: "Background" },
          });
          this.countWrite("delete", kind.kind);
          inf.forget(child);
          this.config.log("info", "pruned", { server: `${ns}/${raw.metadata.name}`, kind: kind.kind, name: child.metadata.name });
        } catch (err) {
          if (err instanceof ApiError && (err.code === 404 || err.code === 409)) inf.forget(child);
          else errors.push(`delete ${kind.kind} ${child.metadata.name}: ${errorText(err)}`);
        }
      }
    }
    return { errors, conflicts: [] };
  }

  private async event(raw: KubeObject, t: { type: string; status: string; reason: string; message: string }): Promise<void> {
    const ns = raw.metadata.namespace as string;
    const warning = (t.type === "Degraded" && t.status === "True") || (t.type === "Reconciled" && t.status === "False");
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const body = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${raw.metadata.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`, namespace: ns },
      involvedObject: { apiVersion: API_VERSION, kind: KIND, name: raw.metadata.name, namespace: ns, uid: raw.metadata.uid, resourceVersion: raw.metadata.resourceVersion },
      reason: t.reason,
      message: `${t.type}=${t.status}: ${t.message}`.slice(0, 1024),
      type: warning ? "Warning" : "Normal",
      source: { component: "mcp-bastion-operator" },
      reportingComponent: "mcp.bastion.dev/operator",
      reportingInstance: this.config.leaderElection.identity.slice(0, 128),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.client.create({ apiVersion: "v1", plural: "events", namespace: ns }, body);
      this.countWrite("create", "Event");
    } catch (err) {
      this.config.log("debug", "could not record event", { error: errorText(err) });
    }
  }

  private async stopControllers(): Promise<void> {
    this.running = false;
    this.synced = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.queue.shutdown(10_000);
    await Promise.all(this.allInformers().map((i) => i.stop()));
  }

  /** Graceful stop: finish reconciles in flight, stop watches, release the Lease, close endpoints. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.stopControllers();
    await this.elector?.stop();
    for (const s of this.httpServers) await new Promise((r) => s.close(r));
    this.client?.close();
    this.resolveDone("stopped");
  }
}

function resourceBase(apiVersion: string): string {
  return apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}
