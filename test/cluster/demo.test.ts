// `make demo` (dev/cluster/demo.ts) end to end, as a user runs it: on a real single-node cluster it ends
// with both examples Ready in `kubectl get mcpservers -A`, one MCP tool call that succeeds and one that is
// refused, the commands to look around, and nothing of the cluster left once it stops.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");

test("make demo --once: Ready=True for both examples, one call allowed and one refused, how to look around, nothing left behind", {
  timeout: 60 * 60_000,
}, async () => {
  // The deadline only separates a hung demo from a slow one: building images on a busy machine takes long.
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "dev", "cluster", "demo.ts"), "--once"],
      { timeout: 55 * 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
  assert.equal(r.code, 0, `demo failed:\n${r.stderr}\n${r.stdout}`);
  const out = r.stdout;
  assert.match(out, /^\$ kubectl get mcpservers -A$/m);
  assert.match(out, /^NAMESPACE\s+NAME\s+READY\s+TRANSPORT/m);
  assert.match(out, /^agents\s+everything\s+True\s+streamable-http\s/m);
  assert.match(out, /^agents\s+filesystem\s+True\s+stdio\s/m);
  assert.match(out, /tools\/call echo .*->\s+ok: Echo: hello from a client pod/);
  assert.match(out, /tools\/call get-tiny-image .*->\s+refused .*-32003 .*not allowed for this client/);
  const netns = /ip netns exec (mcpb-[0-9a-f]+) /.exec(out)?.[1];
  assert.ok(netns, `the look-around commands name the cluster's network namespace:\n${out}`);
  assert.match(out, /export KUBECONFIG=\S+/);
  assert.match(out, /stopping the cluster/);
  // The cluster's network namespace and cgroups (both named mcpb-<id>) are gone.
  assert.ok(!existsSync(`/run/netns/${netns}`), `the demo's network namespace ${netns} is gone`);
  assert.deepEqual(
    readdirSync("/sys/fs/cgroup").filter((h) => existsSync(`/sys/fs/cgroup/${h}/${netns}`)),
    [],
    `the demo's cgroups ${netns} are gone`,
  );
});
