// The local control plane helper itself: it serves the API with admin credentials, survives an
// API server and an etcd restart with its data, counts writes in the audit log, and leaves no
// process behind after stop().
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { type ControlPlane, readAuditEvents, startControlPlane } from "../../dev/controlplane/index.ts";

let cp: ControlPlane;
before(async () => {
  cp = await startControlPlane({ auditLog: true });
});
after(async () => {
  await cp?.stop();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("kubectl talks to the API server as an admin", async () => {
  const r = await cp.kubectl(["auth", "can-i", "*", "*", "--all-namespaces"]);
  assert.equal(r.stdout.trim(), "yes", r.stderr);
});

test("data survives an API server restart and an etcd restart", async () => {
  assert.equal((await cp.kubectl(["create", "namespace", "survivor"])).code, 0);
  await cp.restartApiServer();
  await cp.restartEtcd();
  const r = await cp.kubectl(["get", "namespace", "survivor", "-o", "name"]);
  assert.equal(r.stdout.trim(), "namespace/survivor", r.stderr);
});

test("the audit log records writes, not reads", async () => {
  await cp.kubectl(["create", "configmap", "counted", "-n", "default", "--from-literal=a=b"]);
  await cp.kubectl(["get", "configmaps", "-n", "default"]);
  const events = readAuditEvents(cp.auditLogPath ?? "");
  assert.ok(events.some((e) => e.verb === "create" && e.objectRef?.resource === "configmaps" && e.objectRef.name === "counted"));
  assert.ok(!events.some((e) => e.verb === "list" || e.verb === "get"));
});

test("stop() kills every process and removes the directory", async () => {
  const pids = (await import("node:fs")).readFileSync(`${cp.dir}/pgids`, "utf8").trim().split(" ").map(Number);
  assert.ok(pids.length >= 2 && pids.every(alive));
  await cp.stop();
  assert.ok(
    pids.every((p) => !alive(p)),
    "a control-plane process outlived stop()",
  );
  assert.ok(!existsSync(cp.dir));
});
