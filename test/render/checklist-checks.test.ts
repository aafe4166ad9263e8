// Each checklist item is a measurement, not a restatement of the spec: starting from an example that
// satisfies all 22 items, tampering with exactly what one item reads (a rendered object, or the
// gateway config the pod gets) turns that item false. Items the schema already bounds say
// "by construction" in their detail; their tampering shows the check still reads the objects.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { CHECKLIST_IDS, type ChecklistId, computeChecklist } from "../../operator/src/render/checklist.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import type { KubeObject } from "../../contract/kube-object.ts";
import { list, type Obj, obj } from "../support/objects.ts";
import { exampleMcpServer } from "../support/examples.ts";

/** examples/orders-db.yaml uses TLS, JWT with scopes, rules with schedules and constraints: every item holds. */
function ordersDb(): McpServer {
  return exampleMcpServer("orders-db.yaml");
}

const pod = (objects: KubeObject[]) => obj(obj(obj(objects.find((o) => o.kind === "Deployment")?.spec).template).spec);
const container = (objects: KubeObject[], name: string) => {
  const found = list(pod(objects).containers).find((c) => c.name === name);
  assert.ok(found, `no ${name} container`);
  return found;
};
/** Rewrites the gateway.json the pod reads (still valid for the gateway's config schema). */
const gatewayConfig = (objects: KubeObject[], edit: (cfg: Obj) => void) => {
  const cm = objects.find((o) => o.kind === "ConfigMap" && typeof obj(o.data)["gateway.json"] === "string");
  assert.ok(cm, "no gateway ConfigMap");
  const cfg = JSON.parse(String(obj(cm.data)["gateway.json"])) as Obj;
  edit(cfg);
  obj(cm.data)["gateway.json"] = JSON.stringify(cfg);
};
const authz = (cfg: Obj) => obj(cfg.authorization);
const limits = (cfg: Obj) => obj(cfg.limits);

/** One tampering per item: the smallest change to what the item reads that should make it false. */
const TAMPER: Record<ChecklistId, (objects: KubeObject[]) => void> = {
  "transport-encryption": (o) => gatewayConfig(o, (c) => delete obj(c.listen).tls),
  "authentication-enforced": (o) => gatewayConfig(o, (c) => delete obj(c.auth).jwt),
  "per-client-credentials": (o) => gatewayConfig(o, (c) => delete obj(c.auth).jwt),
  "tool-authorization": (o) =>
    gatewayConfig(o, (c) => {
      for (const r of list(authz(c).rules)) delete r.tools;
    }),
  "least-privilege-pod": (o) => {
    pod(o).automountServiceAccountToken = true;
  },
  "secrets-from-secret-manager": (o) => {
    container(o, "server").env = [{ name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } }];
  },
  "rate-limiting": (o) => gatewayConfig(o, (c) => (obj(limits(c).perClient).requestsPerMinute = 0)),
  "input-validation": (o) => gatewayConfig(o, (c) => (limits(c).maxRequestBytes = 64 * 1024 * 1024)),
  timeouts: (o) => gatewayConfig(o, (c) => (limits(c).requestTimeoutSeconds = 0)),
  "audit-logging": (o) => {
    for (const cm of o.filter((x) => x.kind === "ConfigMap")) delete obj(cm.data)["gateway.json"];
  },
  "network-isolation": (o) => {
    const np = obj(o.find((x) => x.kind === "NetworkPolicy")?.spec);
    np.ingress = [...list(np.ingress), { from: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ port: 8443, protocol: "TCP" }] }];
  },
  "gateway-in-front": (o) => {
    container(o, "server").ports = [{ containerPort: 8000 }];
  },
  "auth-failure-alerts": (o) => {
    const gw = container(o, "gateway");
    gw.ports = list(gw.ports).filter((p) => p.name !== "admin");
  },
  "credential-rotation": (o) => {
    const secretVolumes = new Set(
      list(pod(o).volumes)
        .filter((v) => v.secret !== undefined)
        .map((v) => v.name),
    );
    const mount = list(container(o, "gateway").volumeMounts).find((m) => secretVolumes.has(m.name));
    assert.ok(mount, "no secret mounted in the gateway");
    mount.subPath = "tls.crt";
  },
  "resource-limits": (o) => {
    delete obj(container(o, "gateway").resources).limits;
  },
  "tool-description-integrity": (o) => gatewayConfig(o, (c) => (obj(c.tools).onDrift = "Warn")),
  "image-pinned-by-digest": (o) => {
    container(o, "server").image = "docker.io/crystaldba/postgres-mcp:latest";
  },
  "sanitized-errors": (o) => {
    container(o, "server").ports = [{ containerPort: 8000 }];
  },
  "scoped-tokens": (o) =>
    gatewayConfig(o, (c) => {
      authz(c).requiredScopes = [];
      authz(c).scopes = [];
      for (const r of list(authz(c).rules)) delete r.scopes;
    }),
  "argument-constraints": (o) =>
    gatewayConfig(o, (c) => {
      authz(c).constraints = [];
      for (const r of list(authz(c).rules)) delete r.conditions;
    }),
  "time-limited-elevation": (o) =>
    gatewayConfig(o, (c) => {
      for (const r of list(authz(c).rules)) delete r.schedule;
    }),
  // The spec allows every revision; a config allowing fewer would refuse clients the spec admits.
  "protocol-revisions": (o) => gatewayConfig(o, (c) => (c.protocol = { versions: ["2025-11-25"] })),
};

test("the example used as the base satisfies every item", () => {
  const s = ordersDb();
  const unsatisfied = renderMcpServer(s, { gatewayImage: "gw:1" }).checklist.filter((c) => !c.satisfied);
  assert.deepEqual(unsatisfied, []);
});

test("every item has a tampering below (a new item needs one)", () => {
  assert.deepEqual(Object.keys(TAMPER).sort(), [...CHECKLIST_IDS].sort());
});

for (const id of CHECKLIST_IDS) {
  test(`${id}: tampering with what it reads makes it false`, () => {
    const s = ordersDb();
    const objects = structuredClone(renderMcpServer(s, { gatewayImage: "gw:1" }).objects);
    TAMPER[id](objects);
    const items = computeChecklist(s, objects);
    const found = items.find((c) => c.id === id);
    assert.ok(found, id);
    assert.equal(found.satisfied, false, `${id} still satisfied after tampering: ${found.detail}`);
    // The tampered gateway config still parses (else every config item would fall, for the wrong reason).
    if (id !== "audit-logging") assert.equal(items.find((c) => c.id === "audit-logging")?.satisfied, true, "gateway config no longer parses");
  });
}

test("items the schema bounds say so: by construction, not a measured value", () => {
  const items = renderMcpServer(ordersDb(), { gatewayImage: "gw:1" }).checklist;
  for (const id of ["rate-limiting", "input-validation", "timeouts", "audit-logging"]) {
    assert.match(items.find((c) => c.id === id)?.detail ?? "", /by construction/, id);
  }
  // and the ones a spec can turn false do not claim it
  for (const id of ["transport-encryption", "tool-authorization", "network-isolation", "image-pinned-by-digest", "scoped-tokens"]) {
    assert.doesNotMatch(items.find((c) => c.id === id)?.detail ?? "", /by construction/, id);
  }
});
