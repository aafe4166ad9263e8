// The reconciler alone, on a fake manager context and an injected clock (no control plane): the
// children it applies, the status it writes, the Events it sends and when it asks to run again all
// follow the clock it is given, not the machine's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { McpServerReconciler } from "../../operator/src/controller/reconciler.ts";
import type { Informer } from "../../operator/src/runtime/informer.ts";
import type { KubeObject } from "../../contract/kube-object.ts";
import { ApiError, type KubeClient, type ResourceRef } from "../../operator/src/runtime/kube.ts";
import type { ReconcileContext } from "../../operator/src/runtime/manager.ts";
import { mcpServer } from "./helpers.ts";

interface Write {
  verb: string;
  ref: ResourceRef;
  body: KubeObject;
}

/** A manager context whose API server knows nothing but the McpServer, and records every write. */
function fakeContext(server: KubeObject): { ctx: ReconcileContext; writes: Write[] } {
  const writes: Write[] = [];
  const primary = {
    get: (ns: string, name: string) => (ns === server.metadata.namespace && name === server.metadata.name ? server : undefined),
    store: () => {},
  };
  const client = {
    get: async () => {
      throw new ApiError(404, "NotFound", "not found");
    },
    apply: async (ref: ResourceRef, body: KubeObject) => {
      writes.push({ verb: "apply", ref, body });
      return body;
    },
    create: async (ref: ResourceRef, body: KubeObject) => {
      writes.push({ verb: "create", ref, body });
      return body;
    },
  };
  const ctx: ReconcileContext = {
    client: client as unknown as KubeClient,
    servedKinds: new Set(),
    primaryInformer: () => primary as unknown as Informer,
    childInformer: () => undefined,
    related: () => [],
    countWrite: () => {},
  };
  return { ctx, writes };
}

test("status times, Event times and the schedule requeue come from the injected clock", async () => {
  const raw = mcpServer("db", "team", {
    authorization: {
      rules: [
        { name: "readers", clients: { apiKeys: ["app"] }, tools: { allow: ["query"] } },
        { name: "elevation", clients: { apiKeys: ["oncall"] }, tools: { allow: ["execute"] }, schedule: { notAfter: "2031-01-01T00:00:00Z" } },
      ],
    },
  }) as KubeObject;
  raw.metadata.uid = "uid-1";
  raw.metadata.generation = 1;
  const now = Date.parse("2030-12-31T23:59:00Z"); // far from the machine's clock
  const { ctx, writes } = fakeContext(raw);
  const reconciler = new McpServerReconciler(
    ctx,
    { gatewayImage: "gw:1", clusterStores: new Map(), conflictRecheckMs: 15_000, identity: "test", log: () => {} },
    () => now,
  );

  const result = await reconciler.reconcile("team/db");
  assert.deepEqual(result, { requeueAfterMs: 61_000 }, "runs again just after the elevation ends, a minute after the injected now");

  const children = writes.filter((w) => w.verb === "apply" && w.ref.subresource === undefined).map((w) => w.body.kind);
  assert.ok(children.includes("Deployment") && children.includes("NetworkPolicy"), `children applied: ${children.join(", ")}`);
  const status = writes.find((w) => w.ref.subresource === "status")?.body.status as { conditions: { type: string; lastTransitionTime: string }[] } | undefined;
  assert.ok(status, "status written");
  for (const c of status.conditions) assert.equal(c.lastTransitionTime, "2030-12-31T23:59:00Z", c.type);
  const events = writes
    .filter((w) => w.verb === "create" && w.ref.plural === "events")
    .map((w) => w.body as KubeObject & { firstTimestamp: string; reason: string });
  assert.ok(events.length > 0, "an Event for the first Reconciled condition");
  for (const e of events) assert.equal(e.firstTimestamp, "2030-12-31T23:59:00Z", e.reason);
});

test("a server gone from the cache is not reconciled (its children go with it)", async () => {
  const raw = mcpServer("db", "team", {}) as KubeObject;
  const { ctx, writes } = fakeContext(raw);
  const reconciler = new McpServerReconciler(
    ctx,
    { gatewayImage: "gw:1", clusterStores: new Map(), conflictRecheckMs: 15_000, identity: "test", log: () => {} },
    () => 0,
  );
  assert.equal(await reconciler.reconcile("team/other"), undefined);
  assert.deepEqual(writes, []);
});
