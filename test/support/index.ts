// What every test needs to be robust on a loaded machine (load average several times the core count):
// wait for a state by polling it with a generous deadline, and a free loopback port. No test sleeps
// for a fixed time to "let something happen": it waits for the state it needs and, when the deadline
// passes, says what it waited for and what it saw last.
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Deadlines are generous on purpose: they only bound a test that is broken, they never pace one that works. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Polls `check` every `intervalMs` until it returns a truthy value, and returns that value. A check that
 * throws counts as "not yet" (its error becomes the last value seen). When `timeoutMs` has passed, throws
 * `timed out after Ns waiting for WHAT (last seen: ...)`. The check always runs at least once, and once more
 * after the deadline, so a slow poll (a kubectl call that took the whole budget) is not mistaken for a timeout.
 */
export function waitFor<T>(
  what: string | (() => string),
  check: () => T | undefined | null | false | "" | 0 | Promise<T | undefined | null | false | "" | 0>,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  intervalMs = 200,
): Promise<T> {
  return waitUntil(what, check, (v) => Boolean(v), timeoutMs, intervalMs) as Promise<T>;
}

/**
 * Like waitFor, for a check whose value says more than true/false: polls `probe` until `done(value)`,
 * returns that value, and on the deadline names the last value (e.g. `HTTP 503`, a status object).
 */
export async function waitUntil<T>(
  what: string | (() => string),
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = "(not checked yet)";
  let lastChance = false;
  for (;;) {
    try {
      const v = await probe();
      if (done(v)) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? `error: ${err.message}` : err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      // One more look after the deadline: the poll that just failed may have started long before it.
      if (lastChance) break;
      lastChance = true;
      continue;
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, left)));
  }
  const label = typeof what === "string" ? what : what();
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${label} (last seen: ${describe(last)})`);
}

/** A short, single-line rendering of whatever a check last returned. */
export function describe(v: unknown, max = 500): string {
  let s: string;
  if (typeof v === "string") s = v;
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * Resolves with the first value an event source produces, or throws after `timeoutMs` with what was awaited
 * and `seen()` (e.g. the child's stderr so far). For "wait until this process prints that it listens".
 */
export function withDeadline<T>(what: string, promise: Promise<T>, timeoutMs = DEFAULT_TIMEOUT_MS, seen: () => unknown = () => "(nothing)"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last seen: ${describe(seen())})`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Waits until a child process prints something matching `re` on one of its streams ("listening 1234",
 * "Ready to accept connections") and returns the match. Rejects, with what it printed so far, when it
 * exits first or `timeoutMs` passes. The stream keeps flowing afterwards (a full pipe would stall it).
 */
export function waitForOutput(
  proc: ChildProcess,
  stream: "stdout" | "stderr",
  re: RegExp,
  what: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<RegExpExecArray> {
  const out = proc[stream]!;
  return new Promise((resolve, reject) => {
    let seen = "";
    const done = (settle: () => void) => {
      clearTimeout(timer);
      out.off("data", onData);
      proc.off("exit", onExit);
      out.resume();
      settle();
    };
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) done(() => resolve(m));
    };
    const onExit = (code: number | null) => done(() => reject(new Error(`${what} exited ${code}: ${seen.slice(-2000)}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`${what} did not start within ${timeoutMs / 1000} s: ${seen.slice(-2000)}`))), timeoutMs);
    out.on("data", onData);
    proc.once("exit", onExit);
  });
}

/** A free TCP port on 127.0.0.1 (bind to 0, read the port, release it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const addr = srv.address();
  srv.close();
  await once(srv, "close");
  if (!addr || typeof addr === "string") throw new Error("could not allocate a port");
  return addr.port;
}

/** Directories made by scratchDir in this process. */
const scratch: string[] = [];

/**
 * A new directory under the OS temp dir (`<prefix>XXXXXX`), removed when this process exits: node --test
 * runs each file in its own process, so a test run leaves nothing in /tmp (a run used to leave ~400
 * directories of keys, configs and certificates). MCP_BASTION_KEEP_TMP=1 keeps them for a look after a failure.
 */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (scratch.length === 0 && process.env.MCP_BASTION_KEEP_TMP !== "1")
    process.once("exit", () => {
      for (const d of scratch)
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a tree a test made read-only for a user without the rights: left, never an exit error
        }
    });
  scratch.push(dir);
  return dir;
}
