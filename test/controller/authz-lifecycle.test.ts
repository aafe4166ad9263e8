// issue 13 against a real kube-apiserver, with the operator in this process under its own RBAC: the CRD
// admits the new fields, a temporary elevation disappears from status.authorization at its notAfter with
// nobody editing the object (the operator's requeue), and a CEL expression the API server cannot judge is
// reported by the operator as InvalidSpec naming the field and the compiler's error.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Operator } from "../../operator/src/controller/operator.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { waitFor } from "../support/index.ts";
import { getJson, grantOperatorRbac, installCrd, mcpServer, must, startInProcessOperator, waitCondition } from "./helpers.ts";

const NS = "authz";
let cp: ControlPlane;
let op: Operator;
const apply = (obj: unknown) => must(cp, ["apply", "--server-side", "--field-manager=test-user", "-f", "-"], JSON.stringify(obj));

before(async () => {
  cp = await startControlPlane();
  await installCrd(cp);
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  op = await startInProcessOperator(cp, { concurrency: 2 });
});

after(async () => {
  await op?.stop();
  await cp?.stop();
});

test("an elevation ends by itself: status.authorization follows notAfter without an edit", async () => {
  const notAfter = new Date(Math.ceil((Date.now() + 12_000) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  await apply(
    mcpServer("elevated", NS, {
      authorization: {
        rules: [
          { name: "readers", clients: { apiKeys: ["app"] }, tools: { allow: ["query"] } },
          { name: "oncall", clients: { apiKeys: ["oncall"] }, tools: { allow: ["execute"] }, schedule: { notAfter } },
        ],
        constraints: [
          {
            name: "bounded",
            tools: ["query"],
            arguments: { type: "object", properties: { limit: { type: "integer", maximum: 100 } } },
            conditions: [{ expression: "size(request.arguments) <= 4" }],
          },
        ],
      },
      network: { ingress: [{ ipBlock: { cidr: "10.10.0.0/16", except: ["10.10.9.0/24"] } }] },
    }),
  );
  const first = await waitCondition(cp, NS, "elevated", "Reconciled", "True");
  assert.deepEqual(first.status.authorization, { activeRules: ["readers", "oncall"], inactiveRules: [], nextChange: notAfter });
  const generation = first.metadata.generation;
  // The overlay survived the API server's pruning (x-kubernetes-preserve-unknown-fields) and reached the gateway config.
  const cm = await getJson(cp, ["configmap", "-n", NS, "-l", "app.kubernetes.io/instance=elevated"]);
  const gw = JSON.parse(cm?.items?.[0]?.data?.["gateway.json"] ?? "{}");
  assert.deepEqual(gw.authorization?.constraints?.[0]?.arguments, { type: "object", properties: { limit: { type: "integer", maximum: 100 } } });
  const np = await getJson(cp, ["networkpolicy", "-n", NS, "-l", "app.kubernetes.io/instance=elevated"]);
  assert.deepEqual(np?.items?.[0]?.spec?.ingress?.[0]?.from, [{ ipBlock: { cidr: "10.10.0.0/16", except: ["10.10.9.0/24"] } }]);

  const expired = await waitFor(
    "the oncall rule to become inactive after notAfter",
    async () => {
      const o = await getJson(cp, ["mcpserver", "-n", NS, "elevated"]);
      return o?.status?.authorization?.inactiveRules?.includes("oncall") ? o : undefined;
    },
    45_000,
  );
  assert.ok(Date.now() >= Date.parse(notAfter), "not before notAfter");
  assert.deepEqual(expired.status.authorization, { activeRules: ["readers"], inactiveRules: ["oncall"] });
  assert.equal(expired.metadata.generation, generation, "nobody edited the object");
});

test("a CEL expression that does not compile is InvalidSpec naming the field and the error", async () => {
  await apply(
    mcpServer("bad-cel", NS, {
      authorization: { constraints: [{ name: "files", tools: ["read_file"], conditions: [{ expression: "pathWithin(request.arguments.path '/data')" }] }] },
    }),
  );
  const obj = await waitCondition(cp, NS, "bad-cel", "Reconciled", "False", "InvalidSpec");
  const msg = obj.status.conditions.find((c: { type: string }) => c.type === "Reconciled").message as string;
  assert.match(
    msg,
    /spec\.authorization\.constraints\[0\]\.conditions\[0\]\.expression: invalid CEL expression "pathWithin\(request\.arguments\.path '\/data'\)": at 1:/,
  );
});
