// issue 13 in the controller's pure parts: status.authorization follows the clock (active rules, the next
// change), the reconcile asks to run again at that change, and an invalid CEL expression or schema overlay
// is an InvalidSpec naming the field and the compiler's error.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KubeObject } from "../../contract/kube-object.ts";
import { desiredStatus, type PlanEnv, planServer, requeueForSchedule, statusEqual } from "../../operator/src/controller/plan.ts";
import { mcpServer } from "./helpers.ts";

const env: PlanEnv = { gatewayImage: "gw:1", servedKinds: new Set(), clusterStores: new Map() };
const server = (authorization: Record<string, unknown>) => {
  const s = mcpServer("db", "team", { authorization }) as KubeObject;
  s.metadata.uid = "uid-1";
  s.metadata.generation = 1;
  return s;
};
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

const scheduled = server({
  rules: [
    { name: "readers", clients: { apiKeys: ["app"] }, tools: { allow: ["query"] } },
    {
      name: "maintenance",
      clients: { apiKeys: ["dba"] },
      tools: { allow: ["*"] },
      schedule: { windows: [{ days: ["Sat"], start: "02:00", end: "04:00", timeZone: "Europe/Berlin" }] },
    },
    { name: "elevation", clients: { apiKeys: ["oncall"] }, tools: { allow: ["execute"] }, schedule: { notAfter: "2026-12-01T00:00:00Z" } },
  ],
});

test("status.authorization lists the active rules and the next change; the reconcile requeues then", () => {
  const plan = planServer(scheduled, env);
  assert.ok(plan.ok, plan.ok ? "" : plan.message);
  const monday = Date.parse("2026-11-30T12:00:00Z");
  const s1 = desiredStatus(scheduled, plan, { errors: [] }, undefined, iso(monday));
  assert.deepEqual(s1.authorization, { activeRules: ["readers", "elevation"], inactiveRules: ["maintenance"], nextChange: "2026-12-01T00:00:00Z" });
  assert.equal(requeueForSchedule(s1, monday), 6 * 3_600_000, "12 h ahead: capped at 6 h (then computed again)");
  const justBefore = Date.parse("2026-11-30T23:59:00Z");
  assert.equal(requeueForSchedule(desiredStatus(scheduled, plan, { errors: [] }, s1, iso(justBefore)), justBefore), 61_000);

  // The elevation expires by itself: the next reconcile (the requeue) writes a different status, nobody edited the object.
  const after = Date.parse("2026-12-01T00:00:01Z");
  const s2 = desiredStatus(scheduled, plan, { errors: [] }, s1, iso(after));
  assert.deepEqual(s2.authorization, { activeRules: ["readers"], inactiveRules: ["maintenance", "elevation"], nextChange: "2026-12-05T01:00:00Z" });
  assert.equal(statusEqual(s1, s2), false, "the status changes with the clock");

  // In the window, and the window's end is the next change.
  const sat = Date.parse("2026-12-05T01:30:00Z");
  const s3 = desiredStatus(scheduled, plan, { errors: [] }, s2, iso(sat));
  assert.deepEqual(s3.authorization?.activeRules, ["readers", "maintenance"]);
  assert.equal(s3.authorization?.nextChange, "2026-12-05T03:00:00Z");
});

test("without schedules there is no status.authorization and no requeue", () => {
  const s = server({ rules: [{ name: "readers", clients: { apiKeys: ["app"] }, tools: { allow: ["query"] } }] });
  const plan = planServer(s, env);
  const status = desiredStatus(s, plan, { errors: [] }, undefined, iso(Date.now()));
  assert.equal(status.authorization, undefined);
  assert.equal(requeueForSchedule(status, Date.now()), undefined);
});

test("an invalid CEL expression or overlay is InvalidSpec naming the field and the error", () => {
  const bad = server({
    rules: [{ name: "r", clients: { apiKeys: ["a"] }, tools: { allow: ["q"] }, conditions: [{ expression: "request.arguments.sql.matches(" }] }],
    constraints: [{ name: "c", tools: ["q"], arguments: { type: "object", properties: { n: { type: "integr" } } } }],
  });
  const plan = planServer(bad, env);
  assert.equal(plan.ok, false);
  assert.ok(!plan.ok && plan.reason === "InvalidSpec");
  const msg = plan.ok ? "" : plan.message;
  assert.match(msg, /spec\.authorization\.rules\[0\]\.conditions\[0\]\.expression: invalid CEL expression "request\.arguments\.sql\.matches\(": at 1:/);
  assert.match(
    msg,
    /spec\.authorization\.constraints\[0\]\.arguments: invalid JSON Schema: schema is invalid: data\/properties\/n\/type must be equal to one of the allowed values/,
  );
  const status = desiredStatus(bad, plan, { errors: [] }, undefined, iso(Date.now()));
  const reconciled = status.conditions?.find((c) => c.type === "Reconciled");
  assert.equal(reconciled?.reason, "InvalidSpec");
  assert.match(reconciled?.message ?? "", /conditions\[0\]\.expression/);
});

test("a requeue that is due sooner replaces a later pending one (a schedule moved earlier is not missed)", async () => {
  const { WorkQueue } = await import("../../operator/src/runtime/queue.ts");
  const runs: number[] = [];
  const q = new WorkQueue(
    async () => {
      runs.push(Date.now());
      return undefined;
    },
    { concurrency: 1 },
  );
  const t0 = Date.now();
  q.addAfter("k", 60_000); // e.g. the next change of a schedule, an hour away (capped)
  q.addAfter("k", 50); // the spec changed: a window opens in 50 ms
  q.addAfter("k", 30_000); // a later one does not push it back
  const deadline = Date.now() + 10_000;
  while (runs.length === 0) {
    if (Date.now() > deadline) assert.fail("the sooner requeue did not run within 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(runs[0]! - t0 < 10_000, `ran after ${runs[0]! - t0} ms`);
  await q.shutdown(1000);
});
