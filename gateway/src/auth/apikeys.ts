// API keys from a mounted directory: one file per client, the file name is the client name and the
// content its key. Only sha256 digests are kept in memory. Kubernetes mounts Secrets as
// `dir/..data -> ..2024_01_01_xx` with `dir/NAME -> ..data/NAME` symlinks and swaps `..data` atomically
// on rotation, so we read through the symlinks, skip dot-entries, and rescan on any fs event in the
// directory plus every few seconds (events are not delivered reliably on every volume type).
import { hash, timingSafeEqual } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { errorKind, log } from "../log.ts";

/** One-shot sha256 (crypto.hash avoids a Hash object per call: this runs on every request). */
export function sha256(s: string): Buffer {
  return hash("sha256", s, "buffer");
}

/** Pure: client names → key digests from file contents; empty and whitespace-only keys are ignored. */
export function digestKeys(files: ReadonlyMap<string, string>): Map<string, { client: string; digest: Buffer }> {
  const out = new Map<string, { client: string; digest: Buffer }>();
  for (const [client, content] of files) {
    const key = content.trim();
    if (key.length === 0) continue;
    const digest = sha256(key);
    out.set(digest.toString("hex"), { client, digest });
  }
  return out;
}

export class ApiKeyStore {
  readonly #dir: string;
  #byDigest = new Map<string, { client: string; digest: Buffer }>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #again = false;
  #signature = "";

  constructor(dir: string) {
    this.#dir = dir;
  }

  get size(): number {
    return this.#byDigest.size;
  }

  async start(rescanMs = 2000): Promise<void> {
    await this.rescan();
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, () => void this.rescan());
      this.#watcher.on("error", () => undefined);
    } catch (e) {
      log("warn", "api key directory not watchable, relying on periodic rescan", { error: errorKind(e) });
    }
    this.#timer = setInterval(() => void this.rescan(), rescanMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Coalesces concurrent rescans: one runs, at most one more is queued behind it. */
  rescan(): Promise<void> {
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = this.#scan().finally(() => {
      this.#scanning = undefined;
      if (this.#again) {
        this.#again = false;
        void this.rescan();
      }
    });
    return this.#scanning;
  }

  async #scan(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.#dir)).filter((n) => !n.startsWith("."));
    } catch (e) {
      log("warn", "api key directory unreadable; keeping the previous keys", { error: errorKind(e) });
      return;
    }
    const files = new Map<string, string>();
    for (const name of names.sort()) {
      const path = join(this.#dir, name);
      try {
        if (!(await stat(path)).isFile()) continue; // follows the ..data symlinks
        files.set(name, await readFile(path, "utf8"));
      } catch {
        // Removed between readdir and read (rotation in progress): the next scan sees the final state.
      }
    }
    const next = digestKeys(files);
    const signature = [...next.keys()].sort().join(",");
    if (signature !== this.#signature) {
      this.#signature = signature;
      this.#byDigest = next;
      log("info", "api keys loaded", { clients: [...new Set([...next.values()].map((v) => v.client))].sort() });
    }
  }

  /** The client owning this key, or undefined. Digest lookup, then a constant-time comparison. */
  lookup(key: string): string | undefined {
    const hex = hash("sha256", key, "hex");
    const hit = this.#byDigest.get(hex);
    if (!hit || !timingSafeEqual(hit.digest, Buffer.from(hex, "hex"))) return undefined;
    return hit.client;
  }
}
