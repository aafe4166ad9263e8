// The manager: the machinery a controller runs on, knowing nothing of what it reconciles (as in
// controller-runtime). It connects, serves /metrics, /healthz and /readyz, elects a leader, runs one
// informer per watched kind and namespace, finds out which optional kinds the API server serves,
// feeds a work queue keyed by namespace/name and resyncs every key on an interval. What a key means
// is the reconciler's business (controller/reconciler.ts for McpServers).
import type { Server } from "node:http";
import { Informer, type InformerOptions, objectKey } from "./informer.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { ApiError, KubeClient, kindId } from "./kube.ts";
import { LeaderElector, type LeaderOptions } from "./leader.ts";
import { OperatorMetrics, serveEndpoints } from "./metrics.ts";
import { type WorkResult, WorkQueue } from "./queue.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface ManagerConfig {
  /** Namespaces to watch; empty: all namespaces. */
  namespaces: string[];
  /** Keys reconciled at the same time. */
  concurrency: number;
  leaderElection: { enabled: boolean } & Omit<LeaderOptions, "log">;
  /** host:port of /metrics (port 0: any free port); undefined: off. */
  metrics?: { host: string; port: number };
  /** host:port of /healthz and /readyz; undefined: off (may equal metrics). */
  health?: { host: string; port: number };
  /** Every primary object is reconciled again this often, even without events. */
  resyncIntervalMs: number;
  /** How often discovery checks whether optional kinds (those with `requires`) appeared or went. */
  discoveryIntervalMs: number;
  log: Logger;
  /** kubeconfig file; default: KUBECONFIG, ~/.kube/config, or in-cluster. */
  kubeconfigPath?: string;
  userAgent?: string;
}

export interface WatchedKind {
  apiVersion: string;
  kind: string;
  plural: string;
  /** Set for kinds whose CRD may be absent: watched only while discovery finds them served. */
  requires?: unknown;
}

/**
 * A kind the controller reads but does not own (another operator's reports, say): watched only while
 * discovery finds it served, narrowed by its own selector, and indexed by the key of the primary object
 * each object concerns, so a reconcile reads its own few objects without scanning the cache.
 */
export interface RelatedWatch {
  kind: WatchedKind & { requires: unknown };
  labelSelector?: string;
  /** The key of the primary object an object concerns (it may not exist: such objects are kept, unused). */
  ownerKey(obj: KubeObject): string | undefined;
  /** Applied to every cached object of this kind (drop what is never read). */
  transform?(obj: KubeObject): KubeObject;
}

/** What to watch and how events map to keys: the controller's half of "SetupWithManager". */
export interface Watches {
  /** The reconciled kind: each object's namespace/name is a work item. */
  primary: WatchedKind;
  /** Kinds the reconciler creates; a change to one re-runs its owner. */
  owned: readonly WatchedKind[];
  /** Label selector that narrows the owned kinds' watches to the controller's own objects. */
  ownedSelector: string;
  /** The key of the primary object that owns a child, if any. */
  ownerKey(child: KubeObject): string | undefined;
  /** Called when a primary object is deleted (children go with it through ownerReferences). */
  onPrimaryDeleted?(obj: KubeObject): void;
  /** Applied to every cached object (drop what is never read, to save memory). */
  transform?(obj: KubeObject): KubeObject;
  /** Kinds read but not owned; a change to one re-runs the primary object it concerns. */
  related?: readonly RelatedWatch[];
}

/** What a reconciler may use of the manager: the client, the caches, discovery and the write count. */
export interface ReconcileContext {
  readonly client: KubeClient;
  readonly servedKinds: ReadonlySet<string>;
  primaryInformer(namespace: string): Informer | undefined;
  childInformer(apiVersion: string, kind: string, namespace: string): Informer | undefined;
  /** The cached objects of a related kind that concern the primary object `key` (empty while the kind is not served; optional for test doubles). */
  related?(apiVersion: string, kind: string, key: string): KubeObject[];
  countWrite(verb: string, kind: string): void;
}

export interface Reconciler {
  /** One reconcile of one key. Throws (and is retried with backoff) when something failed. */
  reconcile(key: string): Promise<WorkResult | undefined>;
}

export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Manager implements ReconcileContext {
  readonly config: ManagerConfig;
  readonly metrics = new OperatorMetrics();
  client!: KubeClient;
  protected readonly reconciler: Reconciler;
  private readonly watches: Watches;
  private readonly primaryInformers = new Map<string, Informer>(); // namespace ("" = all) -> informer
  private readonly childInformers = new Map<string, Map<string, Informer>>(); // kindId -> namespace -> informer
  private served = new Set<string>();
  /** Related kinds' objects by kindId, then primary key, then object key. */
  private readonly relatedIndex = new Map<string, Map<string, Map<string, KubeObject>>>();
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
  /** Resolves when the manager ends: "lost" leadership, or "stopped". */
  done: Promise<"lost" | "stopped">;
  private resolveDone!: (v: "lost" | "stopped") => void;

  constructor(config: ManagerConfig, watches: Watches, makeReconciler: (ctx: ReconcileContext) => Reconciler) {
    this.config = config;
    this.watches = watches;
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
    this.reconciler = makeReconciler(this);
    this.queue = new WorkQueue((key) => this.reconciler.reconcile(key), {
      concurrency: config.concurrency,
      onError: (key, err, attempt) => config.log(attempt > 2 ? "warn" : "info", "reconcile failed, will retry", { key, attempt, error: errorText(err) }),
      onDone: (_key, ms, ok) => {
        this.reconcileCount++;
        this.metrics.reconciles.inc({ result: ok ? "success" : "error" });
        this.metrics.reconcileDuration.observe(ms / 1000);
      },
    });
  }

  get servedKinds(): ReadonlySet<string> {
    return this.served;
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
          // Said first: the CLI exits on it at once (another replica may be leader from now on), without
          // waiting for the reconciles in flight as stopControllers does.
          this.resolveDone("lost");
          await this.stopControllers();
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

  private watchedNamespaces(): string[] {
    return this.config.namespaces.length ? this.config.namespaces : [""];
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
    const { primary, transform, onPrimaryDeleted } = this.watches;
    for (const ns of this.watchedNamespaces()) {
      const inf = this.newInformer(primary, ns, transform ? { transform } : {});
      inf.on((type, obj) => {
        if (type === "DELETED") onPrimaryDeleted?.(obj);
        else this.enqueue(objectKey(obj));
      });
      this.primaryInformers.set(ns, inf);
    }
    for (const kind of this.watches.owned) if (!kind.requires || this.served.has(kindId(kind.apiVersion, kind.kind))) this.startChildInformers(kind);
    for (const r of this.watches.related ?? []) if (this.served.has(kindId(r.kind.apiVersion, r.kind.kind))) this.startRelatedInformers(r);
    for (const inf of this.allInformers()) inf.start();
    await Promise.all(this.allInformers().map((i) => i.synced));
    if (this.stopping) return;
    this.synced = true;
    this.resyncAll();
    this.config.log("info", "caches synced", { servers: this.serverCount(), namespaces: this.config.namespaces.length ? this.config.namespaces : "all" });
    this.timers.push(setInterval(() => this.resyncAll(), this.config.resyncIntervalMs).unref());
    this.timers.push(setInterval(() => void this.rediscover(), this.config.discoveryIntervalMs).unref());
  }

  /** An informer of `kind` in namespace `ns` ("" = all) whose watch errors and lists are reported like every other's. */
  private newInformer(
    kind: Pick<InformerOptions, "apiVersion" | "kind" | "plural">,
    ns: string,
    extra: Omit<InformerOptions, "apiVersion" | "kind" | "plural">,
  ): Informer {
    return new Informer(this.client, {
      apiVersion: kind.apiVersion,
      kind: kind.kind,
      plural: kind.plural,
      ...(ns ? { namespace: ns } : {}),
      ...extra,
      onError: (err, attempt) => this.watchError(kind.kind, err, attempt),
      onList: (reason) => this.metrics.lists.inc({ kind: kind.kind, reason }),
    });
  }

  private allInformers(): Informer[] {
    const out = [...this.primaryInformers.values()];
    for (const m of this.childInformers.values()) out.push(...m.values());
    return out;
  }

  private startChildInformers(kind: WatchedKind): Informer[] {
    const id = kindId(kind.apiVersion, kind.kind);
    if (this.childInformers.has(id)) return [];
    const byNs = new Map<string, Informer>();
    const { transform, ownerKey, ownedSelector } = this.watches;
    for (const ns of this.watchedNamespaces()) {
      const inf = this.newInformer(kind, ns, { labelSelector: ownedSelector, ...(transform ? { transform } : {}), indexBy: ownerKey });
      // Any change to a child (a hand edit, a deletion, a Deployment's availability) re-runs its owner.
      inf.on((_type, obj) => {
        const owner = ownerKey(obj);
        if (owner) this.enqueue(owner);
      });
      byNs.set(ns, inf);
    }
    this.childInformers.set(id, byNs);
    return [...byNs.values()];
  }

  private startRelatedInformers(watch: RelatedWatch): Informer[] {
    const { kind } = watch;
    const id = kindId(kind.apiVersion, kind.kind);
    if (this.childInformers.has(id)) return [];
    const index = new Map<string, Map<string, KubeObject>>();
    this.relatedIndex.set(id, index);
    // Where each object is indexed now, so a changed owner key (or a deletion) removes the old entry.
    const ownerOf = new Map<string, string>();
    const byNs = new Map<string, Informer>();
    for (const ns of this.watchedNamespaces()) {
      const inf = this.newInformer(kind, ns, {
        ...(watch.labelSelector ? { labelSelector: watch.labelSelector } : {}),
        ...(watch.transform ? { transform: watch.transform } : {}),
      });
      inf.on((type, obj) => {
        const key = objectKey(obj);
        const before = ownerOf.get(key);
        const owner = type === "DELETED" ? undefined : watch.ownerKey(obj);
        if (before !== undefined && before !== owner) {
          index.get(before)?.delete(key);
          if (index.get(before)?.size === 0) index.delete(before);
          ownerOf.delete(key);
          this.enqueue(before);
        }
        if (owner === undefined) return;
        const m = index.get(owner) ?? new Map<string, KubeObject>();
        index.set(owner, m);
        m.set(key, obj);
        ownerOf.set(key, owner);
        this.enqueue(owner);
      });
      byNs.set(ns, inf);
    }
    this.childInformers.set(id, byNs);
    return [...byNs.values()];
  }

  related(apiVersion: string, kind: string, key: string): KubeObject[] {
    const m = this.relatedIndex.get(kindId(apiVersion, kind))?.get(key);
    return m ? [...m.values()] : [];
  }

  private watchError(kind: string, err: unknown, attempt: number): void {
    this.metrics.watchErrors.inc({ kind });
    this.config.log(attempt > 2 ? "warn" : "debug", "watch interrupted, reconnecting", { kind, attempt, error: errorText(err) });
  }

  /** Which optional kinds (those with `requires`) the API server serves, from discovery. */
  private async discover(): Promise<boolean> {
    const served = new Set<string>();
    const optional = [...this.watches.owned.filter((k) => k.requires), ...(this.watches.related ?? []).map((r) => r.kind)];
    const groupVersions = [...new Set(optional.map((k) => k.apiVersion))];
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
    const changed = served.size !== this.served.size || [...served].some((k) => !this.served.has(k));
    this.served = served;
    return changed;
  }

  private async rediscover(): Promise<void> {
    try {
      if (!(await this.discover())) return;
      this.config.log("info", "installed CRDs changed", { served: [...this.served] });
      const started: Informer[] = [];
      for (const kind of this.watches.owned)
        if (kind.requires && this.served.has(kindId(kind.apiVersion, kind.kind))) started.push(...this.startChildInformers(kind));
      for (const r of this.watches.related ?? []) if (this.served.has(kindId(r.kind.apiVersion, r.kind.kind))) started.push(...this.startRelatedInformers(r));
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

  /** Queues every known primary object (periodic resync; also used by the benchmark). */
  resyncAll(): void {
    for (const inf of this.primaryInformers.values()) for (const key of inf.cache.keys()) this.enqueue(key);
  }

  serverCount(): number {
    let n = 0;
    for (const inf of this.primaryInformers.values()) n += inf.cache.size;
    return n;
  }

  /** Resolves when no reconcile is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** The cached primary objects (tests and the benchmark read status from here). */
  servers(): KubeObject[] {
    const out: KubeObject[] = [];
    for (const inf of this.primaryInformers.values()) out.push(...inf.cache.values());
    return out;
  }

  private informerFor(map: Map<string, Informer> | undefined, ns: string): Informer | undefined {
    return map?.get(ns) ?? map?.get("");
  }

  primaryInformer(ns: string): Informer | undefined {
    return this.informerFor(this.primaryInformers, ns);
  }

  childInformer(apiVersion: string, kind: string, ns: string): Informer | undefined {
    return this.informerFor(this.childInformers.get(kindId(apiVersion, kind)), ns);
  }

  countWrite(verb: string, kind: string): void {
    this.writes++;
    this.metrics.writes.inc({ verb, kind });
  }

  /** One reconcile of one key, outside the queue (tests). */
  reconcile(key: string): Promise<WorkResult | undefined> {
    return this.reconciler.reconcile(key);
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
