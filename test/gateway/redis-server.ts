// A real redis-server for the shared-limiter tests (Debian's package, unpacked by hack/deps-gateway.sh). Kept out of
// helpers.ts: a test that imports this file needs that daemon, so it is not a unit test (test/repo/unit.test.ts).
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { freePort, waitForOutput } from "../support/index.ts";
import { ROOT } from "./helpers.ts";

export interface Redis {
  port: number;
  /** SIGKILL, as a crashed or evicted Redis pod: no goodbye to its clients. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that holds its connections open and answers nothing (a partition). */
  freeze(): void;
  thaw(): void;
}

/** A real redis-server (Debian's package, unpacked by hack/deps-gateway.sh) on a loopback port. */
export async function startRedis(port?: number): Promise<Redis> {
  const out = execFileSync(join(ROOT, "hack/deps-gateway.sh"), ["redis-server"], { stdio: ["ignore", "pipe", "inherit"] }).toString();
  const path = /^redis-server=(.+)$/m.exec(out)?.[1];
  if (!path) throw new Error(`hack/deps-gateway.sh printed no redis-server path: ${out}`);
  const p = port ?? (await freePort());
  const child = spawn(path, ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await waitForOutput(child, "stdout", /Ready to accept connections/, "redis-server");
  child.stderr!.resume();
  return {
    port: p,
    freeze: () => child.kill("SIGSTOP"),
    thaw: () => child.kill("SIGCONT"),
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
        child.kill("SIGCONT");
      }),
  };
}
