// The shared waiting helpers: they return the state as soon as it holds, and when it never does they fail
// after the deadline naming what they waited for and the last thing they saw (value or error).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { test } from "node:test";
import { freePort, waitFor, waitUntil, withDeadline } from "./index.ts";

test("waitFor returns the first truthy value, treating a throwing check as not yet", async () => {
  let n = 0;
  const v = await waitFor(
    "the third poll",
    () => {
      n++;
      if (n === 1) throw new Error("not up yet");
      return n >= 3 ? { n } : false;
    },
    5_000,
    1,
  );
  assert.deepEqual(v, { n: 3 });
});

test("on the deadline waitFor and waitUntil name what they waited for and what they saw last", async () => {
  await assert.rejects(
    waitFor("the impossible", () => false, 50, 10),
    /^Error: timed out after 0\.05s waiting for the impossible \(last seen: false\)$/,
  );
  await assert.rejects(
    waitFor(
      () => "a described state",
      () => {
        throw new Error("connection refused");
      },
      50,
      10,
    ),
    /waiting for a described state \(last seen: error: connection refused\)/,
  );
  let status = 500;
  await assert.rejects(
    waitUntil(
      "HTTP 200",
      () => status++,
      (s) => s === 200,
      50,
      10,
    ),
    /waiting for HTTP 200 \(last seen: 5\d\d\)/,
  );
});

test("waitUntil checks once more at the deadline, so one slow poll is not a timeout", async () => {
  let calls = 0;
  const v = await waitUntil(
    "the second poll",
    async () => {
      calls++;
      if (calls === 1) await new Promise((r) => setTimeout(r, 100)); // longer than the whole deadline
      return calls;
    },
    (c) => c === 2,
    20,
    1,
  );
  assert.equal(v, 2);
});

test("withDeadline passes the value through, or fails naming what it saw", async () => {
  assert.equal(await withDeadline("a value", Promise.resolve(7), 1_000), 7);
  await assert.rejects(
    withDeadline("a line on stderr", new Promise(() => {}), 30, () => "starting..."),
    /waiting for a line on stderr \(last seen: starting\.\.\.\)/,
  );
});

test("freePort gives a loopback port that can be listened on", async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  const srv = createServer();
  await new Promise<void>((r, j) => srv.once("error", j).listen(port, "127.0.0.1", r));
  await new Promise((r) => srv.close(r));
});

test("scratchDir's directories are gone when the test process exits, kept with MCP_BASTION_KEEP_TMP=1", () => {
  const made = (env: Record<string, string>) =>
    execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { writeFileSync } from "node:fs"; const { scratchDir } = await import(${JSON.stringify(new URL("./index.ts", import.meta.url).href)});
         const a = scratchDir("mcp-bastion-scratch-test-"); writeFileSync(a + "/key", "secret"); console.log(a, scratchDir("mcp-bastion-scratch-test-"));`,
      ],
      { env: { ...process.env, ...env }, encoding: "utf8" },
    )
      .trim()
      .split(" ");
  const gone = made({ MCP_BASTION_KEEP_TMP: "" });
  assert.equal(gone.length, 2);
  for (const d of gone) assert.equal(existsSync(d), false, `${d} is left behind`);
  const kept = made({ MCP_BASTION_KEEP_TMP: "1" });
  for (const d of kept) assert.equal(existsSync(d), true, `${d} was removed although kept`);
  for (const d of kept) rmSync(d, { recursive: true, force: true });
});
