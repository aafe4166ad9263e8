// Leader election with a coordination.k8s.io/v1 Lease, the client-go way: a candidate takes the
// Lease when it is free or its holder has not renewed it for leaseDuration (measured on our own
// clock from when we last saw it change, so clock skew between nodes does not matter); the leader
// renews every retryPeriod and gives up leadership when a renewal round could not renew within
// renewDeadline. Writes use resourceVersion (optimistic concurrency), so two candidates never both win.
// retryPeriod + renewDeadline < leaseDuration (the CLI derives both from the lease), so a leader that
// cannot renew stops before a candidate may take the Lease over.
import { ApiError, type KubeClient } from "./kube.ts";

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log?: (msg: string) => void;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Kubernetes MicroTime. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly opts: LeaderOptions;
  private observed: { record: string; at: number } | undefined;
  private stopped = false;
  private leading = false;
  private wake: (() => void) | undefined;

  constructor(client: KubeClient, opts: LeaderOptions) {
    this.client = client;
    this.opts = opts;
  }

  isLeader(): boolean {
    return this.leading;
  }

  private ref(name?: string) {
    return { apiVersion: "coordination.k8s.io/v1", plural: "leases", namespace: this.opts.namespace, ...(name ? { name } : {}) };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }

  /**
   * One attempt to take or renew the Lease. True when we hold it afterwards. Each request is cut at
   * `deadline` (epoch ms): a hung API server must not keep a leader waiting past its renew deadline.
   */
  async tryAcquireOrRenew(deadline = Date.now() + this.opts.renewDeadlineMs): Promise<boolean> {
    const now = new Date();
    const seconds = Math.max(1, Math.round(this.opts.leaseDurationMs / 1000));
    const left = () => ({ timeoutMs: Math.max(1, deadline - Date.now()) });
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.ref(this.opts.name), left());
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
      const fresh: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: seconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        await this.client.create(this.ref(), fresh, left());
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.code === 409) return false; // someone else was faster
        throw e;
      }
    }
    const record = JSON.stringify(lease.spec);
    if (!this.observed || this.observed.record !== record) this.observed = { record, at: Date.now() };
    const holder = lease.spec.holderIdentity ?? "";
    const duration = (lease.spec.leaseDurationSeconds ?? seconds) * 1000;
    const mine = holder === this.opts.identity;
    if (!mine && holder !== "" && Date.now() - this.observed.at < duration) return false;
    const spec: Lease["spec"] = {
      ...lease.spec,
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: seconds,
      renewTime: microTime(now),
    };
    if (!mine) {
      spec.acquireTime = microTime(now);
      spec.leaseTransitions = (lease.spec.leaseTransitions ?? 0) + 1;
    }
    try {
      await this.client.replace(this.ref(this.opts.name), { ...lease, spec }, left());
      this.observed = { record: JSON.stringify(spec), at: Date.now() };
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 409) return false;
      throw e;
    }
  }

  /**
   * Waits until we are the leader, then keeps renewing. Resolves with "lost" when leadership is
   * lost (the caller must stop writing at once) or "stopped" after stop().
   */
  async run(onStartedLeading: () => void): Promise<"lost" | "stopped"> {
    // Acquire.
    while (!this.stopped) {
      try {
        if (await this.tryAcquireOrRenew()) break;
      } catch (err) {
        this.opts.log?.(`leader election: ${err instanceof Error ? err.message : String(err)}`);
      }
      await this.sleep(this.opts.retryPeriodMs * (1 + Math.random() * 0.2));
    }
    if (this.stopped) return "stopped";
    this.leading = true;
    this.opts.log?.(`became leader (lease ${this.opts.namespace}/${this.opts.name}, identity ${this.opts.identity})`);
    onStartedLeading();
    // Renew: a round every retryPeriod.
    while (!this.stopped) {
      await this.sleep(this.opts.retryPeriodMs);
      if (this.stopped) break;
      const round = await this.renewRound();
      if (round === "lost") {
        this.leading = false;
        return "lost";
      }
    }
    return "stopped";
  }

  /**
   * One renewal round, as client-go's: tries at once, then every retryPeriod, until renewDeadline from
   * the round's start. From the round's start, not from the last renewal: after this process was paused
   * longer than the deadline (a stopped container, a long GC pause) and the API server restarted
   * meanwhile, the first request may meet a closed connection; the round still has its full deadline to
   * renew. A Lease someone else took meanwhile is lost at once (their renewal changed it, so it is not ours).
   */
  private async renewRound(): Promise<"renewed" | "lost" | "stopped"> {
    const deadline = Date.now() + this.opts.renewDeadlineMs;
    for (;;) {
      try {
        return (await this.tryAcquireOrRenew(deadline)) ? "renewed" : "lost";
      } catch (err) {
        this.opts.log?.(`leader election: renew failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) return "lost";
      await this.sleep(Math.min(this.opts.retryPeriodMs, left));
      if (this.stopped) return "stopped";
      if (Date.now() >= deadline) return "lost";
    }
  }

  /** Stops electing; when leading, releases the Lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(this.ref(this.opts.name));
      if (lease.spec.holderIdentity !== this.opts.identity) return;
      await this.client.replace(this.ref(this.opts.name), { ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1 } });
    } catch {
      // best effort: the Lease expires anyway
    }
  }
}
