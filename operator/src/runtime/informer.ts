// List+watch cache of one resource (in one namespace or all). The habits that keep a controller
// alive in production: watch from the list's resourceVersion with bookmarks, rewatch when the
// server ends the stream, relist on 410 Gone (resourceVersion too old), reconnect after any other
// error with exponential backoff and jitter (never a tight loop, never giving up), and a staleness
// timer that drops a watch that has gone silent without closing.
import type { KubeObject } from "../../../contract/kube-object.ts";
import { ApiError, type KubeClient, resourcePath } from "./kube.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";
export type Handler = (type: EventType, obj: KubeObject) => void;

export interface InformerOptions {
  apiVersion: string;
  kind: string;
  plural: string;
  /** Watch one namespace; all namespaces when absent. */
  namespace?: string;
  labelSelector?: string;
  /** Called on every stored object (e.g. to drop managedFields and save memory). */
  transform?: (obj: KubeObject) => KubeObject;
  /** Longest silence on a watch before it is considered dead and restarted. */
  staleAfterMs?: number;
  /** Report connection problems (never throws). */
  onError?: (err: unknown, attempt: number) => void;
  /** Called after each full list (the first sync, and every relist after a 410 Gone or repeated failures). */
  onList?: (reason: "initial" | "gone" | "errors") => void;
  /** Page size of list requests. */
  pageSize?: number;
  /**
   * An index over the cached objects (a child's owner, "namespace/name"): byIndex() then finds an
   * owner's children without scanning the whole cache, which at 10,000 servers is 10,000 objects per
   * kind on every reconcile.
   */
  indexBy?: (obj: KubeObject) => string | undefined;
}

export function objectKey(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/** Exponential backoff with full jitter in [d/2, d], capped. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return d / 2 + (random() * d) / 2;
}

export class Informer {
  /** The cached objects by "namespace/name". Read it; change it only through the informer (its index follows). */
  readonly cache = new Map<string, KubeObject>();
  /** indexBy value -> keys of the cached objects that have it. */
  private readonly index = new Map<string, Set<string>>();
  private readonly opts: InformerOptions;
  private readonly client: KubeClient;
  private readonly handlers: Handler[] = [];
  private resourceVersion: string | undefined;
  private relistReason: "gone" | "errors" = "gone";
  private abort = new AbortController();
  private stopped = false;
  private syncedResolve!: () => void;
  private loopDone: Promise<void> | undefined;
  /** Resolves once the first list has filled the cache. */
  readonly synced: Promise<void>;
  isSynced = false;
  /** Number of full lists done (1 after the first sync; more after 410s and reconnect failures). */
  lists = 0;

  constructor(client: KubeClient, opts: InformerOptions) {
    this.client = client;
    this.opts = opts;
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
  }

  on(handler: Handler): void {
    this.handlers.push(handler);
  }

  get(namespace: string | undefined, name: string): KubeObject | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  /** The cached objects whose indexBy value is `value` (all objects when the informer has no index: callers filter anyway). */
  byIndex(value: string): Iterable<KubeObject> {
    if (!this.opts.indexBy) return this.cache.values();
    const keys = this.index.get(value);
    if (!keys) return [];
    const out: KubeObject[] = [];
    for (const k of keys) {
      const o = this.cache.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  private put(key: string, obj: KubeObject): void {
    const by = this.opts.indexBy;
    if (by) {
      const old = this.cache.get(key);
      const was = old ? by(old) : undefined;
      const now = by(obj);
      if (was !== now) {
        if (was !== undefined) this.unindex(was, key);
        if (now !== undefined) {
          const set = this.index.get(now);
          if (set) set.add(key);
          else this.index.set(now, new Set([key]));
        }
      }
    }
    this.cache.set(key, obj);
  }

  private remove(key: string): void {
    const by = this.opts.indexBy;
    const old = by ? this.cache.get(key) : undefined;
    if (old) {
      const was = by!(old);
      if (was !== undefined) this.unindex(was, key);
    }
    this.cache.delete(key);
  }

  private unindex(value: string, key: string): void {
    const set = this.index.get(value);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.index.delete(value);
  }

  /**
   * Uids of objects whose deletion this informer has seen (bounded, oldest dropped first). A write
   * answered just before the object was deleted can be stored after its DELETED event: without
   * this, store() would bring a deleted McpServer back into the cache for good, and every later
   * reconcile would re-create children for an owner that no longer exists (orphans that the
   * garbage collector deletes and the operator re-creates, forever). Found by the reliability soak.
   */
  private readonly deletedUids = new Set<string>();

  private tombstone(obj: KubeObject): void {
    const uid = obj.metadata.uid as string | undefined;
    if (!uid) return;
    this.deletedUids.add(uid);
    if (this.deletedUids.size > 10_000) this.deletedUids.delete(this.deletedUids.values().next().value as string);
  }

  /** Stores an object the controller just wrote, so a reconcile before its watch event sees it. */
  store(obj: KubeObject): void {
    if (obj.metadata.uid && this.deletedUids.has(obj.metadata.uid as string)) return;
    const key = objectKey(obj);
    const old = this.cache.get(key);
    // An older answer never replaces a newer object. The same version may: the watch often delivers the
    // echo of a write before its answer arrives, and the answer (a smaller stand-in) is what should stay.
    if (old && newer(old, obj)) return;
    this.put(key, this.opts.transform ? this.opts.transform(obj) : obj);
  }

  /** Replaces the cached object by a smaller stand-in of the same resourceVersion (see controller/compare.ts VERIFIED). */
  replaceSameVersion(obj: KubeObject): void {
    const key = objectKey(obj);
    if (this.cache.get(key)?.metadata.resourceVersion === obj.metadata.resourceVersion) this.put(key, obj);
  }

  forget(obj: { metadata: { name: string; namespace?: string } }): void {
    this.remove(objectKey(obj));
  }

  start(): void {
    if (!this.loopDone) this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loopDone;
  }

  private emit(type: EventType, obj: KubeObject): void {
    for (const h of this.handlers) {
      try {
        h(type, obj);
      } catch {
        // a handler never breaks the watch
      }
    }
  }

  private path(): string {
    return resourcePath({ apiVersion: this.opts.apiVersion, plural: this.opts.plural, ...(this.opts.namespace ? { namespace: this.opts.namespace } : {}) });
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) {
          await this.relist();
          this.opts.onList?.(this.lists === 1 ? "initial" : this.relistReason);
        }
        await this.watchOnce();
        attempt = 0; // normal end of a watch (server timeout): rewatch at once
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof ApiError && (err.code === 410 || err.reason === "Expired" || err.reason === "Gone")) {
          this.resourceVersion = undefined; // too old: relist
          this.relistReason = "gone";
          continue;
        }
        this.opts.onError?.(err, attempt);
        // After repeated failures, relist too: events may have been missed in a way no 410 tells.
        if (attempt >= 3) {
          this.resourceVersion = undefined;
          this.relistReason = "errors";
        }
        await this.sleep(backoffDelay(attempt, 250, 15_000));
        attempt++;
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          resolve();
        },
        { once: true },
      );
    });
  }

  private async relist(): Promise<void> {
    const seen = new Map<string, KubeObject>();
    let cont: string | undefined;
    let rv = "";
    do {
      const page = await this.client.list(
        { apiVersion: this.opts.apiVersion, plural: this.opts.plural, ...(this.opts.namespace ? { namespace: this.opts.namespace } : {}) },
        { labelSelector: this.opts.labelSelector, limit: this.opts.pageSize ?? 500, continue: cont },
      );
      const kind = this.opts.kind;
      for (const item of page.items) {
        // List items carry no apiVersion/kind: fill them in so handlers see whole objects.
        const obj = { ...item, apiVersion: this.opts.apiVersion, kind } as KubeObject;
        seen.set(objectKey(obj), this.opts.transform ? this.opts.transform(obj) : obj);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    const old = new Map(this.cache);
    this.cache.clear();
    this.index.clear();
    // An unchanged object keeps its cached form (a stand-in stays a stand-in; see watchOnce).
    for (const [k, v] of seen) {
      const prev = old.get(k);
      this.put(k, prev && prev.metadata.resourceVersion === v.metadata.resourceVersion ? prev : v);
    }
    this.resourceVersion = rv;
    this.lists++;
    for (const [k, v] of seen) {
      const prev = old.get(k);
      if (!prev) this.emit("ADDED", v);
      else if (prev.metadata.resourceVersion !== v.metadata.resourceVersion) this.emit("MODIFIED", v);
    }
    for (const [k, v] of old) {
      if (seen.has(k)) continue;
      this.tombstone(v);
      this.emit("DELETED", v);
    }
    if (!this.isSynced) {
      this.isSynced = true;
      this.syncedResolve();
    }
  }

  private async watchOnce(): Promise<void> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.abort.signal.addEventListener("abort", onStop, { once: true });
    const staleAfter = this.opts.staleAfterMs ?? 6 * 60_000;
    let stale: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(stale);
      stale = setTimeout(() => ctl.abort(new Error("watch went silent")), staleAfter);
    };
    arm();
    try {
      // The server ends the watch after timeoutSeconds; jitter spreads the reconnects of many watches.
      const timeoutSeconds = 240 + Math.floor(Math.random() * 60);
      const stream = this.client.watch(
        this.path(),
        { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, labelSelector: this.opts.labelSelector, timeoutSeconds },
        ctl.signal,
      );
      for await (const ev of stream) {
        arm();
        if (ev.type === "ERROR") {
          const st = ev.object;
          throw new ApiError(st.code ?? 500, st.reason ?? "", st.message ?? "watch error");
        }
        const obj = ev.object as KubeObject;
        if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
        if (ev.type === "BOOKMARK") continue;
        const key = objectKey(obj);
        if (ev.type === "DELETED") {
          this.remove(key);
          this.tombstone(obj);
          this.emit("DELETED", obj);
        } else if (ev.type === "ADDED" || ev.type === "MODIFIED") {
          // The same resourceVersion is the same object: the echo of a write whose answer the controller
          // already stored (store()), perhaps as a smaller stand-in (replaceSameVersion). Keep that and
          // tell no one: the reconcile that wrote it has taken it into account, and re-running it only
          // re-renders to find nothing to do (half of all reconciles at 1,000+ servers), while the whole
          // object would take the stand-in's place in memory.
          if (this.cache.get(key)?.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
          const stored = this.opts.transform ? this.opts.transform(obj) : obj;
          this.put(key, stored);
          this.emit(ev.type, stored);
        }
      }
    } catch (err) {
      if (ctl.signal.aborted && !this.stopped) throw new Error("watch went silent");
      throw err;
    } finally {
      clearTimeout(stale);
      this.abort.signal.removeEventListener("abort", onStop);
    }
  }
}

/** True when `a` is newer than `b` (resourceVersions are opaque, but etcd's are integers). */
function newer(a: KubeObject, b: KubeObject): boolean {
  const ra = Number(a.metadata.resourceVersion);
  const rb = Number(b.metadata.resourceVersion);
  return Number.isFinite(ra) && Number.isFinite(rb) && ra > rb;
}
