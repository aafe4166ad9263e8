// The work queue: keys (namespace/name) waiting for a reconcile. A key is never processed twice at
// once: adding a key that is being processed marks it dirty and it runs again right after. Up to
// `concurrency` different keys run at the same time. A failed key is retried with exponential
// backoff and jitter; a success forgets its failures.
import { backoffDelay } from "./informer.ts";

export interface QueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onError?: (key: string, err: unknown, attempt: number) => void;
  onDone?: (key: string, ms: number, ok: boolean) => void;
}

/** What a worker may ask for: run this key again after a delay (e.g. waiting on something outside). */
export interface WorkResult {
  requeueAfterMs?: number;
}

export class WorkQueue {
  private readonly worker: (key: string) => Promise<WorkResult | undefined>;
  private readonly opts: Required<Omit<QueueOptions, "onError" | "onDone">> & Pick<QueueOptions, "onError" | "onDone">;
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly timerAt = new Map<string, number>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(worker: (key: string) => Promise<WorkResult | undefined>, opts: QueueOptions) {
    this.worker = worker;
    this.opts = { baseDelayMs: 200, maxDelayMs: 60_000, ...opts };
  }

  /** Keys waiting (not counting the ones being processed). */
  depth(): number {
    return this.queue.length;
  }

  inFlight(): number {
    return this.running;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  private addFirst(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.unshift(key);
    this.pump();
  }

  /** Adds the key after a delay; when a delay is already pending for the key, the one that fires first wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending) {
      // A schedule that moved earlier (issue 13: a new window or elevation) must not wait for an older, later timer.
      if ((this.timerAt.get(key) ?? 0) <= at) return;
      clearTimeout(pending);
    }
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.timerAt.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
    this.timerAt.set(key, at);
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.queue.length > 0) {
      const key = this.queue.shift() as string;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.process(key);
    }
    if (this.running === 0 && this.queue.length === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of w) r();
    }
  }

  private async process(key: string): Promise<void> {
    const started = performance.now();
    let ok = true;
    try {
      const result = await this.worker(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      ok = false;
      const attempt = this.failures.get(key) ?? 0;
      this.failures.set(key, attempt + 1);
      this.opts.onError?.(key, err, attempt);
      this.addAfter(key, backoffDelay(attempt, this.opts.baseDelayMs, this.opts.maxDelayMs));
    } finally {
      this.opts.onDone?.(key, performance.now() - started, ok);
      this.active.delete(key);
      this.running--;
      // A key changed while it ran goes first, not behind every other key: what changed is most often
      // its own writes coming back, and the run right after finds its render still cached (at 1,000+
      // queued servers a run at the back of the queue re-rendered every server a second time).
      if (this.dirty.delete(key)) this.addFirst(key);
      this.pump();
    }
  }

  /** Resolves when nothing is queued or running (delayed retries do not count). */
  idle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops taking work; resolves when the reconciles in flight have finished (or after timeoutMs). */
  async shutdown(timeoutMs: number): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    this.queued.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.timerAt.clear();
    if (this.running === 0) return;
    await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
