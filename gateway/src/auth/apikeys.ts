// API keys from a mounted directory: one file per client, the file name is the client name. Only
// sha256 digests are kept in memory. Kubernetes mounts Secrets as `dir/..data -> ..2024_01_01_xx` with
// `dir/NAME -> ..data/NAME` symlinks and swaps `..data` atomically on rotation, so we read through the
// symlinks, skip dot-entries, and rescan on any fs event in the directory plus every 10 s (events are
// not delivered reliably on every volume type; the kubelet itself takes up to a minute or more to
// project a changed Secret, and a rescan - a directory read, a stat and a read per key, through the
// thread pool - every 2 s was 1 ms of CPU per second of an idle gateway, its largest idle cost).
//
// File format (backward compatible: a file holding just a key is one entry without expiry):
//   # comment lines and blank lines are ignored
//   <key>                                     a key as the client sends it
//   sha256:<64 hex>                           the key's digest: a leaked Secret leaks no usable key
//   sha256:<64 hex> expires=2027-03-01        an expiry (a date is midnight UTC; or an RFC 3339 time)
// One entry per line; several lines are several keys for the client (overlap during rotation).
// `mcp-bastion apikey new NAME [--expires 90d]` prints a key and the line to store.
import { hash, timingSafeEqual } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { errorKind, log } from "../log.ts";

/** One-shot sha256 (crypto.hash avoids a Hash object per call: this runs on every request). */
export function sha256(s: string): Buffer {
  return hash("sha256", s, "buffer");
}

export interface KeyEntry {
  client: string;
  digest: Buffer;
  /** Epoch ms from which the key is refused; undefined = no expiry. */
  expiresAt?: number;
  /** The Secret held the digest, not the key. */
  hashed: boolean;
}

export interface KeyFileProblem {
  client: string;
  line: number;
  problem: string;
}

const DIGEST = /^sha256:(.*)$/i;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;

/** Pure: an expiry attribute value as epoch ms, or undefined when it is not a date. */
export function parseExpiry(v: string): number | undefined {
  if (!DATE_ONLY.test(v) && !RFC3339.test(v)) return undefined;
  // Date.parse rolls 2027-02-30 over to March 2: check the day against the month first.
  const [y, m, d] = v.slice(0, 10).split("-").map(Number) as [number, number, number];
  if (m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return undefined;
  const t = Date.parse(DATE_ONLY.test(v) ? `${v}T00:00:00Z` : v);
  return Number.isFinite(t) ? t : undefined;
}

/** Pure: one non-comment line, or what is wrong with it (never quoting the line). */
function parseKeyLine(text: string): Omit<KeyEntry, "client"> | string {
  const [first, ...attrs] = text.split(/\s+/);
  let expiresAt: number | undefined;
  for (const a of attrs) {
    const eq = a.indexOf("=");
    const name = eq < 0 ? a : a.slice(0, eq);
    if (eq < 0) return "unexpected text after the key (keys have no spaces; attributes are name=value)";
    if (name !== "expires") return `unknown attribute "${name.slice(0, 20)}" (only expires=)`;
    if (expiresAt !== undefined) return "expires= given twice";
    expiresAt = parseExpiry(a.slice(eq + 1));
    if (expiresAt === undefined) return "expires= is not a date (use 2027-03-01 or 2027-03-01T12:00:00Z)";
  }
  const d = DIGEST.exec(first!);
  if (!d) return { digest: sha256(first!), expiresAt, hashed: false };
  const hex = d[1]!;
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    return `malformed digest: sha256: must be followed by 64 hex characters (got ${hex.length} characters${/[^0-9a-fA-F]/.test(hex) ? ", not all hex" : ""})`;
  return { digest: Buffer.from(hex, "hex"), expiresAt, hashed: true };
}

/**
 * Pure: the entries of one client's file, and a problem for each line that cannot be loaded (that
 * line is skipped, the others load). A problem never quotes the line: it may hold a key.
 */
export function parseKeyFile(client: string, content: string): { entries: KeyEntry[]; problems: KeyFileProblem[] } {
  const entries: KeyEntry[] = [];
  const problems: KeyFileProblem[] = [];
  const lines = content.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim();
    if (text === "" || text.startsWith("#")) continue;
    const e = parseKeyLine(text);
    if (typeof e === "string") problems.push({ client, line: i + 1, problem: e });
    else entries.push({ client, ...e });
  }
  return { entries, problems };
}

/**
 * Pure: digest (hex) -> entry for every client's file, and the problems found. The same key (or
 * digest) under two clients is refused for both: whose call would it be?
 */
export function loadKeys(files: ReadonlyMap<string, string>): { byDigest: Map<string, KeyEntry>; problems: KeyFileProblem[] } {
  const byDigest = new Map<string, KeyEntry>();
  const problems: KeyFileProblem[] = [];
  const shared = new Set<string>();
  for (const [client, content] of files) {
    const r = parseKeyFile(client, content);
    problems.push(...r.problems);
    for (const e of r.entries) {
      const hex = e.digest.toString("hex");
      const other = byDigest.get(hex);
      if (other && other.client !== client) {
        shared.add(hex);
        problems.push({ client, line: 0, problem: `the same key is also listed for client "${other.client}"; refused for both` });
      }
      // Two lines with one key for the same client: the later expiry wins (a renewed entry).
      if (!other || other.client !== client || (other.expiresAt !== undefined && (e.expiresAt === undefined || e.expiresAt > other.expiresAt)))
        byDigest.set(hex, e);
    }
  }
  for (const hex of shared) byDigest.delete(hex);
  return { byDigest, problems };
}

export type KeyCheck = { ok: true; client: string } | { ok: false; expired: true; client: string; expiresAt: number } | undefined;

/** What the metrics say about the keys at `now` (see metrics.ts). */
export interface KeyStats {
  total: number;
  expired: number;
  /** Not expired, and expiring within `soonMs`. */
  expiringSoon: number;
  /** client -> number of its keys without an expiry. */
  withoutExpiry: Map<string, number>;
  /** client -> lines that could not be loaded. */
  invalid: Map<string, number>;
}

export const EXPIRING_SOON_MS = 14 * 24 * 3600 * 1000;

/** Pure: key statistics at a point in time. */
export function keyStats(entries: Iterable<KeyEntry>, problems: readonly KeyFileProblem[], now: number, soonMs = EXPIRING_SOON_MS): KeyStats {
  const st: KeyStats = { total: 0, expired: 0, expiringSoon: 0, withoutExpiry: new Map(), invalid: new Map() };
  for (const e of entries) {
    st.total++;
    if (e.expiresAt === undefined) st.withoutExpiry.set(e.client, (st.withoutExpiry.get(e.client) ?? 0) + 1);
    else if (e.expiresAt <= now) st.expired++;
    else if (e.expiresAt - now <= soonMs) st.expiringSoon++;
  }
  for (const p of problems) st.invalid.set(p.client, (st.invalid.get(p.client) ?? 0) + 1);
  return st;
}

/**
 * The last API key verified on one connection (issue 16: a client sends the same key with every
 * request, and hashing it again cost more than the rest of authentication). Only a key that was found
 * is remembered, with the key set it was found in.
 */
export interface KeyMemo {
  keys: ReadonlyMap<string, KeyEntry> | undefined;
  key: string;
  entry: KeyEntry | undefined;
}

export function newKeyMemo(): KeyMemo {
  return { keys: undefined, key: "", entry: undefined };
}

/**
 * Whether a presented credential equals a known one, in time that depends on the presented one's length
 * only: no early exit, and the known one is read cyclically, so its length is not told either.
 */
export function sameSecret(presented: string, known: string): boolean {
  const n = known.length;
  if (n === 0) return false;
  let d = presented.length ^ n;
  for (let i = 0; i < presented.length; i++) d |= presented.charCodeAt(i) ^ known.charCodeAt(i % n);
  return d === 0;
}

export class ApiKeyStore {
  readonly #dir: string;
  #byDigest = new Map<string, KeyEntry>();
  #problems: KeyFileProblem[] = [];
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

  async start(rescanMs = 10_000): Promise<void> {
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
    const { byDigest: next, problems } = loadKeys(files);
    const signature =
      [...next.entries()]
        .map(([h, e]) => `${h}:${e.client}:${e.expiresAt ?? ""}`)
        .sort()
        .join(",") + problems.map((p) => `|${p.client}:${p.line}:${p.problem}`).join("");
    if (signature !== this.#signature) {
      this.#signature = signature;
      this.#byDigest = next;
      this.#problems = problems;
      // A line that cannot be loaded is skipped, said once per change, and counted in the metrics.
      for (const p of problems) log("warn", "api key entry not loaded", { client: p.client, line: p.line, problem: p.problem });
      log("info", "api keys loaded", { clients: [...new Set([...next.values()].map((v) => v.client))].sort() });
    }
  }

  /** Lines that could not be loaded, at the last scan. */
  get problems(): readonly KeyFileProblem[] {
    return this.#problems;
  }

  stats(now = Date.now()): KeyStats {
    return keyStats(this.#byDigest.values(), this.#problems, now);
  }

  /**
   * The client owning this key, or that the key has expired, or undefined for an unknown key. With a
   * connection's memo, a key presented again on the same connection (compared in constant time) is not
   * hashed again, as long as the key set is the one it was verified against (any change to the keys,
   * a rotation or a revocation, replaces the set) and it has not expired since.
   */
  check(key: string, now = Date.now(), memo?: KeyMemo): KeyCheck {
    let hit: KeyEntry | undefined;
    const known = memo?.entry;
    if (known !== undefined && memo!.keys === this.#byDigest && sameSecret(key, memo!.key)) hit = known;
    else {
      const hex = hash("sha256", key, "hex");
      hit = this.#byDigest.get(hex);
      if (!hit || !timingSafeEqual(hit.digest, Buffer.from(hex, "hex"))) return undefined;
      if (memo !== undefined) {
        memo.keys = this.#byDigest;
        memo.key = key;
        memo.entry = hit;
      }
    }
    if (hit.expiresAt !== undefined && hit.expiresAt <= now) return { ok: false, expired: true, client: hit.client, expiresAt: hit.expiresAt };
    return { ok: true, client: hit.client };
  }

  /** The client owning this key (not expired), or undefined. Digest lookup, then a constant-time comparison. */
  lookup(key: string): string | undefined {
    const c = this.check(key);
    return c?.ok ? c.client : undefined;
  }
}
